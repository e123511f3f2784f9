"""Inference: a predictor loaded once, predicting many volumes."""

from lrc.infer.predictor import Predictor

__all__ = ["Predictor"]

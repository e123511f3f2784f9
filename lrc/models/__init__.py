"""Model directories: weights (safetensors) and a ``model.json`` card."""

from lrc.models.card import ModelCard, ModelCardError
from lrc.models.store import load_model, save_model

__all__ = ["ModelCard", "ModelCardError", "load_model", "save_model"]

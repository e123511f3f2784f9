"""Per-process state of a worker: its context and warm predictors (created on first use)."""

from __future__ import annotations

import functools

from core.context import Context, build_context
from core.settings import get_settings
from worker.predictors import PredictorCache


@functools.cache
def context() -> Context:
    """This process's context (after a fork the database reconnects by itself)."""
    return build_context(get_settings())


@functools.cache
def predictors() -> PredictorCache:
    """This process's predictor cache."""
    settings = get_settings()
    return PredictorCache(settings.predictor_cache_size, settings.device)

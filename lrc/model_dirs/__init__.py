"""Model directories: weights (safetensors) and a ``model.json`` card.

The card is torch-free (the API reads cards); :mod:`lrc.model_dirs.store`, which needs torch, loads on
first use of ``load_model`` or ``save_model``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lrc.model_dirs.card import ModelCard, ModelCardError

if TYPE_CHECKING:
    from lrc.model_dirs.store import load_model, save_model

__all__ = ["ModelCard", "ModelCardError", "load_model", "save_model"]


def __getattr__(name: str) -> Any:
    if name in ("load_model", "save_model"):
        from lrc.model_dirs import store

        return getattr(store, name)
    raise AttributeError(f"module 'lrc.model_dirs' has no attribute {name!r}")

"""Model directories: weights (safetensors) and a ``model.json`` card.

The card is torch-free (the API reads cards); :mod:`lrc.models.store`, which needs torch, loads on
first use of ``load_model`` or ``save_model``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lrc.models.card import ModelCard, ModelCardError

if TYPE_CHECKING:
    from lrc.models.store import load_model, save_model

__all__ = ["ModelCard", "ModelCardError", "load_model", "save_model"]


def __getattr__(name: str) -> Any:
    if name in ("load_model", "save_model"):
        from lrc.models import store

        return getattr(store, name)
    raise AttributeError(f"module 'lrc.models' has no attribute {name!r}")

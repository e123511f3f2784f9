"""``/v1/models``: the registry, model cards, promotion (gated) and roll-back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import ContextDep, Submitter, Viewer
from app.api.schemas import PromoteIn, RollbackIn
from app.errors import Forbidden
from app.services import models

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("")
def list_models(ctx: ContextDep, _: Viewer) -> list[dict[str, Any]]:
    """Each model's name, versions and production version."""
    return models.list_models(ctx)


@router.get("/{name}/versions/{version}")
def get_version(name: str, version: int, ctx: ContextDep, _: Viewer) -> dict[str, Any]:
    """One version with its model card."""
    return models.card(ctx, name, version)


@router.post("/{name}/versions/{version}/promote")
def promote(name: str, version: int, body: PromoteIn, ctx: ContextDep, caller: Submitter) -> dict[str, Any]:
    """Make a version production: refused (409) unless its held-out score is at least production's."""
    if body.override and caller.role != "admin":
        raise Forbidden("only admins may override the promotion gate")
    return models.promote(ctx, name, version, caller.key_id, body.override, body.reason)


@router.post("/{name}/rollback")
def rollback(name: str, body: RollbackIn, ctx: ContextDep, caller: Submitter) -> dict[str, Any]:
    """Put the previous production version back."""
    return models.rollback(ctx, name, caller.key_id, body.reason)

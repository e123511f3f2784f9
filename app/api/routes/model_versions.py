"""``/v1/models``: the registry, model cards, promotion (gated) and roll-back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from app.api.deps import Admin, ContextDep, Viewer
from app.api.schemas import PromoteIn, RollbackIn
from app.services import model_versions
from core.records.tables import MAX_VERSION

router = APIRouter(prefix="/v1/models", tags=["models"])
# Versions are 32-bit integers in the records; a larger number is no version (the database would refuse it).
Version = Annotated[int, Path(ge=1, le=MAX_VERSION)]


@router.get("")
def list_models(ctx: ContextDep, caller: Viewer) -> list[dict[str, Any]]:
    """Each model of the project and each shared one: name, versions and production version."""
    return model_versions.list_models(ctx, caller.project)


@router.get("/{name}/versions/{version}")
def get_version(name: str, version: Version, ctx: ContextDep, caller: Viewer) -> dict[str, Any]:
    """One version with its model card."""
    return model_versions.card(ctx, caller.project, name, version)


@router.post("/{name}/versions/{version}/promote")
def promote(
    name: str, version: Version, ctx: ContextDep, caller: Admin, body: PromoteIn | None = None
) -> dict[str, Any]:
    """Make a version production (admins): refused (409) unless its held-out score is at least production's.
    No body: no override."""
    body = body or PromoteIn()
    return model_versions.promote(ctx, caller.project, name, version, caller.key_id, body.override, body.reason)


@router.post("/{name}/rollback")
def rollback(name: str, ctx: ContextDep, caller: Admin, body: RollbackIn | None = None) -> dict[str, Any]:
    """Put the previous production version back (admins). No body: no reason."""
    body = body or RollbackIn()
    return model_versions.rollback(ctx, caller.project, name, caller.key_id, body.reason)

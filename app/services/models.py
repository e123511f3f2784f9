"""The model registry as users see it: list, card, promote, roll back, register a directory."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import lrc
from app.context import Context
from app.errors import InvalidRequest
from app.records import registry
from app.records.models import ModelVersion, Promotion
from app.services.jobs import utc

log = logging.getLogger(__name__)


def version_view(version: ModelVersion, with_card: bool = False) -> dict[str, Any]:
    """The public form of a model version."""
    metrics = version.card.get("metrics") or {}
    data: dict[str, Any] = {
        "name": version.name,
        "version": version.version,
        "kind": version.kind,
        "status": version.status,
        "held_out_mean_dice": metrics.get("mean_dice"),
        "comparison": version.comparison,
        "created_at": utc(version.created_at),
    }
    if with_card:
        data["card"] = version.card
    return data


def list_models(ctx: Context) -> list[dict[str, Any]]:
    """Each model with its versions and production version."""
    with ctx.db.session() as session:
        found = registry.versions(session)
    models: dict[str, dict[str, Any]] = {}
    for version in found:
        entry = models.setdefault(version.name, {"name": version.name, "production_version": None, "versions": []})
        entry["versions"].append(version_view(version))
        if version.status == "production":
            entry["production_version"] = version.version
    return list(models.values())


def card(ctx: Context, name: str, number: int) -> dict[str, Any]:
    """One version with its card."""
    with ctx.db.session() as session:
        return version_view(registry.get_version(session, name, number), with_card=True)


def promotion_view(record: Promotion) -> dict[str, Any]:
    """The public form of a promotion or roll-back."""
    return {
        "name": record.name,
        "action": record.action,
        "from_version_id": record.from_version_id,
        "to_version_id": record.to_version_id,
        "override": record.override,
        "reason": record.reason,
        "by": record.by,
        "at": utc(record.at),
    }


def promote(ctx: Context, name: str, number: int, by: str | None, override: bool, reason: str) -> dict[str, Any]:
    """Promote a version through the gate (see :func:`app.records.registry.promote`)."""
    with ctx.db.session() as session:
        record = registry.promote(session, registry.get_version(session, name, number), by, override, reason)
        return promotion_view(record)


def rollback(ctx: Context, name: str, by: str | None, reason: str) -> dict[str, Any]:
    """Restore the previous production version."""
    with ctx.db.session() as session:
        return promotion_view(registry.rollback(session, name, by, reason))


def register_directory(ctx: Context, name: str, directory: Path, status: str = "candidate") -> ModelVersion:
    """Register a model directory (``model.json`` + weights) as the next version of ``name``.

    Raises:
        InvalidRequest: no readable ``model.json``.
    """
    try:
        card_json = json.loads((directory / "model.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"{directory}: not a model directory ({exc})") from exc
    with ctx.db.session() as session:
        if status == "production" and registry.production(session, name) is not None:
            raise InvalidRequest(f"model {name} already has a production version; promote instead")
        return registry.register(session, name, str(directory.resolve()), card_json, status=status)


def register_starter(ctx: Context) -> ModelVersion | None:
    """On first start, register the starter model shipped with lrc as production (if present)."""
    directory = ctx.settings.starter_model_dir or Path(lrc.__file__).parent / "assets" / "starter_ct_abdomen"
    name = ctx.settings.starter_model_name
    if not (directory / "model.json").is_file():
        return None
    with ctx.db.session() as session:
        if registry.versions(session, name):
            return None
    # A copy in the data folder: the registry must not depend on where this installation lives.
    copy = ctx.settings.model_dir / name / "starter"
    if not (copy / "model.json").is_file():
        staging = ctx.settings.model_dir / name / f".starter-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(directory, staging)
        staging.replace(copy)
    version = register_directory(ctx, name, copy, status="production")
    log.info("starter model %s:%d registered as production", name, version.version)
    return version

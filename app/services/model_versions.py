"""Model versions as users see them in the registry: list, card, promote, roll back, register a directory."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import lrc
from app.services.jobs import utc
from core.context import Context
from core.errors import InvalidRequest
from core.records import registry
from core.records.projects import SHARED
from core.records.tables import ModelVersion, Promotion

log = logging.getLogger(__name__)


def version_view(
    version: ModelVersion, status: str, current: ModelVersion | None, with_card: bool = False
) -> dict[str, Any]:
    """The public form of a model version, with its ``status`` as the caller's project sees it and how
    its labels differ from those of ``current``, the production version (``label_changes``, ``{}``: none)."""
    metrics = version.card.get("metrics") or {}
    data: dict[str, Any] = {
        "name": version.name,
        "version": version.version,
        "kind": version.kind,
        "status": status,
        "shared": version.project == SHARED,
        "held_out_mean_dice": metrics.get("mean_dice"),
        "comparison": version.comparison,
        "label_changes": registry.label_changes(version, current) if current and current.id != version.id else {},
        "created_at": utc(version.created_at),
    }
    if with_card:
        data["card"] = version.card
    return data


def list_models(ctx: Context, project: str) -> list[dict[str, Any]]:
    """Each model ``project`` sees (its own and the shared ones) with its versions and production version."""
    models: dict[str, dict[str, Any]] = {}
    with ctx.db.session() as session:
        current: dict[str, ModelVersion | None] = {}
        for version in registry.versions(session, project):
            entry = models.setdefault(version.name, {"name": version.name, "production_version": None, "versions": []})
            if version.name not in current:
                current[version.name] = registry.production(session, project, version.name)
            status = registry.status_in(session, project, version)
            entry["versions"].append(version_view(version, status, current[version.name]))
            if status == "production":
                entry["production_version"] = version.version
    return list(models.values())


def card(ctx: Context, project: str, name: str, number: int) -> dict[str, Any]:
    """One version ``project`` sees, with its card."""
    with ctx.db.session() as session:
        version = registry.get_version(session, project, name, number)
        current = registry.production(session, project, name)
        return version_view(version, registry.status_in(session, project, version), current, with_card=True)


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


def promote(
    ctx: Context, project: str, name: str, number: int, by: str | None, override: bool, reason: str
) -> dict[str, Any]:
    """Promote a version of ``project`` through the gate (see :func:`core.records.registry.promote`)."""
    with ctx.db.session() as session:
        version = registry.get_version(session, project, name, number)
        return promotion_view(registry.promote(session, project, version, by, override, reason))


def rollback(ctx: Context, project: str, name: str, by: str | None, reason: str) -> dict[str, Any]:
    """Restore the previous production version of ``project``."""
    with ctx.db.session() as session:
        return promotion_view(registry.rollback(session, project, name, by, reason))


def register_directory(
    ctx: Context, name: str, directory: Path, project: str, status: str = "candidate"
) -> ModelVersion:
    """Register a model directory (``model.json`` + weights) as the next version of ``name`` in ``project``
    (:data:`~core.records.projects.SHARED`: for every project, read-only).

    Raises:
        InvalidRequest: no readable ``model.json``.
    """
    try:
        card_json = json.loads((directory / "model.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"{directory}: not a model directory ({exc})") from exc
    with ctx.db.session() as session:
        if status == "production" and registry.production(session, project, name) is not None:
            raise InvalidRequest(f"model {name} already has a production version; promote instead")
        return registry.register(session, name, str(directory.resolve()), card_json, project, status=status)


def register_starter(ctx: Context) -> ModelVersion | None:
    """On first start, register the starter model shipped with lrc as production, shared by every project.

    Not when the name is taken: by the starter of an earlier start, or by a project's model (a database
    from before projects holds its starter in project ``default``; see ``app/README.md``).
    """
    directory = ctx.settings.starter_model_dir or Path(lrc.__file__).parent / "assets" / "starter_ct_abdomen"
    name = ctx.settings.starter_model_name
    if not (directory / "model.json").is_file():
        return None
    with ctx.db.session() as session:
        if owner := registry.owner(session, name):
            if owner != SHARED:
                log.warning(
                    "the starter model is not shared: project %s has a model named %s (set LRC_STARTER_MODEL_NAME "
                    "to another name to share the starter with every project)",
                    owner,
                    name,
                )
            return None
    # A copy in the data folder: the registry must not depend on where this installation lives.
    copy = ctx.settings.model_dir / name / "starter"
    if not (copy / "model.json").is_file():
        staging = ctx.settings.model_dir / name / f".starter-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(directory, staging)
        staging.replace(copy)
    version = register_directory(ctx, name, copy, SHARED, status="production")
    log.info("starter model %s:%d registered as production", name, version.version)
    return version

"""Fine-tuning and pre-training requests: checked here, run by a training worker."""

from __future__ import annotations

from typing import Any

from app.context import Context
from app.errors import InvalidRequest, NotFound
from app.records import registry
from app.records.models import Dataset, Job
from app.records.studies import get_series, get_study
from app.services.jobs import submit


def finetune(
    ctx: Context,
    dataset_id: str,
    base_model: str | None,
    name: str | None,
    options: dict[str, Any],
    by: str | None,
    project: str,
) -> Job:
    """Queue a fine-tuning of ``base_model`` (or from scratch) on a dataset of ``project``; it registers a
    candidate in ``project``."""
    with ctx.db.session() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None or dataset.project != project:
            raise NotFound("dataset", dataset_id)
        base = registry.find(session, project, base_model) if base_model else None
        if base is not None and base.kind == "segmentation" and options.get("spatial_dims", 2) == 3:
            raise InvalidRequest("3D fine-tuning starts from scratch or a 3D model; this base model is 2D")
        if name:
            target = name
        elif base is not None and base.kind == "segmentation":
            target = base.name
            if not registry.MODEL_NAME.fullmatch(target):
                raise InvalidRequest(f"model {target!r} cannot take fine-tuned versions under its name: give 'name'")
        else:  # the dataset's name is free text: it names a folder, and 'name:version' must find the model
            target = registry.model_name_from(dataset.name)
    payload = {
        "dataset_id": dataset_id,
        "base_version_id": base.id if base else None,
        "name": target,
        "options": options,
    }
    return submit(ctx, "finetune", payload, by, project)


def pretrain(
    ctx: Context,
    series_ids: list[str],
    study_ids: list[str],
    method: str,
    name: str,
    options: dict[str, Any],
    by: str | None,
    project: str,
) -> Job:
    """Queue self-supervised pre-training on stored series of ``project`` (and every series of the given
    studies); it registers a ``pretrained`` version in ``project``."""
    with ctx.db.session() as session:
        chosen = list(series_ids)
        for series_id in series_ids:
            get_series(session, series_id, project)
        for study_id in study_ids:
            study = get_study(session, study_id, project)
            chosen += [s.id for s in study.series if s.id not in chosen]
    if not chosen:
        raise InvalidRequest("name the unlabeled scans: 'series_ids' or 'study_ids'")
    payload = {"series_ids": chosen, "method": method, "name": name, "options": options}
    return submit(ctx, "pretrain", payload, by, project)

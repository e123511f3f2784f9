"""Fine-tuning and pre-training requests: checked here, run by a training worker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.services.jobs import submit
from core.context import Context
from core.errors import InvalidRequest, NotFound
from core.records import registry
from core.records.studies import get_series, get_study
from core.records.tables import Dataset, Job, ModelVersion, Series
from lrc.train.finetune_config import FinetuneConfig
from lrc.train.memory import Estimate, finetune_bytes, gib, pretrain_bytes
from lrc.train.pretrain_config import PretrainConfig
from lrc.train.setting import from_options

MAX_SERIES = 1000  # series one pre-training reads (its studies' series counted too)


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
    config = from_options(FinetuneConfig, options)  # the API has checked them: the defaults filled in
    with ctx.db.session() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None or dataset.project != project:
            raise NotFound("dataset", dataset_id)
        base = registry.find(session, project, base_model) if base_model else None
        if base is not None and base.kind == "segmentation" and config.spatial_dims == 3:
            raise InvalidRequest("3D fine-tuning starts from scratch or a 3D model; this base model is 2D")
        if name:
            target = name
        elif base is not None and base.kind == "segmentation":
            target = base.name
            if not registry.MODEL_NAME.fullmatch(target):
                raise InvalidRequest(f"model {target!r} cannot take fine-tuned versions under its name: give 'name'")
        else:  # the dataset's name is free text: it names a folder, and 'name:version' must find the model
            target = registry.model_name_from(dataset.name)
        grids = [_grid(get_series(session, c.series_id, project)) for c in dataset.cases]
        _check_memory(ctx, "fine-tuning", _finetune_estimate(grids, config, base))
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
        if len(chosen) > MAX_SERIES:
            raise InvalidRequest(f"{len(chosen)} series: a pre-training reads at most {MAX_SERIES}")
        grids = [_grid(get_series(session, series_id, project)) for series_id in chosen]
    if not chosen:
        raise InvalidRequest("name the unlabeled scans: 'series_ids' or 'study_ids'")
    config = from_options(PretrainConfig, options, method=method)
    estimate = pretrain_bytes(
        grids,
        spacing=config.spacing,
        canvas=config.canvas,
        view_size=config.view_size,
        batch_size=config.batch_size,
        features=config.features,
        queue_size=config.queue_size,
        embedding_dim=config.embedding_dim,
        regions_per_image=config.regions_per_image,
        pixels_per_region=config.pixels_per_region,
    )
    _check_memory(ctx, "pre-training", estimate)
    payload = {"series_ids": chosen, "method": method, "name": name, "options": options}
    return submit(ctx, "pretrain", payload, by, project)


def _grid(series: Series) -> tuple[list[int], list[float]]:
    return [int(n) for n in series.shape], [float(v) for v in series.spacing]


def _finetune_estimate(
    grids: list[tuple[list[int], list[float]]], config: FinetuneConfig, base: ModelVersion | None
) -> Estimate:
    """The fine-tuning's memory; a base model's grid and widths replace the options' (as the training does)."""
    spacing, canvas = config.spacing, config.canvas
    features: Sequence[int] = config.features
    if base is not None:
        card = base.card
        spacing, canvas = float(card["spacing"][0]), int(card["canvas"])
        features = card["arguments"]["features"]
    return finetune_bytes(
        grids,
        spacing=spacing,
        canvas=canvas,
        batch_size=config.batch_size,
        patch=min(config.patch, canvas),
        features=features,
        spatial_dims=config.spatial_dims,
        patch_depth=config.patch_depth,
    )


def _check_memory(ctx: Context, what: str, estimate: Estimate) -> None:
    """Refuse a job whose estimate exceeds what a worker has (``LRC_WORKER_MEMORY_BYTES``)."""
    limit = ctx.settings.worker_memory_bytes
    if estimate.total > limit:
        raise InvalidRequest(
            f"this {what} would need about {gib(estimate.total)} of memory ({estimate.describe()}), more than a "
            f"worker's {gib(limit)} (LRC_WORKER_MEMORY_BYTES): use fewer or smaller images, a coarser spacing, "
            "a smaller batch, patch or canvas"
        )

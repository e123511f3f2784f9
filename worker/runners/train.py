"""``lrc.finetune`` and ``lrc.pretrain``: train on stored data, register a candidate model version.

A fine-tuned candidate is compared with the current production version of the same model on the
candidate's own held-out cases (the same cases, the same scoring function), so that the promotion
gate compares like with like.

A job reports its stage as it goes: ``reading`` (each series or case read from the blobs, metrics
``read`` and ``of``), ``preparing`` (the slices and super-pixels built for training, ``prepared``: the
share done), ``training`` (and ``validating``), then ``comparing with production`` for a fine-tune.
Every report is also where a cancellation is seen (:class:`worker.execution.Reporter`), so a job
cancelled while it loads a thousand series stops after the series or slice at hand.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from core.context import Context
from core.records import registry
from core.records.projects import SHARED
from core.records.studies import get_series
from core.records.tables import Dataset, Job, ModelVersion, Series
from core.settings import Settings
from lrc.io.label_maps import read_label
from lrc.io.labels import LabelTable
from worker.execution import Reporter
from worker.runners.common import read_series, scratch

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Loaded = TypeVar("Loaded")
Config = TypeVar("Config")
READ = (0.0, 0.03)  # the job's progress while reading: from, to
PREPARED = (0.03, 0.05)  # while preparing; training starts at the end


class _Progress:
    """A training's progress as the job reports it: step, steps, the step's metrics and ``eta_s``, the
    seconds left at the pace so far; during a validation pass the stage is ``validating`` with
    ``validated``, the share of its slices done."""

    def __init__(self, report: Reporter, steps: int, start: float, span: float, stage: str) -> None:
        self.report, self.steps, self.start, self.span, self.stage = report, steps, start, span, stage
        self.began = time.monotonic()
        self.last: dict[str, float] = {}

    def _at(self, step: int) -> float:
        return self.start + self.span * step / max(1, self.steps)

    def _eta(self, step: int) -> float:
        return round((time.monotonic() - self.began) / max(1, step) * (self.steps - step), 1)

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        self.last = {"step": step, "steps": self.steps, **metrics, "eta_s": self._eta(step)}
        self.report(self._at(step), self.stage, self.last, last=step >= self.steps)

    def validating(self, step: int, done: float) -> None:
        metrics = {**self.last, "step": step, "steps": self.steps, "validated": round(done, 3)}
        self.report(self._at(step), "validating", metrics, last=False)


def read_each(report: Reporter, items: Sequence[Item], read: Callable[[int, Item], Loaded]) -> list[Loaded]:
    """``read(index, item)`` of every item, with a ``reading`` report (and a cancellation check) before each."""
    start, end = READ
    loaded = []
    for index, item in enumerate(items):
        report(start + (end - start) * index / max(1, len(items)), "reading", {"read": index, "of": len(items)})
        loaded.append(read(index, item))
    report(end, "reading", {"read": len(items), "of": len(items)}, last=True)
    return loaded


def preparing(report: Reporter) -> Callable[[float], None]:
    """The ``preparing`` callback of :func:`lrc.train.finetune.finetune` and :func:`lrc.train.pretrain.pretrain`."""
    start, end = PREPARED

    def prepared(share: float) -> None:
        report(start + (end - start) * share, "preparing", {"prepared": round(share, 3)}, last=share >= 1)

    return prepared


def model_folder(settings: Settings, project: str, name: str, job_id: str) -> Path:
    """Where a training job of ``project`` writes model ``name``: inside the model folder, always.

    The API checks names (and makes one from a dataset's name); this is the check of last resort.

    Raises:
        ValueError: ``name`` is no model name, or the folder would be outside the model folder.
    """
    if not registry.MODEL_NAME.fullmatch(name):
        raise ValueError(f"model name {name!r} must match {registry.MODEL_NAME_PATTERN}")
    root = settings.model_dir / "projects"
    folder = root / project / name / f"job-{job_id}"
    if not folder.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"model name {name!r} of project {project!r} leads outside the model folder")
    return folder


def job_config(config: type[Config], job: Job, **fixed: Any) -> Config:
    """The training config of a job's ``options`` (:func:`lrc.train.setting.from_options`).

    A payload's settings that the API does not offer (a job queued while it did) apply too, and the
    log names them; ``superpixel_scale`` is ``PretrainConfig.superpixels``' scale.
    """
    from lrc.superpixels import SuperpixelParams
    from lrc.train.setting import from_options, library_only

    options = dict(job.payload.get("options") or {})
    kept = sorted(set(options) & {*library_only(config, "api"), "superpixel_scale"})
    if kept:
        log.info("job %s: options the API does not offer, run as queued: %s", job.id, ", ".join(kept))
    if "superpixel_scale" in options:
        options["superpixels"] = SuperpixelParams(scale=options.pop("superpixel_scale"))
    return from_options(config, options, **fixed)


def release_memory() -> None:
    """Give GPU memory back after a training job (the worker process lives on)."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def finetune(ctx: Context, job: Job, report: Reporter) -> dict[str, Any]:
    """Fine-tune on a dataset; register the result as a candidate with its comparison to production."""
    from lrc.model_dirs.store import read_card
    from lrc.train.finetune import finetune as run
    from lrc.train.finetune import fixed_split
    from lrc.train.finetune_config import FinetuneConfig

    payload = job.payload
    with ctx.db.session() as session:
        dataset = session.get(Dataset, payload["dataset_id"])
        if dataset is None or dataset.project != job.project:
            raise ValueError(f"dataset {payload['dataset_id']} was deleted")
        cases_rows = [
            (get_series(session, c.series_id, job.project), c.label_name, c.label_sha256) for c in dataset.cases
        ]
        table = LabelTable.from_names({int(k): v for k, v in dataset.labels.items()})
        base = session.get(ModelVersion, payload["base_version_id"]) if payload.get("base_version_id") else None
        if base is not None and base.project not in (job.project, SHARED):
            raise ValueError(f"base model version {base.id} is not visible to this job's project")
    config = job_config(FinetuneConfig, job)
    out = model_folder(ctx.settings, job.project, payload["name"], job.id)
    with ctx.db.session() as session:
        current = registry.production(session, job.project, payload["name"])
        numbering = _label_table(current.card) if current is not None else None
    try:
        with scratch(ctx, f"finetune-{job.id}-") as folder:

            def read_case(number: int, row: tuple[Series, str, str]) -> tuple[Any, Any]:
                series, label_name, label_sha = row
                image = read_series(ctx, series, folder / f"case{number}")
                label_path = ctx.store.materialize([(label_name, label_sha)], folder / f"label{number}")[0]
                return image, read_label(label_path, image)

            cases = read_each(report, cases_rows, read_case)
            progress = _Progress(report, config.steps, PREPARED[1], 0.85, "training")
            written = run(
                cases,
                table,
                out,
                config,
                init=Path(base.path) if base else None,
                device=ctx.settings.device,
                progress=progress,
                numbering=numbering,
                validating=progress.validating,
                preparing=preparing(report),
            )
            card = read_card(written)
            report(0.92, "comparing with production", progress.last)
            _, held_out = fixed_split(cases, config.validation_fraction)

            def comparing(done: float) -> None:  # the training's last metrics stay in the progress
                report(0.92 + 0.06 * done, "comparing with production", {**progress.last, "compared": round(done, 3)})

            comparison = _compare(ctx, card.metrics, current, [cases[i] for i in held_out], table, comparing)
    finally:
        release_memory()
    card_json = _card_json(written)
    with ctx.db.session() as session:
        version = registry.register(
            session,
            payload["name"],
            str(written),
            card_json,
            job.project,
            comparison=comparison,
            parent_id=base.id if base else None,
            job_id=job.id,
        )
        return {"model": version.name, "version": version.version, "metrics": card_json.get("metrics")}


def _compare(
    ctx: Context,
    metrics: dict[str, Any] | None,
    current: ModelVersion | None,
    held_out: list[Any],
    table: LabelTable,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Scores of the candidate and of the production version on the candidate's held-out cases
    (``progress``: called with the share of their slices predicted by production).

    Both are scored on the structures they share with each other and with the dataset, each
    matched to the dataset's labels by name or code (never by value), so that a production
    version numbering its labels otherwise is scored on what it really segments.
    """
    from lrc.device import resolve_device
    from lrc.label_match import LabelMismatch
    from lrc.model_dirs.store import load_model
    from lrc.train.finetune import validate

    if current is None:
        return {"note": "no production version to compare with"}
    comparison: dict[str, Any] = {"production_id": current.id, "production_version": current.version}
    if not held_out or metrics is None:
        return {**comparison, "note": "no held-out cases (the dataset needs at least 2 cases)"}
    net, card = load_model(current.path, kind="segmentation")
    device = resolve_device(ctx.settings.device)
    try:
        scores = validate(net.to(device), card, held_out, device, table, progress)
    except LabelMismatch as exc:
        return {**comparison, "note": f"production segments none of the dataset's structures ({exc})"}
    candidate = _by_reference(metrics)
    production = _by_reference(scores)
    common = [value for value in candidate if value in production]
    names = {str(v): table[v].name for v in table}
    per_label = {names[v]: {"candidate": candidate[v], "production": production[v]} for v in common}
    result = {
        **comparison,
        "cases": len(held_out),
        "metric": "mean Dice over the structures both segment, held-out cases of the candidate's fixed split",
        "per_label": per_label,
        "candidate_only": [names[v] for v in candidate if v not in production],
        "production_only": [names[v] for v in production if v not in candidate],
    }
    mine = _mean([d["candidate"] for d in per_label.values()])
    theirs = _mean([d["production"] for d in per_label.values()])
    if mine is None or theirs is None:
        return {**result, "note": "the candidate and production share no structure scored on these cases"}
    return {**result, "candidate_score": mine, "production_score": theirs}


def _by_reference(scores: dict[str, Any]) -> dict[str, float | None]:
    """Dice per structure keyed by the dataset's label value (as text), from :func:`validate`'s result."""
    matched = scores["labels"]["matched"]
    return {str(matched[name]["reference"]): dice for name, dice in scores["dice"].items()}


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _label_table(card: dict[str, Any]) -> LabelTable | None:
    """The label table of a registered version's card (``None`` for a backbone)."""
    from lrc.model_dirs.card import ModelCard

    return ModelCard.from_json(card).labels if card.get("labels") else None


def _card_json(directory: Path) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads((directory / "model.json").read_text())
    return data


def pretrain(ctx: Context, job: Job, report: Reporter) -> dict[str, Any]:
    """Self-supervised pre-training on stored series; register a ``pretrained`` candidate."""
    from lrc.train.pretrain import pretrain as run
    from lrc.train.pretrain_config import PretrainConfig

    payload = job.payload
    with ctx.db.session() as session:
        series_rows: list[Series] = [get_series(session, s, job.project) for s in payload["series_ids"]]
    config = job_config(PretrainConfig, job, method=payload["method"])
    out = model_folder(ctx.settings, job.project, payload["name"], job.id)
    try:
        with scratch(ctx, f"pretrain-{job.id}-") as folder:
            volumes = read_each(report, series_rows, lambda i, s: read_series(ctx, s, folder / f"s{i}"))
            written = run(
                volumes,
                out,
                config,
                device=ctx.settings.device,
                cache_dir=ctx.settings.data_dir / "cache" / "superpixels",
                progress=_Progress(report, config.steps, PREPARED[1], 0.9, "training"),
                preparing=preparing(report),
            )
    finally:
        release_memory()
    with ctx.db.session() as session:
        card_json = _card_json(written)
        version = registry.register(session, payload["name"], str(written), card_json, job.project, job_id=job.id)
        return {"model": version.name, "version": version.version}

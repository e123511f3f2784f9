"""Segmentations: a job per (series, model version), one per ``Idempotency-Key``; results by format once produced."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.services.jobs import utc
from core.context import Context
from core.dispatch import dispatch
from core.errors import IdempotencyKeyReused, InvalidRequest, NotFound, ResultNotReady
from core.records import jobs as job_records
from core.records import registry
from core.records.studies import get_series
from core.records.tables import Job, ModelVersion, Segmentation
from lrc.model_dirs.card import ModelCard, tile_option
from lrc.writers import UnknownFormat, get_writer


@dataclass(frozen=True)
class ResultFile:
    """A result ready to download."""

    path: Path
    media_type: str
    filename: str


def create(
    ctx: Context,
    series_id: str,
    model: str | None,
    created_by: str | None,
    project: str,
    request_key: str | None = None,
    tiles: bool | None = None,
) -> tuple[Segmentation, Job]:
    """Queue the segmentation of a series of ``project`` by a model it sees (``name``, ``name:version`` or the
    production model); ``tiles``: a 2D model runs over tiles of its training patch (True) or whole slices
    (False); None: as its card says (``Predictor``'s ``tile="model"``).

    With a ``request_key`` (the ``Idempotency-Key`` header) the first request of that key in ``project``
    is carried out and every repetition returns its segmentation and job, creating nothing. Requests
    racing with one key: the unique index on (project, request_key) lets one commit; the others roll
    back (their job included, never dispatched) and return the winner's.

    Raises:
        IdempotencyKeyReused: the key made a segmentation of another series or model request.
        InvalidRequest: tiles asked of a 2D model whose card records no training patch.
    """
    if request_key is not None:
        with ctx.db.session() as session:
            found = _by_request_key(session, project, request_key, series_id, model, tiles)
        if found is not None:
            return found
    try:
        with ctx.db.session() as session:
            get_series(session, series_id, project)
            version = registry.resolve(session, project, model)
            try:  # the worker's own check, before a job is made
                ModelCard.from_json(version.card).tile_side(tile_option(tiles))
            except ValueError as exc:
                raise InvalidRequest(f"model {version.name}:{version.version}: {exc}; send tiles false") from None
            job = job_records.create_job(session, "segment", {}, created_by, project)
            seg = Segmentation(
                series_id=series_id,
                model_version_id=version.id,
                job_id=job.id,
                created_by=created_by,
                project=project,
                request_key=request_key,
            )
            session.add(seg)
            session.flush()
            # ``model`` as asked (None: production), to tell a repeated request from another one.
            job.payload = {"segmentation_id": seg.id, "model": model, "tiles": tiles}
    except IntegrityError:
        if request_key is None:
            raise
        with ctx.db.session() as session:
            found = _by_request_key(session, project, request_key, series_id, model, tiles)
        if found is None:  # not the key's index that refused the row
            raise
        return found
    dispatch(ctx, job.id, job.kind, job.dispatch_token)
    return seg, job


def _by_request_key(
    session: Session, project: str, request_key: str, series_id: str, model: str | None, tiles: bool | None
) -> tuple[Segmentation, Job] | None:
    """The segmentation (and job) that ``request_key`` made in ``project``; None when it made none."""
    seg = session.scalar(
        select(Segmentation).where(Segmentation.project == project, Segmentation.request_key == request_key)
    )
    if seg is None:
        return None
    job = job_records.get_job(session, seg.job_id, project)
    asked, tiled = job.payload.get("model"), job.payload.get("tiles")
    if seg.series_id != series_id or asked != model or tiled != tiles:
        raise IdempotencyKeyReused(
            f"this Idempotency-Key was used for another request (series {seg.series_id!r}, model "
            f"{asked or '(production)'!r}, tiles {tiled}) in this project, which made segmentation {seg.id}; send "
            "a new key for a new request"
        )
    return seg, job


def get(ctx: Context, segmentation_id: str, project: str) -> tuple[Segmentation, Job, Job | None, ModelVersion]:
    """A segmentation of ``project`` with its job, export job and model version."""
    with ctx.db.session() as session:
        seg = session.get(Segmentation, segmentation_id)
        if seg is None or seg.project != project:
            raise NotFound("segmentation", segmentation_id)
        job = job_records.get_job(session, seg.job_id, project)
        export = job_records.get_job(session, seg.export_job_id, project) if seg.export_job_id else None
        version = session.get(ModelVersion, seg.model_version_id)
        assert version is not None
        return seg, job, export, version


def view(ctx: Context, segmentation_id: str, project: str) -> dict[str, Any]:
    """The public form of a segmentation of ``project``."""
    seg, job, export, version = get(ctx, segmentation_id, project)
    return {
        "id": seg.id,
        "series_id": seg.series_id,
        "model": {"name": version.name, "version": version.version},
        "tiles": job.payload.get("tiles"),
        "tile": job.result.get("tile") if job.state == "succeeded" else None,
        "job_id": job.id,
        "state": job.state,
        "export_job_id": export.id if export else None,
        "formats": sorted(seg.outputs),
        "created_at": utc(seg.created_at),
    }


def result(ctx: Context, segmentation_id: str, fmt: str, project: str) -> ResultFile:
    """The result file in ``fmt`` of a segmentation of ``project``.

    Raises:
        InvalidRequest: unknown format, or a DICOM format for a series not read from DICOM.
        ResultNotReady: the job (or the DICOM export) has not succeeded yet.
    """
    try:
        writer = get_writer(fmt)
    except UnknownFormat as exc:
        raise InvalidRequest(str(exc)) from None
    seg, job, export, _ = get(ctx, segmentation_id, project)
    if fmt not in seg.outputs:
        if job.state != "succeeded":
            raise ResultNotReady(_not_ready(job, "segmentation"))
        if writer.needs_dicom and export is None:
            raise InvalidRequest(
                f"no {fmt} for this series: a {fmt} must reference DICOM images with their UIDs, and this "
                "series was read from NIfTI or from DICOM files without UIDs; download format=nifti"
            )
        if export is not None and export.state != "succeeded":
            raise ResultNotReady(_not_ready(export, f"{fmt} export"))
        raise NotFound(f"{fmt} result of segmentation", segmentation_id)
    return ResultFile(ctx.store.path(seg.outputs[fmt]), writer.media_type, writer.filename)


def _not_ready(job: Job, what: str) -> str:
    if job.state in ("failed", "cancelled"):
        return f"the {what} job {job.id} {job.state}: {job.error or 'no reason recorded'}"
    return f"the {what} job {job.id} is {job.state} ({job.stage}, {job.progress:.0%}); try again later"

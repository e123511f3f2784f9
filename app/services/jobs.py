"""Jobs: submission, cancellation and the public view (dispatch and the recovery sweep: :mod:`core.dispatch`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.context import Context
from core.dispatch import dispatch
from core.records import jobs as records
from core.records.tables import Job


def submit(ctx: Context, kind: str, payload: dict[str, Any], created_by: str | None, project: str) -> Job:
    """Record and queue a job of ``project``."""
    with ctx.db.session() as session:
        job = records.create_job(session, kind, payload, created_by, project)
    dispatch(ctx, job.id, job.kind, job.dispatch_token)
    return job


def cancel(ctx: Context, job_id: str, project: str) -> Job:
    """Cancel a queued or running job of ``project`` (see :func:`core.records.jobs.cancel`)."""
    with ctx.db.session() as session:
        job = records.cancel(session, job_id, project)
    ctx.queue.revoke(job.dispatch_token)
    return job


def get(ctx: Context, job_id: str, project: str) -> Job:
    """The job record (of ``project``)."""
    with ctx.db.session() as session:
        return records.get_job(session, job_id, project)


def find(ctx: Context, project: str, state: str | None, kind: str | None, limit: int, offset: int) -> list[Job]:
    """The jobs of ``project``, newest first (see :func:`core.records.jobs.list_jobs`)."""
    with ctx.db.session() as session:
        return records.list_jobs(session, project, state, kind, limit, offset)


def links(job: Job) -> dict[str, str]:
    """Where the job's results are, once it has succeeded."""
    result = job.result or {}
    found: dict[str, str] = {}
    if "segmentation_id" in result:
        base = f"/v1/segmentations/{result['segmentation_id']}"
        found["segmentation"] = base
        for fmt in result.get("formats", ()):
            found[fmt] = f"{base}/result?format={fmt}"
    if "model" in result and "version" in result:
        found["model_version"] = f"/v1/models/{result['model']}/versions/{result['version']}"
    return found


def utc(value: dt.datetime | None) -> str | None:
    """ISO time in UTC (SQLite returns naive times, stored as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()


def view(job: Job) -> dict[str, Any]:
    """The public form of a job."""
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "progress": {"fraction": job.progress, "stage": job.stage, "metrics": job.metrics or {}},
        "result": job.result or {},
        "links": links(job) if job.state == "succeeded" else {},
        "error": job.error,
        "attempts": job.attempts,
        "created_at": utc(job.created_at),
        "started_at": utc(job.started_at),
        "finished_at": utc(job.finished_at),
    }

"""Jobs: dispatch after commit, cancellation, the public view, and the recovery sweep."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from kombu.exceptions import OperationalError

from app.context import Context
from app.records import jobs as records
from app.records.models import Job, now

log = logging.getLogger(__name__)


def dispatch(ctx: Context, job_id: str, kind: str, token: str) -> None:
    """Send a committed job to its queue; if the broker is down the recovery sweep sends it later."""
    try:
        ctx.queue.dispatch(job_id, kind, token)
    except (OperationalError, OSError) as exc:
        log.warning("job %s not sent yet (broker: %s); the recovery sweep will send it", job_id, exc)


def submit(ctx: Context, kind: str, payload: dict[str, Any], created_by: str | None, project: str) -> Job:
    """Record and queue a job of ``project``."""
    with ctx.db.session() as session:
        job = records.create_job(session, kind, payload, created_by, project)
    dispatch(ctx, job.id, job.kind, job.dispatch_token)
    return job


def cancel(ctx: Context, job_id: str, project: str) -> Job:
    """Cancel a queued or running job of ``project`` (see :func:`app.records.jobs.cancel`)."""
    with ctx.db.session() as session:
        job = records.cancel(session, job_id, project)
    ctx.queue.revoke(job.dispatch_token)
    return job


def get(ctx: Context, job_id: str, project: str) -> Job:
    """The job record (of ``project``)."""
    with ctx.db.session() as session:
        return records.get_job(session, job_id, project)


def find(ctx: Context, project: str, state: str | None, kind: str | None, limit: int, offset: int) -> list[Job]:
    """The jobs of ``project``, newest first (see :func:`app.records.jobs.list_jobs`)."""
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


def sweep(
    ctx: Context,
    at_start: bool = False,
    previous_worker: str | None = None,
    started: dt.datetime | None = None,
    kinds: tuple[str, ...] | None = None,
) -> dict[str, int]:
    """Re-send jobs whose delivery was lost; fail those that were lost too often.

    Lost: ``running`` without a heartbeat for ``LRC_STALE_AFTER_S`` (or started before ``started``
    by ``previous_worker``: an earlier incarnation of a restarting worker), and ``queued`` jobs (all
    of them at a worker's start, when embedded transports may have dropped fetched messages; else
    those queued longer than ``LRC_REDISPATCH_QUEUED_AFTER_S``). At a start, only the job
    ``kinds`` of the starting worker's queues are sent again: its own fetched messages are the ones
    that may have been lost. Re-sending gives a new dispatch token, so an older
    delivery that still arrives does nothing.
    """
    settings = ctx.settings
    stamp = now()
    counts = {"requeued": 0, "failed": 0, "redispatched": 0}
    with ctx.db.session() as session:
        lost = records.stale_running(session, stamp - dt.timedelta(seconds=settings.stale_after_s))
        if previous_worker and started:
            lost += [j for j in records.running_on(session, previous_worker, started) if j not in lost]
        waiting = records.queued(
            session, None if at_start else stamp - dt.timedelta(seconds=settings.redispatch_queued_after_s)
        )
    if at_start and kinds is not None:
        waiting = [job for job in waiting if job.kind in kinds]
    sends: list[tuple[str, str, str]] = []
    for job in lost:
        with ctx.db.session() as session:
            if job.attempts >= settings.max_attempts:
                records.fail_lost(
                    session,
                    job,
                    f"the worker running this job was lost {job.attempts} time(s) (out of memory, killed or "
                    f"crashed); not retried again. Try smaller settings or contact an administrator",
                )
                counts["failed"] += 1
            elif token := records.redispatch(session, job):
                sends.append((job.id, job.kind, token))
                counts["requeued"] += 1
    for job in waiting:
        with ctx.db.session() as session:
            if token := records.redispatch(session, job):
                sends.append((job.id, job.kind, token))
                counts["redispatched"] += 1
    for job_id, kind, token in sends:
        dispatch(ctx, job_id, kind, token)
    if any(counts.values()):
        log.warning("recovery sweep: %s", counts)
    return counts

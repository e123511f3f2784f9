"""Sending committed jobs to their queues, and the recovery sweep that sends lost ones again."""

from __future__ import annotations

import datetime as dt
import logging

from kombu.exceptions import OperationalError

from core.context import Context
from core.records import jobs as records
from core.records.tables import now

log = logging.getLogger(__name__)


def dispatch(ctx: Context, job_id: str, kind: str, token: str) -> None:
    """Send a committed job to its queue; if the broker is down the recovery sweep sends it later."""
    try:
        ctx.queue.dispatch(job_id, kind, token)
    except (OperationalError, OSError) as exc:
        log.warning("job %s not sent yet (broker: %s); the recovery sweep will send it", job_id, exc)


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

"""Job records: creation, claiming by a worker, progress, outcome, cancellation and recovery.

State changes that race between processes (a worker claiming a job, a sweep re-dispatching it,
a user cancelling it) are compare-and-set updates on ``state`` and ``dispatch_token``: of two
deliveries of one job only the one holding the current token runs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound
from core.records.tables import Job, WorkerBeat, new_id, now

KINDS = ("segment", "finetune", "pretrain", "export")
ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled")
CHUNK = 500  # ids in one IN list (SQLite took at most 999 parameters)


def create_job(session: Session, kind: str, payload: dict[str, Any], created_by: str | None, project: str) -> Job:
    """A queued job of ``project`` (dispatch it after the transaction commits)."""
    if kind not in KINDS:
        raise ValueError(f"job kind must be one of {KINDS}")
    job = Job(
        kind=kind, payload=payload, created_by=created_by, project=project, dispatch_token=new_id(), stage="queued"
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: str, project: str) -> Job:
    """The job of ``project``, or :class:`NotFound`."""
    job = session.get(Job, job_id)
    if job is None or job.project != project:
        raise NotFound("job", job_id)
    return job


def list_jobs(
    session: Session, project: str, state: str | None = None, kind: str | None = None, limit: int = 50, offset: int = 0
) -> list[Job]:
    """The jobs of ``project``, newest first, optionally of one state and kind."""
    query = select(Job).where(Job.project == project)
    query = query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    if state is not None:
        query = query.where(Job.state == state)
    if kind is not None:
        query = query.where(Job.kind == kind)
    return list(session.scalars(query))


def claim(session: Session, job_id: str, token: str, worker: str) -> Job | None:
    """Mark a queued job running for this delivery; ``None`` when it is not this delivery's to run."""
    stamp = now()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.dispatch_token == token, Job.state == "queued")
        .values(
            state="running",
            worker=worker,
            attempts=Job.attempts + 1,
            started_at=stamp,
            heartbeat_at=stamp,
            stage="starting",
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(Job, job_id, populate_existing=True)


def heartbeat(session: Session, job_id: str, token: str) -> str | None:
    """Record that the job is alive; return its state (``None`` if this delivery lost it)."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.dispatch_token == token, Job.state == "running")
        .values(heartbeat_at=now())
    )
    return session.scalar(select(Job.state).where(Job.id == job_id, Job.dispatch_token == token))


def record_progress(
    session: Session, job_id: str, token: str, fraction: float, stage: str, metrics: dict[str, Any] | None = None
) -> str | None:
    """Write progress of a running job; return its state (``cancelled`` tells the runner to stop)."""
    values: dict[str, Any] = {"progress": max(0.0, min(1.0, fraction)), "stage": stage, "heartbeat_at": now()}
    if metrics is not None:
        values["metrics"] = metrics
    session.execute(
        update(Job).where(Job.id == job_id, Job.dispatch_token == token, Job.state == "running").values(**values)
    )
    return session.scalar(select(Job.state).where(Job.id == job_id, Job.dispatch_token == token))


def finish(
    session: Session,
    job_id: str,
    token: str,
    state: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """Record the outcome of a running job; False when it was cancelled or re-dispatched meanwhile."""
    if state not in FINAL:
        raise ValueError(f"final state must be one of {FINAL}")
    values: dict[str, Any] = {"state": state, "finished_at": now(), "error": error, "stage": state}
    if state == "succeeded":
        values["progress"] = 1.0
    if result is not None:
        values["result"] = result
    changed = session.execute(
        update(Job).where(Job.id == job_id, Job.dispatch_token == token, Job.state == "running").values(**values)
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def cancel(session: Session, job_id: str, project: str) -> Job:
    """Cancel a queued or running job of ``project`` (a running one stops at its next progress report).

    Raises:
        NotFound: no such job in the project.
        Conflict: the job has already finished.
    """
    job = get_job(session, job_id, project)
    if job.state not in ACTIVE:
        raise Conflict(f"job {job_id} has already {job.state}; nothing to cancel")
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_(ACTIVE))
        .values(state="cancelled", stage="cancelled", finished_at=now(), error="cancelled by a user")
    )
    return session.get(Job, job_id, populate_existing=True)  # type: ignore[return-value]


def redispatch(session: Session, job: Job) -> str | None:
    """Give a job a new dispatch token (stale deliveries become no-ops) and queue it again.

    Only if it is still in the state and delivery it was seen in: a queued job claimed meanwhile
    keeps running. Returns the new token, or ``None`` when another process changed the job first.
    """
    token = new_id()
    changed = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.dispatch_token == job.dispatch_token, Job.state == job.state)
        .values(state="queued", dispatch_token=token, dispatched_at=now(), stage="queued (recovered)", worker=None)
    )
    return token if changed.rowcount else None  # type: ignore[attr-defined]


def fail_lost(session: Session, job: Job, reason: str) -> None:
    """Fail a job whose runs were all lost."""
    session.execute(
        update(Job)
        .where(Job.id == job.id, Job.dispatch_token == job.dispatch_token, Job.state == job.state)
        .values(state="failed", stage="failed", finished_at=now(), error=reason)
    )


def stale_running(session: Session, older_than: dt.datetime) -> list[Job]:
    """Running jobs whose last heartbeat is older than ``older_than``."""
    return list(session.scalars(select(Job).where(Job.state == "running", Job.heartbeat_at < older_than)))


def queued(session: Session, dispatched_before: dt.datetime | None = None) -> list[Job]:
    """Queued jobs (dispatched before a time, when given)."""
    query = select(Job).where(Job.state == "queued")
    if dispatched_before is not None:
        query = query.where(Job.dispatched_at < dispatched_before)
    return list(session.scalars(query.order_by(Job.created_at)))


def beat(session: Session, hostname: str, queues: str) -> None:
    """Record a worker's sign of life."""
    row = session.get(WorkerBeat, hostname)
    if row is None:
        session.add(WorkerBeat(hostname=hostname, queues=queues, seen_at=now()))
    else:
        row.seen_at, row.queues = now(), queues


def live_workers(session: Session, seen_after: dt.datetime) -> list[WorkerBeat]:
    """Workers seen since ``seen_after``."""
    return list(session.scalars(select(WorkerBeat).where(WorkerBeat.seen_at >= seen_after)))


def running_on(session: Session, worker: str, started_before: dt.datetime) -> list[Job]:
    """Jobs recorded as running on ``worker`` that started before ``started_before``."""
    query = select(Job).where(Job.state == "running", Job.worker == worker, Job.started_at < started_before)
    return list(session.scalars(query))


def competing(session: Session, worker: str, queue_of: dict[str, str], seen_after: dt.datetime) -> int:
    """Jobs of the kinds of ``queue_of`` (kind -> queue) that compete with ``worker``'s for its machine's
    CPUs: those running on its machine's other workers (Celery names ``name@host``), and those queued
    on a queue one of these workers (seen since ``seen_after``) consumes: it may take one any moment."""
    host = _host(worker)
    beside = (Job.state == "running") & (Job.worker != worker) & Job.worker.endswith(f"@{host}", autoescape=True)
    others = [w for w in live_workers(session, seen_after) if w.hostname != worker and _host(w.hostname) == host]
    served = {queue for w in others for queue in w.queues.split(",")}
    takeable = [kind for kind, queue in queue_of.items() if queue in served]
    waiting = (Job.state == "queued") & Job.kind.in_(takeable)
    return session.scalar(select(func.count()).where(Job.kind.in_(list(queue_of)), beside | waiting)) or 0


def _host(worker: str) -> str:
    return worker.partition("@")[2] or worker


def outcomes(session: Session, job_ids: list[str]) -> dict[str, tuple[str, dt.datetime | None]]:
    """State and finish time (UTC) of each of ``job_ids`` that has a record."""
    found: dict[str, tuple[str, dt.datetime | None]] = {}
    for start in range(0, len(job_ids), CHUNK):
        rows = session.execute(
            select(Job.id, Job.state, Job.finished_at).where(Job.id.in_(job_ids[start : start + CHUNK]))
        )
        for job_id, state, finished in rows:
            found[job_id] = (state, finished.replace(tzinfo=dt.UTC) if finished and not finished.tzinfo else finished)
    return found

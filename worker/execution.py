"""Running one job delivery: claim it, keep a heartbeat, report progress, record the outcome.

The job record is the source of truth. A delivery runs only if it claims the job (state
``queued`` with this delivery's token). Cancellation is seen at the next progress report or
heartbeat and stops the runner with :class:`JobCancelled`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from core.celery_app import QUEUE_OF
from core.context import Context
from core.errors import ServiceError
from core.records import jobs as records
from core.records.tables import Job, now
from worker.threads import MODEL_KINDS, lend_idle_cpus

log = logging.getLogger(__name__)
Runner = Callable[[Context, Job, "Reporter"], dict[str, Any]]


class JobCancelled(Exception):
    """The job was cancelled (or handed to another delivery) while it ran."""


class Reporter:
    """Progress of one running job, written to the database at most every ``interval`` seconds."""

    def __init__(self, ctx: Context, job_id: str, token: str, interval: float = 0.5) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self.token = token
        self.interval = interval
        self.stopped = threading.Event()  # set by the heartbeat when the job was cancelled
        self._last = 0.0
        self._stage = ""

    def __call__(
        self, fraction: float, stage: str, metrics: dict[str, Any] | None = None, *, last: bool = False
    ) -> None:
        """Record progress; raise :class:`JobCancelled` when the job should stop.

        ``last``: the stage's final report (its metrics are kept however soon it follows the previous one).
        """
        if self.stopped.is_set():
            raise JobCancelled(self.job_id)
        moment = time.monotonic()
        if stage == self._stage and moment - self._last < self.interval and not last:
            return
        self._last, self._stage = moment, stage
        with self.ctx.db.session() as session:
            state = records.record_progress(session, self.job_id, self.token, fraction, stage, metrics)
        if state != "running":
            self.stopped.set()
            raise JobCancelled(self.job_id)

    def check(self) -> None:
        """Raise :class:`JobCancelled` if the job was cancelled."""
        if self.stopped.is_set():
            raise JobCancelled(self.job_id)


def _heartbeat(ctx: Context, reporter: Reporter, done: threading.Event) -> None:
    while not done.wait(ctx.settings.heartbeat_s):
        try:
            with ctx.db.session() as session:
                state = records.heartbeat(session, reporter.job_id, reporter.token)
        except Exception as exc:  # a missed beat is not fatal; the next one may pass
            log.warning("job %s: heartbeat failed: %s", reporter.job_id, exc)
            continue
        if state != "running":
            reporter.stopped.set()


def _competing(ctx: Context, worker: str) -> int:
    seen_after = now() - dt.timedelta(seconds=ctx.settings.stale_after_s)
    with ctx.db.session() as session:
        return records.competing(session, worker, {kind: QUEUE_OF[kind] for kind in MODEL_KINDS}, seen_after)


def run_job(ctx: Context, job_id: str, token: str, worker: str, runner: Runner) -> str:
    """Claim and run one job delivery; return what happened (``skipped`` or the final state)."""
    with ctx.db.session() as session:
        job = records.claim(session, job_id, token, worker)
    if job is None:
        log.info("job %s: delivery %s is stale or the job is not queued; skipped", job_id, token)
        return "skipped"
    reporter = Reporter(ctx, job_id, token)
    done = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(ctx, reporter, done), daemon=True, name=f"heartbeat-{job_id}")
    beat.start()
    state, result, error = "succeeded", None, None
    try:
        log.info("job %s (%s) started on %s, attempt %d", job_id, job.kind, worker, job.attempts)
        if job.kind in MODEL_KINDS:
            threads = lend_idle_cpus(lambda: _competing(ctx, worker))
            if threads is not None:
                log.info("job %s: %d torch threads", job_id, threads)
        result = runner(ctx, job, reporter)
    except JobCancelled:
        log.info("job %s stopped: cancelled, or handed to another delivery by the recovery sweep", job_id)
        return "cancelled"
    except (ServiceError, ValueError, OSError) as exc:  # lrc's ImageIOError and ModelCardError are ValueErrors
        state, error = "failed", str(exc)
        log.warning("job %s failed: %s", job_id, exc)
    except Exception as exc:
        state, error = "failed", f"internal error ({type(exc).__name__}: {exc}); it has been logged"
        log.exception("job %s failed unexpectedly", job_id)
    finally:
        done.set()
        beat.join(timeout=5)
    with ctx.db.session() as session:
        recorded = records.finish(session, job_id, token, state, result, error)
    return state if recorded else "cancelled"

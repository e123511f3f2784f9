"""The worker process: ``celery -A worker.main worker -Q infer,train,io``.

At start it runs the recovery sweep (jobs a previous incarnation left behind), then a background
thread records this worker's heartbeat and sweeps again every ``LRC_SWEEP_INTERVAL_S``, and at once
when the broker comes back as a new server (:mod:`worker.broker_watch`). Each pool process sizes
torch's thread pools before its first job (:mod:`worker.threads`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery.signals import worker_process_init, worker_ready, worker_shutdown

from core.celery_app import QUEUE_OF, make_celery
from core.context import Context
from core.dispatch import sweep
from core.records.jobs import beat
from core.records.tables import now
from core.settings import get_settings
from lrc import log_privacy
from worker import runtime
from worker.broker_watch import RECONNECTIONS, BrokerWatch, ReconnectStep
from worker.tasks import register_tasks
from worker.threads import EMBEDDED_WORKERS, apply_torch_threads, available_cpus, lend_when_idle, torch_threads

log = logging.getLogger(__name__)
log_privacy.install(get_settings().bootstrap_admin_key)  # before Celery logs anything; its pool inherits it
get_settings().prepare()  # the embedded broker's folder must exist before Celery opens it
celery_app = make_celery(get_settings())
celery_app.steps["consumer"].add(ReconnectStep)
register_tasks(celery_app)
_stop = threading.Event()
STARTED = now()  # jobs this worker name ran before this moment were run by an earlier, dead process


def _resend_if_broker_is_new(ctx: Context, watch: BrokerWatch, reconnected: bool, kinds: tuple[str, ...]) -> None:
    """Send this worker's queued jobs again when the broker is a new server (its messages may be gone);
    until that succeeds, at every check."""
    if watch.resend_due(reconnected):
        counts = sweep(ctx, at_start=True, kinds=kinds)
        watch.resent()
        reason = "a new Redis server (run id changed)" if watch.identifies else "reconnected"
        log.warning("broker is %s: queued jobs sent again; recovery sweep: %s", reason, counts)


def _loop(hostname: str, queues: str, kinds: tuple[str, ...], watch: BrokerWatch) -> None:
    ctx = runtime.context()
    interval = min(ctx.settings.sweep_interval_s, ctx.settings.heartbeat_s)
    last_sweep = time.monotonic()
    while not _stop.is_set():
        reconnected = RECONNECTIONS.wait(interval)
        if _stop.is_set():
            break
        try:
            with ctx.db.session() as session:
                beat(session, hostname, queues)
            if time.monotonic() - last_sweep >= ctx.settings.sweep_interval_s:
                last_sweep = time.monotonic()
                sweep(ctx)
        except Exception as exc:  # keep the loop alive through database or broker hiccups
            log.warning("worker loop: %s", exc)
        try:
            _resend_if_broker_is_new(ctx, watch, reconnected, kinds)
        except Exception as exc:  # broker still down: its run id is compared again at the next tick
            log.warning("worker loop: broker check: %s", exc)


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    hostname = str(getattr(sender, "hostname", "worker"))
    queues = ",".join(sorted(q.name for q in celery_app.amqp.queues.consume_from.values()))
    ctx = runtime.context()
    watch = BrokerWatch(ctx.settings.broker_url)
    try:
        watch.restarted()  # the broker's run id now; a later one means a new server
    except Exception as exc:
        log.warning("broker run id not read (%s); the next check records it", exc)
    with ctx.db.session() as session:
        beat(session, hostname, queues)
    kinds = tuple(kind for kind, queue in QUEUE_OF.items() if queue in queues.split(","))
    counts = sweep(ctx, at_start=True, previous_worker=hostname, started=STARTED, kinds=kinds)
    log.info("worker %s ready on %s; recovery sweep: %s", hostname, queues, counts)
    thread = threading.Thread(target=_loop, args=(hostname, queues, kinds, watch), daemon=True, name="lrc-sweeper")
    thread.start()


@worker_process_init.connect
def _warm_up(**_: Any) -> None:
    """Size torch's thread pools before any work; model workers also import torch and MONAI (seconds)
    when they start, not in their first job, and io workers load the DICOM SEG writer's tables."""
    settings = get_settings()
    count = torch_threads(
        settings.worker_torch_threads, len(EMBEDDED_WORKERS), available_cpus(), os.environ.get("OMP_NUM_THREADS")
    )
    intra, inter = apply_torch_threads(count)
    lend_when_idle(count if settings.worker_torch_threads is None else None, available_cpus())
    log.info(
        "torch threads in pool process %d: %d intra-op, %d inter-op (LRC_WORKER_TORCH_THREADS=%s)",
        os.getpid(),
        intra,
        inter,
        "unset" if settings.worker_torch_threads is None else settings.worker_torch_threads,
    )
    queues = set(celery_app.amqp.queues.consume_from)
    if queues & {"infer", "train"}:
        import lrc.infer
        import lrc.train.finetune  # noqa: F401
    if "io" in queues:  # exports: highdicom's tables now, not in the first SEG (lrc.io.seg.warm_up)
        try:
            from lrc.io.seg import warm_up

            started = time.perf_counter()
            warm_up()
            log.info("DICOM SEG writer warmed up in %.2f s", time.perf_counter() - started)
        except Exception as exc:  # a warm-up must never keep a worker from serving
            log.warning("DICOM SEG writer warm-up failed: %s", exc)


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    _stop.set()
    RECONNECTIONS.event.set()  # wake the sweeper thread so that it sees the stop

"""The worker process: ``celery -A worker.main worker -Q infer,train,io``.

At start it runs the recovery sweep (jobs a previous incarnation left behind), then a background
thread records this worker's heartbeat and sweeps again every ``LRC_SWEEP_INTERVAL_S``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_process_init, worker_ready, worker_shutdown

from app.records.jobs import beat
from app.records.models import now
from app.services.jobs import sweep
from app.settings import get_settings
from worker import runtime
from worker.celery_app import QUEUE_OF, make_celery
from worker.tasks import register_tasks

log = logging.getLogger(__name__)
get_settings().prepare()  # the embedded broker's folder must exist before Celery opens it
celery_app = make_celery(get_settings())
register_tasks(celery_app)
_stop = threading.Event()
STARTED = now()  # jobs this worker name ran before this moment were run by an earlier, dead process


def _loop(hostname: str, queues: str) -> None:
    ctx = runtime.context()
    interval = min(ctx.settings.sweep_interval_s, ctx.settings.heartbeat_s)
    last_sweep = 0.0
    elapsed = 0.0
    while not _stop.wait(interval):
        elapsed += interval
        try:
            with ctx.db.session() as session:
                beat(session, hostname, queues)
            if elapsed - last_sweep >= ctx.settings.sweep_interval_s:
                last_sweep = elapsed
                sweep(ctx)
        except Exception as exc:  # keep the loop alive through database or broker hiccups
            log.warning("worker loop: %s", exc)


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    hostname = str(getattr(sender, "hostname", "worker"))
    queues = ",".join(sorted(q.name for q in celery_app.amqp.queues.consume_from.values()))
    ctx = runtime.context()
    with ctx.db.session() as session:
        beat(session, hostname, queues)
    kinds = tuple(kind for kind, queue in QUEUE_OF.items() if queue in queues.split(","))
    counts = sweep(ctx, at_start=True, previous_worker=hostname, started=STARTED, kinds=kinds)
    log.info("worker %s ready on %s; recovery sweep: %s", hostname, queues, counts)
    threading.Thread(target=_loop, args=(hostname, queues), daemon=True, name="lrc-sweeper").start()


@worker_process_init.connect
def _warm_up(**_: Any) -> None:
    """Model workers import torch and MONAI (seconds) when they start, not in their first job."""
    queues = set(celery_app.amqp.queues.consume_from)
    if queues & {"infer", "train"}:
        import lrc.infer
        import lrc.train.finetune  # noqa: F401


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    _stop.set()

"""The Celery application: broker, queues, routes and reliability settings (no task code here).

The API process builds the same application to send tasks by name; only worker processes
import :mod:`worker.tasks`.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from core.settings import Settings

QUEUES = ("infer", "train", "io")
TASKS = {"segment": "lrc.segment", "finetune": "lrc.finetune", "pretrain": "lrc.pretrain", "export": "lrc.export"}
QUEUE_OF = {"segment": "infer", "finetune": "train", "pretrain": "train", "export": "io"}


def transport_options(settings: Settings) -> dict[str, Any]:
    """Broker options: Redis gets a visibility timeout longer than the longest job."""
    url = settings.broker_url
    if url.startswith(("redis://", "rediss://")):
        return {"visibility_timeout": settings.visibility_timeout_s}
    return {}


def make_celery(settings: Settings) -> Celery:
    """A Celery application for ``settings`` (results live in the database, not in Celery)."""
    app = Celery("lrc", broker=settings.broker_url, include=[])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_track_started=False,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
        task_default_queue="io",
        task_routes={TASKS[kind]: {"queue": QUEUE_OF[kind]} for kind in TASKS},
        broker_transport_options=transport_options(settings),
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        accept_content=["json"],
        task_serializer="json",
    )
    return app


def can_broadcast(settings: Settings) -> bool:
    """True when the broker carries remote-control broadcasts (revoke); the embedded one does not."""
    return settings.broker_url.startswith(("redis://", "rediss://", "amqp://", "pyamqp://"))

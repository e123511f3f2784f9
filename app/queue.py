"""Sending jobs to workers by task name (the API never imports task code or torch)."""

from __future__ import annotations

import logging

from celery import Celery

from app.settings import Settings
from worker.celery_app import QUEUE_OF, TASKS, can_broadcast, make_celery

log = logging.getLogger(__name__)


class JobQueue:
    """Dispatch and revoke jobs; the Celery task id is the job's dispatch token."""

    def __init__(self, settings: Settings, celery: Celery | None = None) -> None:
        self.settings = settings
        self.celery = celery or make_celery(settings)

    def dispatch(self, job_id: str, kind: str, token: str) -> None:
        """Queue a job on its queue (after its record is committed)."""
        self.celery.send_task(
            TASKS[kind], kwargs={"job_id": job_id, "token": token}, queue=QUEUE_OF[kind], task_id=token
        )
        log.info("job %s (%s) dispatched to %s", job_id, kind, QUEUE_OF[kind])

    def revoke(self, token: str) -> None:
        """Best effort: tell workers to drop a queued delivery (the database state decides anyway)."""
        if not can_broadcast(self.settings):
            return
        try:
            self.celery.control.revoke(token)
        except Exception as exc:  # the cancellation is already recorded; a lost broadcast is harmless
            log.warning("revoke of %s not broadcast: %s", token, exc)

    def ping(self) -> None:
        """Raise when the broker cannot be reached."""
        with self.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)

"""Sending jobs to workers by task name (the API never imports task code or torch)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3

from celery import Celery

from core.celery_app import QUEUE_OF, TASKS, can_broadcast, make_celery
from core.settings import Settings

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

    def prepare(self) -> None:
        """Declare the queues once (the embedded transport creates its tables here, not in racing workers).

        The embedded SQLite broker is switched to write-ahead logging, so that a worker's polling
        reader does not block senders (rollback-journal SQLite makes a writer wait for readers).
        """
        url = self.settings.broker_url
        if url.startswith("sqla+sqlite:///"):
            path = url.removeprefix("sqla+sqlite:///")
            with contextlib.closing(sqlite3.connect(path, timeout=30)) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
        with self.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
            channel = connection.default_channel
            for queue in self.celery.conf.task_queues:
                queue.bind(channel).declare()

    def ping(self) -> None:
        """Raise when the broker cannot be reached."""
        with self.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)

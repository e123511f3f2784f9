"""Noticing a broker that came back empty, so that queued jobs are sent again at once.

A Redis without persistence that restarts has lost every message it held; the job records still
say ``queued``. Without this, the recovery sweep sends such jobs again only after
``LRC_REDISPATCH_QUEUED_AFTER_S``. Two signs of a new broker, both checked by the worker's sweeper
thread: Celery's consumer (re)started its connection (:class:`ReconnectStep` wakes the thread), and
Redis's ``run_id`` (new at every start of the server) differs from the one seen before. Re-sending
gives each job a new dispatch token, so a message that did survive becomes a no-op.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import bootsteps

log = logging.getLogger(__name__)
REDIS_SCHEMES = ("redis://", "rediss://")


class BrokerWatch:
    """Tells whether the broker is another server process than when last asked (Redis only)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.identifies = url.startswith(REDIS_SCHEMES)  # other brokers have no run id to compare
        self.run_id: str | None = None
        self.due = False  # a new broker was seen and its queued jobs are not sent again yet
        self._client: Any = None

    def current(self) -> str | None:
        """The broker server's run id (``None`` when it has none); raises when it cannot be reached."""
        if not self.identifies:
            return None
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
        return str(self._client.info("server")["run_id"])

    def restarted(self) -> bool:
        """True when the run id changed since the last call (the first call only records it)."""
        seen = self.current()
        changed = self.run_id is not None and seen is not None and seen != self.run_id
        self.run_id = seen
        return changed

    def resend_due(self, reconnected: bool) -> bool:
        """True while queued jobs must be sent again: the broker is a new server (without run ids: the
        consumer ``reconnected``), now or at an earlier check, and :meth:`resent` was not called since
        (a re-send that failed, e.g. with the database still down, is tried again at the next check)."""
        if self.restarted() or (reconnected and not self.identifies):
            self.due = True
        return self.due

    def resent(self) -> None:
        """The queued jobs were sent again."""
        self.due = False


class Reconnections:
    """Consumer (re)connections reported by :class:`ReconnectStep` to the sweeper thread."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.starts = 0

    def started(self) -> None:
        """The consumer has a broker connection; after the first time this is a reconnection."""
        self.starts += 1
        if self.starts > 1:
            log.info("broker connection re-established; checking for lost messages")
            self.event.set()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a reconnection; True (and reset) if there was one."""
        happened = self.event.wait(timeout)
        self.event.clear()
        return happened


RECONNECTIONS = Reconnections()


class ReconnectStep(bootsteps.StartStopStep):
    """Consumer bootstep started each time Celery's consumer (re)connects to the broker and consumes."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: Any) -> None:
        """Report the (re)connection; the sweep runs in the sweeper thread, not in the consumer."""
        RECONNECTIONS.started()

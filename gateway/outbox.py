"""The outbox: every step still to do, in a SQLite file, so that a restart loses nothing.

A step is a row: ``upload`` (a complete series to the service), ``segment`` (ask for a
segmentation), ``wait`` (for the job and its DICOM result), ``deliver`` (a result to the PACS).
Finishing a step and adding the steps that follow it is one transaction; a step is finished only
after the remote side answered success. A failed try sets the time of the next one (backoff).
``(batch, kind, key)`` is unique, so adding a step twice adds it once.

Delivered instances are also recorded by SOP Instance UID and destination: a result that was
delivered is never sent again, and one whose delivery was cut off before it was recorded is sent
again with the same SOP Instance UID, which a PACS stores once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gateway.sqlite_state import SqliteState

PENDING, DONE, FAILED = "pending", "done", "failed"
KINDS = ("upload", "segment", "wait", "deliver")

SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY,
    batch TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (batch, kind, key)
);
CREATE INDEX IF NOT EXISTS steps_due ON steps (state, next_at);
CREATE TABLE IF NOT EXISTS delivered (
    sop_instance_uid TEXT NOT NULL,
    destination TEXT NOT NULL,
    delivered_at REAL NOT NULL,
    PRIMARY KEY (sop_instance_uid, destination)
);
"""


@dataclass(frozen=True)
class Step:
    """One row of the outbox."""

    id: int
    batch: str
    kind: str
    key: str
    state: str
    payload: dict[str, Any]
    attempts: int
    next_at: float
    last_error: str | None


@dataclass(frozen=True)
class NewStep:
    """A step to add: what it does and what it needs."""

    kind: str
    key: str
    payload: dict[str, Any]


class Outbox(SqliteState):
    """The persistent list of steps (one SQLite file; one process uses it at a time)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)

    def add(self, batch: str, steps: Sequence[NewStep], at: float | None = None) -> None:
        """Add steps of ``batch`` (those already there are left as they are)."""
        with self._transaction() as db:
            self._insert(db, batch, steps, time.time() if at is None else at)

    @staticmethod
    def _insert(db: sqlite3.Connection, batch: str, steps: Sequence[NewStep], now: float) -> None:
        for step in steps:
            if step.kind not in KINDS:
                raise ValueError(f"unknown step kind {step.kind!r}")
            db.execute(
                "INSERT OR IGNORE INTO steps (batch, kind, key, payload, next_at, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (batch, step.kind, step.key, json.dumps(step.payload), now, now, now),
            )

    def due(self, now: float | None = None, limit: int = 50) -> list[Step]:
        """Pending steps whose time has come, earliest first."""
        now = time.time() if now is None else now
        rows = self._db.execute(
            "SELECT * FROM steps WHERE state = ? AND next_at <= ? ORDER BY next_at, id LIMIT ?", (PENDING, now, limit)
        )
        return [_step(row) for row in rows]

    def finish(self, step: Step, payload: dict[str, Any], then: Sequence[NewStep] = ()) -> None:
        """Mark ``step`` done with its outcome and add the steps that follow, in one transaction."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE steps SET state = ?, payload = ?, last_error = NULL, updated_at = ? WHERE id = ?",
                (DONE, json.dumps(payload), now, step.id),
            )
            self._insert(db, step.batch, then, now)

    def note(self, step: Step, payload: dict[str, Any]) -> Step:
        """Replace a pending step's payload (committed when this returns); the step as it is now."""
        self._db.execute(
            "UPDATE steps SET payload = ?, updated_at = ? WHERE id = ?", (json.dumps(payload), time.time(), step.id)
        )
        return replace(step, payload=payload)

    def retry(self, step: Step, error: str, delay: float, count: bool = True) -> None:
        """Try ``step`` again in ``delay`` seconds; ``count``: this was a failed attempt."""
        now = time.time()
        self._db.execute(
            "UPDATE steps SET attempts = attempts + ?, next_at = ?, last_error = ?, updated_at = ? WHERE id = ?",
            (int(count), now + delay, error, now, step.id),
        )

    def fail(self, step: Step, error: str) -> None:
        """Give ``step`` up: it will not be tried again."""
        self._db.execute(
            "UPDATE steps SET state = ?, attempts = attempts + 1, last_error = ?, updated_at = ? WHERE id = ?",
            (FAILED, error, time.time(), step.id),
        )

    def rearm(self, step_ids: Sequence[int] | None = None) -> int:
        """Make failed steps (all, or those with ``step_ids``) pending again, due now; how many."""
        now = time.time()
        with self._transaction() as db:
            query = "UPDATE steps SET state = ?, next_at = ?, updated_at = ? WHERE state = ?"
            params: list[Any] = [PENDING, now, now, FAILED]
            if step_ids is not None:
                query += f" AND id IN ({', '.join('?' * len(step_ids))})"
                params += list(step_ids)
            return db.execute(query, params).rowcount

    def steps(self, batch: str | None = None) -> list[Step]:
        """All steps (of one batch), in the order they were added."""
        if batch is None:
            rows = self._db.execute("SELECT * FROM steps ORDER BY id")
        else:
            rows = self._db.execute("SELECT * FROM steps WHERE batch = ? ORDER BY id", (batch,))
        return [_step(row) for row in rows]

    def known(self, batch: str) -> bool:
        """Whether ``batch`` has any step."""
        return self._db.execute("SELECT 1 FROM steps WHERE batch = ? LIMIT 1", (batch,)).fetchone() is not None

    def open_steps(self, batch: str) -> int:
        """Steps of ``batch`` still pending."""
        row = self._db.execute("SELECT COUNT(*) FROM steps WHERE batch = ? AND state = ?", (batch, PENDING))
        return int(row.fetchone()[0])

    def was_delivered(self, sop_instance_uid: str, destination: str) -> bool:
        """Whether this instance was delivered to ``destination`` already."""
        row = self._db.execute(
            "SELECT 1 FROM delivered WHERE sop_instance_uid = ? AND destination = ?", (sop_instance_uid, destination)
        )
        return row.fetchone() is not None

    def delivered(self, step: Step, sop_instance_uid: str, destination: str, payload: dict[str, Any]) -> None:
        """Record a delivery and finish its step, in one transaction."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO delivered (sop_instance_uid, destination, delivered_at) VALUES (?, ?, ?)",
                (sop_instance_uid, destination, now),
            )
            db.execute(
                "UPDATE steps SET state = ?, payload = ?, last_error = NULL, updated_at = ? WHERE id = ?",
                (DONE, json.dumps(payload), now, step.id),
            )


def _step(row: sqlite3.Row) -> Step:
    return Step(
        id=row["id"],
        batch=row["batch"],
        kind=row["kind"],
        key=row["key"],
        state=row["state"],
        payload=json.loads(row["payload"]),
        attempts=row["attempts"],
        next_at=row["next_at"],
        last_error=row["last_error"],
    )

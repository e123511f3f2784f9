"""Engine and sessions for one database URL (SQLite or PostgreSQL)."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from core.records.upgrade import upgrade


class Database:
    """A database: engine, session factory and schema creation.

    SQLite runs in WAL mode with a busy timeout, so that the API and worker processes can
    write at the same time. After a ``fork`` (Celery prefork) call :meth:`after_fork`.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.pid = os.getpid()

    def create_schema(self) -> None:
        """Create the tables of a new database, or upgrade those of an earlier version (idempotent).

        Processes starting together (API and workers) do it one after the other, under a lock: see
        :func:`core.records.upgrade.upgrade`.
        """
        upgrade(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, rolled back on error."""
        if os.getpid() != self.pid:
            self.after_fork()
        with self.sessions() as session, session.begin():
            yield session

    def after_fork(self) -> None:
        """Drop connections inherited from a parent process."""
        self.engine.dispose(close=False)
        self.pid = os.getpid()

    def ping(self) -> None:
        """Raise when the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))


SQLITE_TIMEOUT_S = 30


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_TIMEOUT_S, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _: Any) -> None:
            cursor = connection.cursor()  # busy timeout: the driver's ``timeout`` above
            _write_ahead_log(cursor, SQLITE_TIMEOUT_S)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def _write_ahead_log(cursor: sqlite3.Cursor, timeout_s: float) -> None:
    """Switch the database to WAL mode, waiting up to ``timeout_s`` for other connections.

    SQLite answers the switch with "database is locked" at once, without its busy handler, while
    another connection holds the write lock of a database still in rollback-journal mode: six
    processes creating a new database together failed so about once in forty starts. The mode is
    stored in the file, so only the first switch changes anything.
    """
    deadline = time.monotonic() + timeout_s
    pause = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)

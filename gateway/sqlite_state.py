"""The gateway's durable state in SQLite: one file, WAL, every commit flushed to disk."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.errors import InvalidConfig

SQLITE_MAGIC = b"SQLite format 3\x00"


class SqliteState:
    """A SQLite file opened for one process (autocommit; explicit transactions with :meth:`_transaction`)."""

    def __init__(self, path: Path, schema: str) -> None:
        """Open (or create) ``path`` with ``schema``.

        Raises:
            InvalidConfig: the folder cannot be made, or ``path`` is no SQLite file (another file
                given as a mapping, a corrupt one).
        """
        self.path = path
        if path.is_file() and path.stat().st_size and not _is_sqlite(path):
            # SQLite would take a file of a few bytes for an empty database and write over it
            raise InvalidConfig(f"{path}: not a SQLite file of the gateway; refusing to open it")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise InvalidConfig(f"{path}: cannot be opened ({exc})") from exc
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a commit survives power loss
            self._db.executescript(schema)
        except sqlite3.Error as exc:
            self._db.close()
            raise InvalidConfig(f"{path}: not a usable SQLite file of the gateway ({exc})") from exc

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _is_sqlite(path: Path) -> bool:
    """Whether ``path`` begins as every SQLite 3 database does."""
    try:
        with path.open("rb") as handle:
            return handle.read(16) == SQLITE_MAGIC
    except OSError:
        return False

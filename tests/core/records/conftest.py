"""A database of each kind (SQLite, PostgreSQL) for the record tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.records import Database
from tests.service.postgres import database_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh database of each kind with the current tables."""
    with database_url(request.param) as url:
        database = Database(url or f"sqlite:///{tmp_path / 'lrc.db'}")
        database.create_schema()
        assert database.engine.dialect.name == request.param
        try:
            yield database
        finally:
            database.engine.dispose()

"""A database made before projects keeps working: at start the ``project`` columns are added (existing
rows in project ``default``) and model versions become unique per project, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, ForeignKey, MetaData, Table, UniqueConstraint, create_engine, inspect, text

from app.records import Database, registry
from app.records.keys import find_key, hash_token
from app.records.models import Base
from app.records.projects import DEFAULT
from app.records.upgrade import PROJECT_TABLES, upgrade
from tests.service.postgres import postgres_database

TOKEN = "lrc_a-key-made-before-projects-existed"
STAMP = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def tables_before_projects() -> MetaData:
    """The tables as the previous version made them: today's without ``project``, versions unique per name."""
    old = MetaData()
    for table in Base.metadata.sorted_tables:
        columns = [
            Column(
                c.name,
                c.type,
                *[ForeignKey(k.target_fullname, ondelete=k.ondelete) for k in c.foreign_keys],
                primary_key=c.primary_key,
                nullable=c.nullable,
                index=c.index,
                unique=c.unique,
            )
            for c in table.columns
            if c.name != "project"
        ]
        extra = [UniqueConstraint("name", "version")] if table.name == "model_versions" else []
        Table(table.name, old, *columns, *extra)
    return old


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with the previous version's tables and a few records in them."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'records.sqlite'}"
        yield from _filled(url)
    else:
        with postgres_database() as url:
            yield from _filled(url)


def _filled(url: str) -> Iterator[str]:
    old = tables_before_projects()
    engine = Database(url).engine  # the service's engine options (SQLite: foreign keys on)
    old.create_all(engine)
    t = old.tables
    with engine.begin() as connection:
        connection.execute(
            t["api_keys"].insert(),
            {"id": "k1", "name": "ci", "role": "admin", "token_sha256": hash_token(TOKEN), "created_at": STAMP,
             "revoked": False},
        )  # fmt: skip
        connection.execute(
            t["studies"].insert(),
            {"id": "s1", "upload_key": "u", "study_instance_uid": "1.2", "created_at": STAMP, "files": [], "notes": []},
        )
        connection.execute(
            t["series"].insert(),
            {"id": "r1", "study_id": "s1", "modality": "CT", "shape": [1, 1, 1], "spacing": [1, 1, 1],
             "affine": [], "series_instance_uid": "", "description": "", "dicom": False, "exportable": False,
             "files": [], "warnings": []},
        )  # fmt: skip
        connection.execute(
            t["model_versions"].insert(),
            {"id": "m1", "name": "ct-abdomen-starter", "version": 1, "kind": "segmentation", "status": "production",
             "path": "/models/starter", "card": {}, "comparison": {}, "created_at": STAMP},
        )  # fmt: skip
        connection.execute(
            t["jobs"].insert(),
            {"id": "j1", "kind": "segment", "state": "succeeded", "payload": {}, "result": {}, "progress": 1.0,
             "stage": "succeeded", "metrics": {}, "attempts": 1, "dispatch_token": "t", "created_at": STAMP,
             "dispatched_at": STAMP},
        )  # fmt: skip
        connection.execute(
            t["segmentations"].insert(),
            {"id": "g1", "series_id": "r1", "model_version_id": "m1", "job_id": "j1", "outputs": {},
             "created_at": STAMP},
        )  # fmt: skip
    engine.dispose()
    yield url


def test_an_old_database_is_upgraded_in_place(old_database: str) -> None:
    database = Database(old_database)
    database.create_schema()  # what every start does
    inspector = inspect(database.engine)
    for table in PROJECT_TABLES:
        assert "project" in {c["name"] for c in inspector.get_columns(table)}, table
    with database.session() as session:
        for table in ("studies", "jobs", "segmentations", "model_versions", "api_keys"):
            assert session.execute(text(f"SELECT DISTINCT project FROM {table}")).scalars().all() == [DEFAULT]
        key = find_key(session, TOKEN)
        assert key is not None
        assert key.project == DEFAULT
        starter = registry.production(session, DEFAULT, "ct-abdomen-starter")
        assert starter is not None
        assert starter.id == "m1"
        assert registry.production(session, "other", "ct-abdomen-starter") is None  # it stays the default project's
        # Version numbers are per project now: another project's first "liver" and the default one's.
        assert registry.register(session, "liver", "/x", {}, DEFAULT).version == 1
        assert registry.register(session, "liver", "/y", {}, "other").version == 1
    assert upgrade(database.engine) == []  # nothing left to do at the next start
    if database.engine.dialect.name == "sqlite":
        with database.engine.connect() as connection:
            assert connection.execute(text("PRAGMA foreign_key_check")).all() == []
            targets = {row[2] for row in connection.execute(text("PRAGMA foreign_key_list(segmentations)"))}
            assert "model_versions" in targets
            assert "model_versions_before_projects" not in str(
                connection.execute(text("SELECT group_concat(sql) FROM sqlite_master")).scalar()
            )
    database.engine.dispose()


def test_a_new_database_needs_no_upgrade(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'new.sqlite'}")
    Base.metadata.create_all(engine)
    assert upgrade(engine) == []

"""Databases of earlier versions keep working, on SQLite and PostgreSQL. Made before projects: at start
the ``project`` columns are added (existing rows in project ``default``) and model versions become
unique per project. Made before idempotency keys: ``segmentations.request_key`` is added with its
unique index per project. Processes starting together upgrade once."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Column, ForeignKey, MetaData, Table, UniqueConstraint, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from app.records import Database, registry
from app.records.keys import find_key, hash_token
from app.records.models import REQUEST_KEY_INDEX, Base, Segmentation
from app.records.projects import DEFAULT
from app.records.upgrade import PROJECT_TABLES, upgrade
from tests.service.postgres import postgres_database

TOKEN = "lrc_a-key-made-before-projects-existed"
STAMP = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BEFORE_PROJECTS, BEFORE_REQUEST_KEYS = "before-projects", "before-request-keys"
T = TypeVar("T")


def old_tables(era: str) -> MetaData:
    """The tables as an earlier version made them: today's without ``request_key`` (and its index) and the
    studies' ``study_date`` and ``study_description``; before projects also without ``project``, and model
    versions unique per name."""
    old = MetaData()
    dropped = {"request_key", "study_date", "study_description"} | ({"project"} if era == BEFORE_PROJECTS else set())
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
            if c.name not in dropped
        ]
        extra: list[Any] = []
        if table.name == "model_versions":
            unique = ("name", "version") if era == BEFORE_PROJECTS else ("project", "name", "version")
            extra = [UniqueConstraint(*unique)]
        Table(table.name, old, *columns, *extra)
    return old


@pytest.fixture(params=["sqlite", "postgresql"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[BEFORE_PROJECTS, BEFORE_REQUEST_KEYS])
def era(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def old_database(dialect: str, era: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with an earlier version's tables and a few records in them."""
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'records.sqlite'}"
        yield from _filled(url, era)
    else:
        with postgres_database() as url:
            yield from _filled(url, era)


def _filled(url: str, era: str) -> Iterator[str]:
    old = old_tables(era)
    engine = Database(url).engine  # the service's engine options (SQLite: foreign keys on)
    old.create_all(engine)
    t = old.tables
    with engine.begin() as connection:

        def insert(table: str, row: dict[str, Any]) -> None:
            project = {"project": DEFAULT} if "project" in t[table].c else {}
            connection.execute(t[table].insert(), {**row, **project})

        insert(
            "api_keys",
            {"id": "k1", "name": "ci", "role": "admin", "token_sha256": hash_token(TOKEN), "created_at": STAMP,
             "revoked": False},
        )  # fmt: skip
        insert(
            "studies",
            {"id": "s1", "upload_key": "u", "study_instance_uid": "1.2", "created_at": STAMP, "files": [], "notes": []},
        )
        connection.execute(
            t["series"].insert(),
            {"id": "r1", "study_id": "s1", "modality": "CT", "shape": [1, 1, 1], "spacing": [1, 1, 1],
             "affine": [], "series_instance_uid": "", "description": "", "dicom": False, "exportable": False,
             "files": [], "warnings": []},
        )  # fmt: skip
        insert(
            "model_versions",
            {"id": "m1", "name": "ct-abdomen-starter", "version": 1, "kind": "segmentation", "status": "production",
             "path": "/models/starter", "card": {}, "comparison": {}, "created_at": STAMP},
        )  # fmt: skip
        insert(
            "jobs",
            {"id": "j1", "kind": "segment", "state": "succeeded", "payload": {}, "result": {}, "progress": 1.0,
             "stage": "succeeded", "metrics": {}, "attempts": 1, "dispatch_token": "t", "created_at": STAMP,
             "dispatched_at": STAMP},
        )  # fmt: skip
        insert(
            "segmentations",
            {"id": "g1", "series_id": "r1", "model_version_id": "m1", "job_id": "j1", "outputs": {},
             "created_at": STAMP},
        )  # fmt: skip
    engine.dispose()
    yield url


def test_an_old_database_is_upgraded_in_place(old_database: str, era: str) -> None:
    database = Database(old_database)
    try:
        _upgraded_in_place(database, era)
    finally:  # a failure must not leave connections for a later test's garbage collection to warn about
        database.engine.dispose()


def _upgraded_in_place(database: Database, era: str) -> None:
    Base.metadata.create_all(database.engine)  # what every start does (Database.create_schema)
    changes = upgrade(database.engine)
    assert any(".project added" in c for c in changes) is (era == BEFORE_PROJECTS), changes
    assert [c for c in changes if "request_key" in c] == [
        "segmentations.request_key added (Idempotency-Key; empty on existing rows)"
    ]
    assert [c for c in changes if c.startswith("studies.study_")] == [
        "studies.study_date added (empty on existing rows)",
        "studies.study_description added (empty on existing rows)",
    ]
    inspector = inspect(database.engine)
    for table in PROJECT_TABLES:
        assert "project" in {c["name"] for c in inspector.get_columns(table)}, table
    (index,) = [i for i in inspector.get_indexes("segmentations") if i["name"] == REQUEST_KEY_INDEX]
    assert (index["column_names"], bool(index["unique"])) == (["project", "request_key"], True)
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
    _request_keys_unique_per_project(database)


def test_a_new_database_needs_no_upgrade(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'new.sqlite'}")
    Base.metadata.create_all(engine)
    assert upgrade(engine) == []


def _request_keys_unique_per_project(database: Database) -> None:
    """The old segmentation has no key; a key is taken once per project; rows without one never collide."""

    def add(project: str, key: str | None) -> None:
        with database.session() as session:
            session.add(
                Segmentation(series_id="r1", model_version_id="m1", job_id="j1", project=project, request_key=key)
            )

    with database.session() as session:
        old = session.get(Segmentation, "g1")
        assert old is not None
        assert old.request_key is None
    add(DEFAULT, "k")
    add("other", "k")
    add(DEFAULT, None)
    add(DEFAULT, None)
    with pytest.raises(IntegrityError):
        add(DEFAULT, "k")


def _at_once(databases: list[Database], start_up: Callable[[Database], T]) -> list[T]:
    """``start_up`` run for every database in its own thread, released together; what each returned
    (the test fails on any exception)."""
    start = threading.Barrier(len(databases))
    results: list[T] = []
    errors: list[BaseException] = []

    def run(database: Database) -> None:
        start.wait()
        try:
            results.append(start_up(database))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d,)) for d in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    return results


@pytest.mark.parametrize("era", [BEFORE_PROJECTS])
def test_processes_starting_together_upgrade_once(old_database: str) -> None:
    """Four processes' engines upgrading at the same moment: every change is made once, by one of them."""
    databases = [Database(old_database) for _ in range(4)]
    try:
        changes = _at_once(databases, lambda database: upgrade(database.engine))
        # Each change is made by exactly one process. On SQLite the model_versions rebuild runs in a
        # second transaction (foreign keys off), so another process may be the one that makes it.
        made = [change for made_by_one in changes for change in made_by_one]
        # project columns, versions per project, request_key, the studies' date and description
        assert len(made) == len(set(made)) == len(PROJECT_TABLES) + 4
        assert sum(1 for c in changes if c) <= 2
        assert upgrade(databases[0].engine) == []
    finally:  # a failure must not leave connections for a later test's garbage collection to warn about
        for database in databases:
            database.engine.dispose()


@pytest.fixture
def new_database(dialect: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database."""
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'records.sqlite'}"
    else:
        with postgres_database() as url:
            yield url


def test_processes_starting_together_on_a_new_database_create_it_once(new_database: str) -> None:
    """API and workers starting at once on an empty database: each creates the tables it finds missing,
    one after the other (PostgreSQL's CREATE TABLE is not safe to race: two sessions can both see a table
    missing, and the second fails on its type's unique name)."""
    databases = [Database(new_database) for _ in range(6)]
    _at_once(databases, Database.create_schema)
    assert set(inspect(databases[0].engine).get_table_names()) == set(Base.metadata.tables)
    assert upgrade(databases[0].engine) == []
    for database in databases:
        database.engine.dispose()


def test_a_new_sqlite_database_waits_for_a_writer_before_switching_to_wal(tmp_path: Path) -> None:
    """SQLite refuses the switch to WAL at once, without its busy timeout, while another connection
    holds the write lock of a database still in rollback mode: the schema lock a starting process
    holds. The connection waits for it instead (CI saw 'database is locked' about once in forty)."""
    path = tmp_path / "new.sqlite"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE other (x INTEGER)")
    release = threading.Timer(0.3, writer.execute, args=("COMMIT",))
    release.start()
    database = Database(f"sqlite:///{path}")
    try:
        database.create_schema()
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        release.join()
        writer.close()
        database.engine.dispose()

"""Databases of earlier versions keep working, on SQLite and PostgreSQL: at start the Alembic revisions
after a database's own are applied (core/records/migrations), those made before the version table
existed first recognised by their tables. Made before projects: the ``project`` columns are added
(existing rows in project ``default``) and model versions become unique per project. Made before
idempotency keys: ``segmentations.request_key`` is added with its unique index per project. Every
upgraded database has the tables' schema (Alembic's ``compare_metadata``). Processes starting together
upgrade once."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Column,
    Engine,
    ForeignKey,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    inspect,
    text,
)
from sqlalchemy.exc import IntegrityError

from core.records import Database, registry
from core.records.keys import find_key, hash_token
from core.records.migrations import alembic_config, head, revisions
from core.records.projects import DEFAULT
from core.records.tables import REQUEST_KEY_INDEX, Base, Segmentation
from core.records.upgrade import PROJECT_TABLES, legacy_revision, upgrade
from tests.service.postgres import postgres_database

TOKEN = "lrc_a-key-made-before-projects-existed"
STAMP = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BEFORE_PROJECTS, BEFORE_REQUEST_KEYS = "before-projects", "before-request-keys"
REVISION = {BEFORE_PROJECTS: "0002", BEFORE_REQUEST_KEYS: "0004"}  # the revision whose tables each era has
T = TypeVar("T")


def after(revision: str) -> list[str]:
    """The revisions an upgrade from ``revision`` applies, oldest first."""
    every = revisions()
    return every[every.index(revision) + 1 :]


def differences(engine: Engine) -> list[Any]:
    """What autogenerate would change to give the database the tables' schema (empty: none)."""
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def stamped(engine: Engine) -> list[str]:
    """The revisions recorded in the database's version table."""
    with engine.connect() as connection:
        return list(MigrationContext.configure(connection).get_current_heads())


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
        if table.name == "model_versions" and era == BEFORE_PROJECTS:
            extra = [UniqueConstraint("name", "version")]
        elif table.name == "model_versions":
            extra = [UniqueConstraint("project", "name", "version", name="uq_model_versions_project_name_version")]
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
    _fill(engine, old)
    engine.dispose()
    yield url


def _fill(engine: Engine, old: MetaData) -> None:
    """A few records in tables of an earlier version (``old``): a key, a study and series, the starter
    model, a job and a segmentation."""
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


def test_an_old_database_is_upgraded_in_place(old_database: str, era: str) -> None:
    database = Database(old_database)
    try:
        _upgraded_in_place(database, REVISION[era])
    finally:  # a failure must not leave connections for a later test's garbage collection to warn about
        database.engine.dispose()


def _upgraded_in_place(database: Database, revision: str) -> None:
    """Upgraded from ``revision``'s tables with :func:`_fill`'s records: the revisions after it applied,
    the records kept (in project ``default``), the tables' schema, nothing left for the next start."""
    changes = upgrade(database.engine)  # what every start does (Database.create_schema)
    assert [c.split()[0] for c in changes] == after(revision), changes
    assert stamped(database.engine) == [head()]
    assert differences(database.engine) == []
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
            schema = str(connection.execute(text("SELECT group_concat(sql) FROM sqlite_master")).scalar())
            assert "_alembic_tmp" not in schema  # batch mode's copy was renamed into place
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1  # back on for the pool
    _request_keys_unique_per_project(database)


def test_a_new_database_needs_no_upgrade(tmp_path: Path) -> None:
    """Tables made by ``create_all`` and no version table (a database of the version before the revisions
    existed): recognised as the newest revision, stamped so, nothing applied."""
    engine = create_engine(f"sqlite:///{tmp_path / 'new.sqlite'}")
    Base.metadata.create_all(engine)
    assert upgrade(engine) == []
    assert stamped(engine) == [head()]
    engine.dispose()


@pytest.fixture
def new_database(dialect: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database."""
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'records.sqlite'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "before-version-table"])
@pytest.mark.parametrize("revision", revisions())
def test_a_database_at_each_revision_is_upgraded_to_the_newest(
    new_database: str, revision: str, versioned: bool
) -> None:
    """Made by the revisions up to ``revision``, with records in it: upgraded at start to the tables' schema.
    Without its version table (databases made before it existed) its revision is found from its tables."""
    database = Database(new_database)
    try:
        with database.engine.begin() as connection:
            command.upgrade(alembic_config(connection), revision)
        if not versioned:
            with database.engine.begin() as connection:
                connection.execute(text("DROP TABLE alembic_version"))
                assert legacy_revision(connection) == revision
        tables = MetaData()
        tables.reflect(database.engine)
        _fill(database.engine, tables)
        _upgraded_in_place(database, revision)
    finally:
        database.engine.dispose()


def test_the_revisions_make_the_models_tables(new_database: str) -> None:
    """An empty database taken through every revision has exactly the tables' schema: a column added to a
    model without a revision fails here."""
    database = Database(new_database)
    try:
        with database.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
        assert differences(database.engine) == []
        assert upgrade(database.engine) == []
        unrevised = MetaData()
        for table in Base.metadata.sorted_tables:
            table.to_metadata(unrevised)
        unrevised.tables["studies"].append_column(Column("referrer", String(64), nullable=True))
        with database.engine.connect() as connection:
            (change,) = compare_metadata(MigrationContext.configure(connection), unrevised)
        assert change[0] == "add_column"
        assert (change[2], change[3].name) == ("studies", "referrer")
    finally:
        database.engine.dispose()


def test_a_new_database_is_made_from_the_models_and_stamped(new_database: str) -> None:
    """A start on an empty database: the tables' schema and the version table at the newest revision."""
    database = Database(new_database)
    try:
        database.create_schema()
        assert "alembic_version" in inspect(database.engine).get_table_names()
        assert stamped(database.engine) == [head()]
        assert differences(database.engine) == []
        database.create_schema()  # the next start
        assert stamped(database.engine) == [head()]
    finally:
        database.engine.dispose()


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
        # The first to hold the lock applies every revision; the others find the newest one recorded.
        assert sorted(len(c) for c in changes) == [0, 0, 0, len(after(REVISION[BEFORE_PROJECTS]))]
        assert upgrade(databases[0].engine) == []
    finally:  # a failure must not leave connections for a later test's garbage collection to warn about
        for database in databases:
            database.engine.dispose()


def test_processes_starting_together_on_a_new_database_create_it_once(new_database: str) -> None:
    """API and workers starting at once on an empty database: each creates the tables it finds missing,
    one after the other (PostgreSQL's CREATE TABLE is not safe to race: two sessions can both see a table
    missing, and the second fails on its type's unique name)."""
    databases = [Database(new_database) for _ in range(6)]
    _at_once(databases, Database.create_schema)
    assert set(inspect(databases[0].engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
    assert stamped(databases[0].engine) == [head()]
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

"""Bring a database made by an earlier version up to the current tables (there are no migrations).

Only what changed since: the ``project`` column: existing rows go to project ``default`` (the
bootstrap admin key's), and model version numbers become unique per project instead of per name;
``segmentations.request_key`` (the ``Idempotency-Key`` of ``POST /v1/segmentations``), empty on
existing rows, with its unique index per project; ``studies.study_date`` and
``studies.study_description``, empty on existing rows. Runs at every start, after ``create_all``;
does nothing on an up-to-date database.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.schema import CreateIndex, CreateTable

from app.records.models import REQUEST_KEY_INDEX, REQUEST_KEY_MAX, Base
from app.records.projects import DEFAULT

log = logging.getLogger(__name__)
LOCK_KEY = 0x4C52C006  # pg_advisory_xact_lock key of schema changes (one fixed key for every process)
PROJECT_TABLES = (
    "studies", "datasets", "jobs", "segmentations", "result_instances", "model_versions", "promotions", "api_keys",
)  # fmt: skip


def upgrade(engine: Engine) -> list[str]:
    """Add what an older schema lacks; the changes made (empty when none).

    Processes starting together (API and workers) upgrade one after the other, each looking at the
    tables only once it holds the lock: PostgreSQL's transaction-scoped advisory lock, SQLite's write
    lock (``BEGIN IMMEDIATE``; SQLite's DDL is transactional too).
    """
    done: list[str] = []
    rebuild = False
    with engine.begin() as connection:
        one_at_a_time(connection)
        inspector = inspect(connection)
        for table in PROJECT_TABLES:
            if "project" in {c["name"] for c in inspector.get_columns(table)}:
                continue
            connection.execute(text(f"ALTER TABLE {table} ADD COLUMN project VARCHAR(64) NOT NULL DEFAULT '{DEFAULT}'"))
            connection.execute(text(f"CREATE INDEX ix_{table}_project ON {table} (project)"))
            done.append(f"{table}.project added (existing rows in project {DEFAULT!r})")
        if "request_key" not in {c["name"] for c in inspector.get_columns("segmentations")}:
            connection.execute(text(f"ALTER TABLE segmentations ADD COLUMN request_key VARCHAR({REQUEST_KEY_MAX})"))
            connection.execute(text(f"CREATE UNIQUE INDEX {REQUEST_KEY_INDEX} ON segmentations (project, request_key)"))
            done.append("segmentations.request_key added (Idempotency-Key; empty on existing rows)")
        study_columns = {c["name"] for c in inspector.get_columns("studies")}
        for column, size in (("study_date", 8), ("study_description", 256)):
            if column not in study_columns:
                connection.execute(text(f"ALTER TABLE studies ADD COLUMN {column} VARCHAR({size}) NOT NULL DEFAULT ''"))
                done.append(f"studies.{column} added (empty on existing rows)")
        uniques = inspector.get_unique_constraints("model_versions")
        old = [u for u in uniques if u["column_names"] == ["name", "version"]]
        if old and engine.dialect.name == "sqlite":
            rebuild = True  # below, outside this transaction: it needs foreign keys off
        elif old:
            connection.execute(text(f'ALTER TABLE model_versions DROP CONSTRAINT "{old[0]["name"]}"'))
            connection.execute(
                text(
                    "ALTER TABLE model_versions ADD CONSTRAINT uq_model_versions_project_name_version "
                    "UNIQUE (project, name, version)"
                )
            )
    # Another process may have rebuilt the SQLite table between this one's two transactions: only
    # the process that made the change reports it.
    if (old and not rebuild) or (rebuild and _rebuild_model_versions(engine)):
        done.append("model_versions: versions unique per (project, name)")
    for change in done:
        log.warning("database upgraded: %s", change)
    return done


def one_at_a_time(connection: Connection) -> None:
    """Hold the schema lock until ``connection``'s transaction ends (call first in the transaction).

    PostgreSQL: a transaction-scoped advisory lock. SQLite: its write lock (``BEGIN IMMEDIATE``;
    pysqlite has not begun a transaction yet, so this is its start).
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _rebuild_model_versions(engine: Engine) -> bool:
    """SQLite cannot drop a table's unique constraint: copy the rows into a table made anew.

    Returns whether this call rebuilt it (``False``: another process had done it meanwhile).

    Foreign keys are off meanwhile, and ``legacy_alter_table`` keeps the references from
    ``segmentations`` pointing at the name ``model_versions`` (then the new table) during the rename
    (https://www.sqlite.org/lang_altertable.html#otheralter).
    """
    table = Base.metadata.tables["model_versions"]
    columns = ", ".join(c.name for c in table.columns)
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        assert connection is not None
        previous = connection.isolation_level
        connection.isolation_level = None  # statements below manage the transaction themselves
        connection.execute("PRAGMA foreign_keys=OFF")
        connection.execute("PRAGMA legacy_alter_table=ON")
        connection.execute("BEGIN IMMEDIATE")  # one process at a time; the one that waited finds it done
        try:
            (current,) = connection.execute("SELECT sql FROM sqlite_master WHERE name = 'model_versions'").fetchone()
            if "uq_model_versions_project_name_version" in current:
                connection.execute("COMMIT")
                return False
            connection.execute("ALTER TABLE model_versions RENAME TO model_versions_before_projects")
            for (name,) in connection.execute(  # its indexes keep their names: free them for the new table
                "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='model_versions_before_projects' "
                "AND sql IS NOT NULL"
            ).fetchall():
                connection.execute(f'DROP INDEX "{name}"')
            connection.execute(str(CreateTable(table).compile(engine)))
            for index in table.indexes:
                connection.execute(str(CreateIndex(index).compile(engine)))
            connection.execute(
                f"INSERT INTO model_versions ({columns}) SELECT {columns} FROM model_versions_before_projects"
            )
            connection.execute("DROP TABLE model_versions_before_projects")
            connection.execute("COMMIT")
            return True
        except Exception:
            connection.execute("ROLLBACK")
            raise
        finally:
            connection.execute("PRAGMA legacy_alter_table=OFF")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.isolation_level = previous
    finally:
        raw.close()

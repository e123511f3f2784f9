"""Create the records' tables or bring them up to the current schema, at every start.

The schema changes are Alembic revisions (:mod:`core.records.migrations`), recorded in the database's
``alembic_version`` table. :func:`upgrade` handles three kinds of database:

- a new one (none of the service's tables): ``create_all`` from :mod:`core.records.tables`, then
  stamped with the newest revision. The tables there are the one description of the current schema; a new
  database is made from them in one pass, without replaying every earlier change (SQLite's table
  copies included) and without the server defaults that upgrade steps leave on old rows' columns.
  The test of the revisions against the tables (``compare_metadata``) keeps the two equal;
- one with a version table: the revisions after its own are applied;
- one made before the version table existed: its revision is found from its tables
  (:func:`legacy_revision`) and stamped, then the revisions after it are applied.

Processes starting together (API and workers) do this one after the other: all of it runs in one
transaction that first takes the schema lock (:func:`one_at_a_time`), so each process looks at the
database only once the previous one has committed, and a database is never left half changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect, text

from core.records.migrations import alembic_config, head
from core.records.tables import Base

log = logging.getLogger(__name__)
LOCK_KEY = 0x4C52C006  # pg_advisory_xact_lock key of schema changes (one fixed key for every process)
PROJECT_TABLES = (
    "studies", "datasets", "jobs", "segmentations", "result_instances", "model_versions", "promotions", "api_keys",
)  # fmt: skip


def upgrade(engine: Engine) -> list[str]:
    """Create or upgrade the tables; the revisions applied (``"<id> <what it changes>"``, empty when none).

    Each applied revision is logged at WARNING.
    """
    with engine.connect() as connection, _foreign_keys_off(connection), connection.begin():
        one_at_a_time(connection)
        config = alembic_config(connection)
        if not MigrationContext.configure(connection).get_current_heads():
            found = legacy_revision(connection)
            if found is None:
                Base.metadata.create_all(connection)
                command.stamp(config, "head")
            else:
                command.stamp(config, found)
                log.warning("database without a version table: its tables are those of revision %s", found)
        command.upgrade(config, "head")
        applied: list[str] = config.attributes["applied"]
        if applied and connection.dialect.name == "sqlite":
            _no_broken_references(connection)
    for change in applied:
        log.warning("database upgraded: %s", change)
    return applied


def legacy_revision(connection: Connection) -> str | None:
    """The revision whose tables a database without a version table has (``None``: it has none of them).

    Only for databases made before the version table existed: every later one records its revision.
    """
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    if not tables & set(Base.metadata.tables):
        return None

    def columns(table: str) -> set[str]:
        return {c["name"] for c in inspector.get_columns(table)}

    if "result_instances" not in tables:
        return "0001"
    if "project" not in columns("studies"):
        return "0002"
    if ["name", "version"] in [u["column_names"] for u in inspector.get_unique_constraints("model_versions")]:
        return "0003"
    if "request_key" not in columns("segmentations"):
        return "0004"
    if "study_date" not in columns("studies"):
        return "0005"
    return head()


def one_at_a_time(connection: Connection) -> None:
    """Hold the schema lock until ``connection``'s transaction ends (call first in the transaction).

    PostgreSQL: a transaction-scoped advisory lock. SQLite: its write lock (``BEGIN IMMEDIATE``;
    pysqlite has not begun a transaction yet, so this is its start).
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def _foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite: foreign keys off on ``connection`` meanwhile (no-op elsewhere).

    A revision in batch mode copies a table into a new one and drops the old: with foreign keys on,
    dropping a table that other rows reference fails. The pragma is ignored inside a transaction, so
    it is set before the caller's begins; the connection goes back to the pool with them on.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()  # SQLAlchemy's own transaction (pysqlite began none for a pragma)
    try:
        yield
    finally:
        connection.rollback()  # nothing is open here unless the caller's transaction failed to end
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


def _no_broken_references(connection: Connection) -> None:
    """Raise (rolling the upgrade back) when a revision left a reference to a missing row (SQLite)."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"the upgrade would leave references to missing rows: {broken[:5]}")

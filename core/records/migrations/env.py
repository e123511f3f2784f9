"""Alembic's environment: the revisions run on the caller's connection, inside its transaction.

The caller (:func:`core.records.upgrade.upgrade`) holds the schema lock in that transaction, so that
processes starting together change the schema one after the other. Each applied revision is added to
``Config.attributes["applied"]`` as ``"<id> <first paragraph of its docstring>"``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import Script

from core.records.tables import Base

config = context.config
connection = config.attributes.get("connection")
if context.is_offline_mode() or connection is None:
    raise RuntimeError("the records' revisions run on a connection (core.records.upgrade.upgrade), not as SQL text")


def _applied(ctx: MigrationContext, step: MigrationInfo, heads: Collection[str], run_args: Mapping[str, Any]) -> None:
    script = step.up_revision
    if step.is_upgrade and not step.is_stamp and isinstance(script, Script):
        config.attributes["applied"].append(f"{script.revision} {' '.join(script.doc.split())}")


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # autogenerate writes batch operations: SQLite changes a table by copying it
    on_version_apply=_applied,
)
with context.begin_transaction():  # the caller's transaction is open: this begins none of its own
    context.run_migrations()

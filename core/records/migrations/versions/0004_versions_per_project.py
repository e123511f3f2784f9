"""Model version numbers unique per (project, name) instead of per name.

SQLite cannot drop a constraint: batch mode copies ``model_versions`` into a table made anew, with
its rows and indexes (foreign keys from ``segmentations`` keep pointing at ``model_versions``; see
:func:`core.records.upgrade.upgrade`, which runs revisions with SQLite's foreign keys off).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The first tables' unique constraint has no name of its own: PostgreSQL named it, SQLite reflects it
# without one, and batch mode names it by this convention.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def upgrade() -> None:
    uniques = sa.inspect(op.get_bind()).get_unique_constraints("model_versions")
    (old,) = [
        u["name"] or "uq_model_versions_name_version" for u in uniques if u["column_names"] == ["name", "version"]
    ]
    with op.batch_alter_table("model_versions", naming_convention=NAMING) as batch:
        batch.drop_constraint(old, type_="unique")
        batch.create_unique_constraint("uq_model_versions_project_name_version", ["project", "name", "version"])


def downgrade() -> None:
    raise NotImplementedError("no downgrade: restore the backup taken before the upgrade")

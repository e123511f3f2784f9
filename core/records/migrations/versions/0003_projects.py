"""A project column on every table that holds a project's records; existing rows go to project 'default'.

'default' is the project of the bootstrap admin key. The column keeps that server default on an
upgraded database (the service always sets it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = (
    "studies",
    "datasets",
    "jobs",
    "segmentations",
    "result_instances",
    "model_versions",
    "promotions",
    "api_keys",
)


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("project", sa.String(length=64), nullable=False, server_default="default"))
        op.create_index(f"ix_{table}_project", table, ["project"])


def downgrade() -> None:
    raise NotImplementedError("no downgrade: restore the backup taken before the upgrade")

"""segmentations.request_key: the Idempotency-Key of POST /v1/segmentations (empty on existing rows),
unique per project.

A unique index rather than a constraint: SQLite adds an index to a table in place. Rows without a
key never collide (NULLs are distinct).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("segmentations", sa.Column("request_key", sa.String(length=200), nullable=True))
    op.create_index("uq_segmentations_project_request_key", "segmentations", ["project", "request_key"], unique=True)


def downgrade() -> None:
    raise NotImplementedError("no downgrade: restore the backup taken before the upgrade")

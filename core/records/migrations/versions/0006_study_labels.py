"""studies.study_date and studies.study_description (DICOM StudyDate and StudyDescription), empty on
existing rows."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("studies", sa.Column("study_date", sa.String(length=8), nullable=False, server_default=""))
    op.add_column("studies", sa.Column("study_description", sa.String(length=256), nullable=False, server_default=""))


def downgrade() -> None:
    raise NotImplementedError("no downgrade: restore the backup taken before the upgrade")

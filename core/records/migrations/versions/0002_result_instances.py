"""result_instances: the DICOM instances the service produced, indexed for DICOMweb search and retrieve."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "result_instances",
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("segmentation_id", sa.String(length=32), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["segmentation_id"], ["segmentations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sop_instance_uid"),
    )
    for column in ("segmentation_id", "study_instance_uid", "series_instance_uid"):
        op.create_index(f"ix_result_instances_{column}", "result_instances", [column])


def downgrade() -> None:
    raise NotImplementedError("no downgrade: restore the backup taken before the upgrade")

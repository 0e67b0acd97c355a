"""dataset ingests: the ended ingests of a dataset, so every ingest jobId reads back

Revision ID: 0012_dataset_ingests
Revises: 0011_lease_holders
Create Date: 2026-12-07 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import yolostack.tables.base

revision: str = "0012_dataset_ingests"
down_revision: str | None = "0011_lease_holders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataset_ingests",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("dataset_id", sa.String(length=40), nullable=False),
        sa.Column("view", sa.JSON(), nullable=False),
        sa.Column("created_at", yolostack.tables.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_dataset_ingests_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_dataset_ingests")),
    )
    with op.batch_alter_table("dataset_ingests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dataset_ingests_dataset_id"), ["dataset_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dataset_ingests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_ingests_dataset_id"))
    op.drop_table("dataset_ingests")

"""dataset ingests as jobs: the last ingest's job id and its attempts in columns of their own

Revision ID: 0010_ingest_jobs
Revises: 0009_deployments
Create Date: 2026-12-07 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_ingest_jobs"
down_revision: str | None = "0009_deployments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

datasets = sa.table(
    "datasets",
    sa.column("id", sa.String()),
    sa.column("ingest", sa.JSON()),
    sa.column("ingest_job_id", sa.String()),
    sa.column("ingest_attempts", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ingest_job_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("ingest_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index(batch_op.f("ix_datasets_ingest_job_id"), ["ingest_job_id"], unique=False)
    # The job id and the attempts were keys of the ``ingest`` request until now.
    connection = op.get_bind()
    for dataset_id, ingest in connection.execute(sa.select(datasets.c.id, datasets.c.ingest)).all():
        if isinstance(ingest, dict) and ingest.get("jobId"):
            connection.execute(
                datasets.update()
                .where(datasets.c.id == dataset_id)
                .values(ingest_job_id=str(ingest["jobId"]), ingest_attempts=int(ingest.get("attempts") or 0))
            )


def downgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_datasets_ingest_job_id"))
        batch_op.drop_column("ingest_attempts")
        batch_op.drop_column("ingest_job_id")

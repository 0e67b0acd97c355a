"""lease holders: who holds an ingest's, a conversion's and a webhook delivery's lease

Revision ID: 0011_lease_holders
Revises: 0010_ingest_jobs
Create Date: 2026-12-07 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_lease_holders"
down_revision: str | None = "0010_ingest_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("datasets", "ingest_lease_holder"),
    ("models", "serving_lease_holder"),
    ("webhook_deliveries", "lease_holder"),
)


def upgrade() -> None:
    # Empty for leases taken before: those run out as they always did.
    for table, column in COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column(column, sa.String(length=255), nullable=True))


def downgrade() -> None:
    for table, column in reversed(COLUMNS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column(column)

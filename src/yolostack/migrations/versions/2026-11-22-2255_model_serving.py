"""model weights and serving

Revision ID: 0006_model_serving
Revises: 0005_dataset_exports
Create Date: 2026-11-22 22:55:17.595294
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import yolostack.tables.base

revision: str = "0006_model_serving"
down_revision: str | None = "0005_dataset_exports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("train_args", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("metrics", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("epochs", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("weights_key", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("weights_name", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("weights_size", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("weights_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("serving_status", sa.String(length=16), nullable=False, server_default="none"))
        batch_op.add_column(sa.Column("serving_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("serving_key", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("serving_info", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("serving_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("serving_lease_until", yolostack.tables.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_models_serving_status"), ["serving_status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_serving_status"))
        batch_op.drop_column("serving_lease_until")
        batch_op.drop_column("serving_attempts")
        batch_op.drop_column("serving_info")
        batch_op.drop_column("serving_key")
        batch_op.drop_column("serving_error")
        batch_op.drop_column("serving_status")
        batch_op.drop_column("weights_sha256")
        batch_op.drop_column("weights_size")
        batch_op.drop_column("weights_name")
        batch_op.drop_column("weights_key")
        batch_op.drop_column("epochs")
        batch_op.drop_column("metrics")
        batch_op.drop_column("train_args")

"""batches; jobs.batch_id and jobs.custom_id

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import docproc.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("created_at", docproc.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("in_progress_at", docproc.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelling_at", docproc.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batches_owner"), ["owner"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("custom_id", sa.String(length=256), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_batch_id"), ["batch_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_jobs_batch_id_batches", "batches", ["batch_id"], ["id"], ondelete="CASCADE"
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_jobs_batch_id_batches", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_jobs_batch_id"))
        batch_op.drop_column("custom_id")
        batch_op.drop_column("batch_id")

    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batches_owner"))

    op.drop_table("batches")

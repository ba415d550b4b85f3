"""jobs.queue_seen_at, so that the sweeper can re-send queued jobs whose message the broker lost

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import docproc.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("queue_seen_at", docproc.models.UTCDateTime(timezone=True), nullable=True)
        )
    # Existing jobs were sent when they were created; any queued one is then looked for on the next sweep.
    op.execute("UPDATE jobs SET queue_seen_at = created_at")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("queue_seen_at", nullable=False)
        batch_op.create_index("ix_jobs_status_queue_seen_at", ["status", "queue_seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_status_queue_seen_at")
        batch_op.drop_column("queue_seen_at")

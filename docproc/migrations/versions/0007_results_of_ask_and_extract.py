"""results of ask and extract: answer, data, citations, dropped_quotes, cached_tokens; summary nullable

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.alter_column("summary", existing_type=sa.Text(), nullable=True)
        batch_op.add_column(sa.Column("answer", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("data", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("citations", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("dropped_quotes", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cached_tokens", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.execute("UPDATE results SET summary = coalesce(summary, answer, '')")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("cached_tokens")
        batch_op.drop_column("dropped_quotes")
        batch_op.drop_column("citations")
        batch_op.drop_column("data")
        batch_op.drop_column("answer")
        batch_op.alter_column("summary", existing_type=sa.Text(), nullable=False)

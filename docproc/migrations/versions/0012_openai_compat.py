"""The OpenAI-compatible API: uploaded batch files, chat results' finish reason, OpenAI batch fields

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import docproc.models

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", docproc.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_files_owner"), "files", ["owner"], unique=False)
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("finish_reason", sa.String(length=16), nullable=True))
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("endpoint", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("input_file_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("completion_window", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("request_metadata", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("request_metadata")
        batch_op.drop_column("completion_window")
        batch_op.drop_column("input_file_id")
        batch_op.drop_column("endpoint")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("finish_reason")
    op.drop_index(op.f("ix_files_owner"), table_name="files")
    op.drop_table("files")

"""idempotency_keys; expires_at on documents, jobs and batches (retention)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 18:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import docproc.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXPIRING = ("documents", "jobs", "batches")


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=128), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("created_at", docproc.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", docproc.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_idempotency_keys_owner_key",
        "idempotency_keys",
        [sa.text("coalesce(owner, '')"), "key"],
        unique=True,
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])
    for name in EXPIRING:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("expires_at", docproc.models.UTCDateTime(timezone=True), nullable=True)
            )
            batch_op.create_index(f"ix_{name}_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    for name in EXPIRING:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{name}_expires_at")
            batch_op.drop_column("expires_at")
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_index("uq_idempotency_keys_owner_key", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")

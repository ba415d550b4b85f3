"""jobs outlive their document (document_id SET NULL on delete); jobs.batch_line keeps a batch's input order

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite's foreign key has no name: batch mode names it by this convention so that it can be replaced.
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _document_fk() -> str:
    if op.get_bind().dialect.name == "postgresql":
        return "jobs_document_id_fkey"
    return "fk_jobs_document_id_documents"


def upgrade() -> None:
    with op.batch_alter_table("jobs", naming_convention=NAMING) as batch_op:
        batch_op.add_column(sa.Column("batch_line", sa.Integer(), nullable=True))
        batch_op.alter_column("document_id", existing_type=sa.String(length=40), nullable=True)
        batch_op.drop_constraint(_document_fk(), type_="foreignkey")
        batch_op.create_foreign_key(
            "fk_jobs_document_id_documents", "documents", ["document_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE document_id IS NULL")
    with op.batch_alter_table("jobs", naming_convention=NAMING) as batch_op:
        batch_op.drop_constraint("fk_jobs_document_id_documents", type_="foreignkey")
        batch_op.create_foreign_key(
            "jobs_document_id_fkey", "documents", ["document_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.alter_column("document_id", existing_type=sa.String(length=40), nullable=False)
        batch_op.drop_column("batch_line")

"""one document per owner and content: duplicates merged, then a unique index on (coalesce(owner, ''), sha256)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00.000000

Concurrent uploads of one file could make several documents. Each group of such duplicates is merged into its
oldest document: the others' jobs (with their results) move to it, and the others are deleted.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

documents = sa.table(
    "documents", sa.column("id"), sa.column("owner"), sa.column("sha256"), sa.column("created_at")
)
pages = sa.table("document_pages", sa.column("document_id"))
jobs = sa.table("jobs", sa.column("document_id"))


def upgrade() -> None:
    connection = op.get_bind()
    duplicated = connection.execute(
        sa.select(documents.c.owner, documents.c.sha256)
        .group_by(documents.c.owner, documents.c.sha256)
        .having(sa.func.count() > 1)
    ).all()
    for owner, sha256 in duplicated:
        kept, *merged = connection.scalars(
            sa.select(documents.c.id)
            .where(documents.c.owner == owner, documents.c.sha256 == sha256)
            .order_by(documents.c.created_at, documents.c.id)
        ).all()
        connection.execute(jobs.update().where(jobs.c.document_id.in_(merged)).values(document_id=kept))
        # Explicitly: SQLite enforces no ON DELETE CASCADE here (foreign keys are off in migrations).
        connection.execute(pages.delete().where(pages.c.document_id.in_(merged)))
        connection.execute(documents.delete().where(documents.c.id.in_(merged)))

    op.drop_index("ix_documents_owner_sha256", table_name="documents")
    op.create_index(
        "uq_documents_owner_sha256",
        "documents",
        [sa.text("coalesce(owner, '')"), "sha256"],
        unique=True,
    )


def downgrade() -> None:
    # Merged duplicates are not split again.
    op.drop_index("uq_documents_owner_sha256", table_name="documents")
    op.create_index("ix_documents_owner_sha256", "documents", ["owner", "sha256"], unique=False)

"""document_pages.source: how a page's text was obtained (text_layer, ocr, text, markdown, html, docx, ...)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("document_pages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=16), nullable=False, server_default="text"))
    # Until now every page came from a PDF's text layer or from a text file read as its sniffed type.
    op.execute(
        "UPDATE document_pages SET source = CASE "
        "(SELECT content_type FROM documents WHERE documents.id = document_pages.document_id) "
        "WHEN 'application/pdf' THEN 'text_layer' WHEN 'text/markdown' THEN 'markdown' "
        "WHEN 'text/html' THEN 'html' ELSE 'text' END"
    )
    with op.batch_alter_table("document_pages", schema=None) as batch_op:
        batch_op.alter_column("source", existing_type=sa.String(length=16), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("document_pages", schema=None) as batch_op:
        batch_op.drop_column("source")

"""Migrations upgrade databases that hold data, including data the new constraints refuse."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import JSON, Boolean, Integer, String, column, create_engine, select, table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from docproc.db import migrate
from docproc.models import Document, DocumentPage, Job, UTCDateTime, new_id
from tests.conftest import fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'docproc.db'}"
        return
    with fresh_postgres_database("docproc_migration") as url:
        yield url


JOBS_AT_0002 = table(
    "jobs",
    column("id", String),
    column("document_id", String),
    column("task", String),
    column("options", JSON),
    column("status", String),
    column("tokens_done", Integer),
    column("tokens_total", Integer),
    column("cancel_requested", Boolean),
    column("attempts", Integer),
    column("created_at", UTCDateTime),
)


# Documents and pages as revisions before 0010 and 0011 knew them: the model has grown columns since.
DOCUMENTS_BEFORE_0010 = table(
    "documents",
    *(column(name) for name in ("id", "owner", "filename", "content_type", "sha256", "size_bytes")),
    column("page_count", Integer),
    column("tokens", Integer),
    column("created_at", UTCDateTime),
)
PAGES_BEFORE_0011 = table(
    "document_pages", column("document_id", String), column("number", Integer), column("text", String)
)


def document(owner: str | None, sha256: str, age_s: int, content_type: str = "text/plain") -> Document:
    return Document(
        owner=owner,
        filename="notes.txt",
        content_type=content_type,
        sha256=sha256,
        size_bytes=10,
        page_count=1,
        tokens=3,
        created_at=datetime.now(UTC) - timedelta(seconds=age_s),
    )


def add_documents_before_0010(session: Session, documents: list[Document]) -> None:
    """Inserts the documents, each with one page, in the columns those revisions had."""
    for row in documents:
        row.id = new_id("doc")
    columns = [c.name for c in DOCUMENTS_BEFORE_0010.columns]
    session.execute(DOCUMENTS_BEFORE_0010.insert(), [{c: getattr(d, c) for c in columns} for d in documents])
    rows = [{"document_id": d.id, "number": 1, "text": "Some notes."} for d in documents]
    session.execute(PAGES_BEFORE_0011.insert(), rows)


def test_duplicate_documents_are_merged_into_the_oldest(empty_database_url: str) -> None:
    migrate(empty_database_url, "0002")
    engine = create_engine(empty_database_url)
    sha256 = "ab" * 32
    with Session(engine, expire_on_commit=False) as session:
        open_first, open_again = document(None, sha256, 60), document(None, sha256, 30)
        owned_first, owned_again = document("alice", sha256, 20), document("alice", sha256, 10)
        other_content = document(None, "cd" * 32, 5)
        documents = [open_first, open_again, owned_first, owned_again, other_content]
        add_documents_before_0010(session, documents)
        # Jobs as revision 0002 knew them: the model has grown columns since.
        jobs = [(new_id("job"), d.id) for d in (open_first, open_again, owned_again)]
        session.execute(
            JOBS_AT_0002.insert(),
            [
                {
                    "id": job_id,
                    "document_id": document_id,
                    "task": "summarize",
                    "options": {},
                    "status": "queued",
                    "tokens_done": 0,
                    "tokens_total": 0,
                    "cancel_requested": False,
                    "attempts": 0,
                    "created_at": datetime.now(UTC),
                }
                for job_id, document_id in jobs
            ],
        )
        session.commit()

    migrate(empty_database_url)

    with Session(engine) as session:
        remaining = set(session.scalars(select(Document.id)))
        assert remaining == {open_first.id, owned_first.id, other_content.id}
        assert set(session.scalars(select(DocumentPage.document_id))) == remaining
        moved = {job.id: job.document_id for job in session.scalars(select(Job))}
        assert moved == {jobs[0][0]: open_first.id, jobs[1][0]: open_first.id, jobs[2][0]: owned_first.id}
    for owner in (None, "alice"):
        with Session(engine) as session, pytest.raises(IntegrityError):
            session.add(document(owner, sha256, 0))
            session.commit()
    with Session(engine) as session:
        session.add(document("bob", sha256, 0))
        session.commit()
    engine.dispose()


def test_existing_pages_get_their_source_from_the_document_type(empty_database_url: str) -> None:
    migrate(empty_database_url, "0006")
    engine = create_engine(empty_database_url)
    types = {
        "application/pdf": "text_layer",
        "text/markdown": "markdown",
        "text/html": "html",
        "text/plain": "text",
    }
    with Session(engine, expire_on_commit=False) as session:
        documents = {document(None, f"{index:02x}" * 32, 0, kind): kind for index, kind in enumerate(types)}
        add_documents_before_0010(session, list(documents))
        session.commit()

    migrate(empty_database_url)

    with Session(engine) as session:
        rows = session.execute(select(DocumentPage.document_id, DocumentPage.source))
        sources = {row.document_id: row.source for row in rows}
        assert sources == {d.id: types[kind] for d, kind in documents.items()}
    engine.dispose()

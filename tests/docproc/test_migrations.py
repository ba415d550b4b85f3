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


DOCUMENTS_AT_0002 = table(
    "documents",
    *(column(name) for name in ("id", "owner", "filename", "content_type", "sha256", "size_bytes")),
    column("page_count", Integer),
    column("tokens", Integer),
    column("created_at", UTCDateTime),
)
PAGES_AT_0002 = table("document_pages", column("document_id"), column("number"), column("text"))


def document_at_0002(row: Document) -> dict[str, object]:
    return {c.name: getattr(row, c.name) for c in DOCUMENTS_AT_0002.columns}


def document(owner: str | None, sha256: str, age_s: int) -> Document:
    return Document(
        owner=owner,
        filename="notes.txt",
        content_type="text/plain",
        sha256=sha256,
        size_bytes=10,
        page_count=1,
        tokens=3,
        created_at=datetime.now(UTC) - timedelta(seconds=age_s),
        pages=[DocumentPage(number=1, text="Some notes.")],
    )


def test_duplicate_documents_are_merged_into_the_oldest(empty_database_url: str) -> None:
    migrate(empty_database_url, "0002")
    engine = create_engine(empty_database_url)
    sha256 = "ab" * 32
    with Session(engine, expire_on_commit=False) as session:
        open_first, open_again = document(None, sha256, 60), document(None, sha256, 30)
        owned_first, owned_again = document("alice", sha256, 20), document("alice", sha256, 10)
        other_content = document(None, "cd" * 32, 5)
        # Documents as revision 0002 knew them: the model has grown columns since (expires_at).
        documents = [open_first, open_again, owned_first, owned_again, other_content]
        for row in documents:
            row.id = new_id("doc")
        session.execute(DOCUMENTS_AT_0002.insert(), [document_at_0002(row) for row in documents])
        session.execute(
            PAGES_AT_0002.insert(),
            [{"document_id": d.id, "number": p.number, "text": p.text} for d in documents for p in d.pages],
        )
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

"""Database tables: documents (with their extracted pages), jobs, results and batches of jobs.

The database, not Celery's result backend, is the source of truth for job state.
"""

import enum
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


_ID = re.compile(r"[a-z]{1,8}_[0-9a-f]{32}")


def is_well_formed_id(value: str) -> bool:
    """Whether `value` has the shape of an id `new_id` makes; any other value names nothing."""
    return _ID.fullmatch(value) is not None


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[list[int]]: JSON,
        list[dict[str, Any]]: JSON,
    }


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class Document(Base):
    __tablename__ = "documents"
    # One document per owner and content. Owner is NULL when the API is open, and NULLs never collide in a
    # unique index: the index is on coalesce(owner, '') (owners are key hashes, never '').
    __table_args__ = (Index("uq_documents_owner_sha256", text("coalesce(owner, '')"), "sha256", unique=True),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("doc"))
    # A hash of the API key that uploaded it; None when the API is open.
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    content_type: Mapped[str] = mapped_column(String(64))
    # Identical files share one blob on disk, named by this hash.
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    page_count: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    pages: Mapped[list["DocumentPage"]] = relationship(
        back_populates="document", cascade="all, delete-orphan", order_by="DocumentPage.number"
    )


class DocumentPage(Base):
    __tablename__ = "document_pages"

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)

    document: Mapped[Document] = relationship(back_populates="pages")


class Job(Base):
    __tablename__ = "jobs"
    # The sweeper's question, "which queued jobs have not been seen on the queue lately?", is one index range.
    __table_args__ = (Index("ix_jobs_status_queue_seen_at", "status", "queue_seen_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("job"))
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    # None once the document is deleted: the job and its result stay, so that history does not change.
    document_id: Mapped[str | None] = mapped_column(
        ForeignKey("documents.id", ondelete="SET NULL"), index=True
    )
    task: Mapped[str] = mapped_column(String(32))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=16), default=JobStatus.queued, index=True
    )
    tokens_done: Mapped[int] = mapped_column(Integer, default=0)
    tokens_total: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # Which worker runs the job and until when its claim holds; renewed by a heartbeat while it runs.
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the job's message was last known to be on the queue: when it was sent, or when the sweeper last
    # found it there. A queued job not seen for a while may have lost its message with the broker's data.
    queue_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Set for a batch's items: the batch, the caller's id for the item (results are joined on it) and its
    # input line (results keep input order).
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    custom_id: Mapped[str | None] = mapped_column(String(256))
    batch_line: Mapped[int | None] = mapped_column(Integer)

    result: Mapped["Result | None"] = relationship(back_populates="job", cascade="all, delete-orphan")


class Result(Base):
    __tablename__ = "results"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    summary: Mapped[str] = mapped_column(Text)
    thinking: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(256))
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    # Page ranges the summary draws on: [[first, last], ...].
    source_pages: Mapped[list[list[int]]] = mapped_column(default=list)
    # How the summary was made (extract_compress, extractive, abstractive) and how many generated sentences
    # failed the faithfulness check (each replaced by a source sentence, or dropped). None: made before both.
    method: Mapped[str | None] = mapped_column(String(32))
    replaced_sentences: Mapped[int | None] = mapped_column(Integer)
    # Chat answers: prompt tokens served from a kept document state, and why the answer ended (stop, length).
    cached_tokens: Mapped[int | None] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="result")


class Batch(Base):
    """Many jobs submitted together. Its status and counts are derived from its jobs (docproc.batches)."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("batch"))
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    # Input lines that were refused: [{line, custom_id, code, message}, ...].
    errors: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the input was validated and its items queued.
    in_progress_at: Mapped[datetime | None]
    cancelling_at: Mapped[datetime | None]
    # Batches made through the OpenAI-compatible API (docproc.openai_compat): what OpenAI's Batch shows.
    endpoint: Mapped[str | None] = mapped_column(String(64))
    input_file_id: Mapped[str | None] = mapped_column(String(40))
    completion_window: Mapped[str | None] = mapped_column(String(16))
    request_metadata: Mapped[dict[str, Any] | None] = mapped_column()


class StoredFile(Base):
    """A file uploaded through the OpenAI-compatible API with purpose `batch`: a batch's JSONL input.

    Files with purpose `user_data` become documents instead.
    """

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("file"))
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(512))
    size_bytes: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

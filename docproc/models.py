"""Database tables: documents (with their extracted pages and kept model states), jobs, results and batches
of jobs.

The database, not Celery's result backend, is the source of truth for job state.
"""

import enum
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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

# URLs are stored up to this length; longer ones are refused.
WEBHOOK_URL_MAX = 2048


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
    # Retention: the sweep deletes the document, its pages, blob and states after this (None: kept).
    expires_at: Mapped[datetime | None] = mapped_column(index=True)

    pages: Mapped[list["DocumentPage"]] = relationship(
        back_populates="document", cascade="all, delete-orphan", order_by="DocumentPage.number"
    )
    # Loaded with the document (listings show each one's state); rows go with it (ON DELETE CASCADE).
    states: Mapped[list["DocumentState"]] = relationship(
        back_populates="document",
        cascade="all, delete-orphan",
        lazy="selectin",
        passive_deletes=True,
        order_by="DocumentState.last_used_at.desc()",
    )

    @property
    def kept_state(self) -> "DocumentState | None":
        """The kept state the API shows (the most recently used, if several)."""
        return self.states[0] if self.states else None


class DocumentPage(Base):
    __tablename__ = "document_pages"

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    # How the text was obtained: text_layer (a PDF's), ocr, or the file's format (text, markdown, html, docx,
    # pptx, epub).
    source: Mapped[str] = mapped_column(String(16))

    document: Mapped[Document] = relationship(back_populates="pages")


class DocumentState(Base):
    """A fully read document state kept by docproc.states.StateStore (the file is named by `key`)."""

    __tablename__ = "document_states"

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    # A digest of the engine's fingerprint and the token ids read (docproc.states.state_key).
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The engine and weights the state was computed with.
    fingerprint: Mapped[str] = mapped_column(String(64))
    tokens: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Eviction takes the least recently used first.
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    document: Mapped[Document] = relationship(back_populates="states")


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
    # Retention: the sweep deletes the finished job, its result and states after this (None: kept). A batch's
    # items go with their batch.
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    # Told of the job's end (docproc.webhooks); None: no webhook.
    webhook_url: Mapped[str | None] = mapped_column(String(WEBHOOK_URL_MAX))

    result: Mapped["Result | None"] = relationship(back_populates="job", cascade="all, delete-orphan")
    webhook: Mapped["WebhookDelivery | None"] = relationship(viewonly=True)

    @property
    def webhook_state(self) -> "WebhookDelivery | None":
        return webhook_state(self.webhook_url, self.webhook)

    @property
    def progress(self) -> dict[str, int]:
        return {"tokens_done": self.tokens_done, "tokens_total": self.tokens_total}

    @property
    def error(self) -> dict[str, str] | None:
        return {"code": self.error_code, "message": self.error_message or ""} if self.error_code else None


class Result(Base):
    __tablename__ = "results"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    # summarize: the summary; ask: the answer (in `answer`); extract: the data. None where another task's.
    summary: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None]
    # ask, extract: [{page, quote}, ...], each quote found on its page; quotes that were not, counted.
    citations: Mapped[list[dict[str, Any]] | None]
    dropped_quotes: Mapped[int | None] = mapped_column(Integer)
    # Document tokens a streaming engine did not read again (it continued from the document's kept state).
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
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
    # Chat answers: why the answer ended (stop, length).
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="result")

    @property
    def usage(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
        }

    @property
    def task(self) -> str:
        return self.job.task


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
    # Retention: the sweep deletes the batch and its items once all are finished and this has passed.
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    # Told of the batch's end (docproc.webhooks); None: no webhook.
    webhook_url: Mapped[str | None] = mapped_column(String(WEBHOOK_URL_MAX))
    # Batches made through the OpenAI-compatible API (docproc.openai_compat): what OpenAI's Batch shows.
    endpoint: Mapped[str | None] = mapped_column(String(64))
    input_file_id: Mapped[str | None] = mapped_column(String(40))
    completion_window: Mapped[str | None] = mapped_column(String(16))
    request_metadata: Mapped[dict[str, Any] | None] = mapped_column()

    webhook: Mapped["WebhookDelivery | None"] = relationship(viewonly=True)

    @property
    def webhook_state(self) -> "WebhookDelivery | None":
        return webhook_state(self.webhook_url, self.webhook)


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


class IdempotencyKey(Base):
    """A submit's Idempotency-Key and the response it got, replayed for the same request with the same key.

    The row is inserted before the request runs: the unique index lets one of many concurrent duplicates run
    while the others wait for its response. status_code is None while it runs.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("uq_idempotency_keys_owner_key", text("coalesce(owner, '')"), "key", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str | None] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    # sha256 of the method, path and body: the same key with another request is a conflict.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(128))
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class WebhookStatus(enum.StrEnum):
    pending = "pending"  # the job or batch has not ended yet, or its event is being delivered or retried
    delivered = "delivered"
    failed = "failed"  # every attempt failed until webhook_retry_for_s ran out


class WebhookDelivery(Base):
    """The one event sent when a job or a batch ends: its fixed payload and the state of its delivery.

    Written in the transaction that ends the job (or the batch's last job), so no end goes untold; sent by
    Celery tasks, and by the workers' sweep when a task was lost (next_attempt_at long past).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),)

    # The Standard Webhooks message id (webhook-id header): the same on every attempt, for receivers' dedup.
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("msg"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), unique=True)
    url: Mapped[str] = mapped_column(String(WEBHOOK_URL_MAX))
    # The exact body sent on every attempt (its signature covers these bytes).
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[WebhookStatus] = mapped_column(
        Enum(WebhookStatus, native_enum=False, length=16), default=WebhookStatus.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # An attempt in flight holds the delivery until then, so that a duplicate task does not send it twice.
    claimed_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One POST of a delivery: when, the answer's status (None: no answer) and the error, if any."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


def webhook_state(url: str | None, delivery: WebhookDelivery | None) -> WebhookDelivery | None:
    """A job's or batch's end event as the API shows it: None without a webhook; before the end, when no
    delivery exists yet, an unsaved pending one."""
    if url is None:
        return None
    return delivery or WebhookDelivery(url=url, status=WebhookStatus.pending, attempts=0, last_error=None)

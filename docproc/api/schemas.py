"""JSON shapes of the REST API."""

from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from docproc.models import WEBHOOK_URL_MAX, Batch, JobStatus, WebhookStatus
from docproc.task_options import TASK_OPTIONS, TaskName

if TYPE_CHECKING:
    from docproc.batches import BatchState


class ErrorBody(BaseModel):
    code: str
    message: str


class FieldError(BaseModel):
    loc: list[str | int]
    type: str
    msg: str


class ErrorDetail(ErrorBody):
    errors: list[FieldError] | None = Field(None, description="One entry per invalid field, if any.")


class ErrorEnvelope(BaseModel):
    """The body of every error response."""

    detail: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses an operation may answer, each with the envelope."""
    return {status: {"model": ErrorEnvelope, "description": HTTPStatus(status).phrase} for status in statuses}


# Listing pages: offsets fit the databases' integers (an OverflowError otherwise).
MAX_OFFSET = 2**31 - 1
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
# A document's pages: a page number bound, and a limit whose most is a setting (checked by the service).
PageNumber = Annotated[int | None, Query(ge=1, le=MAX_OFFSET)]
PagesLimit = Annotated[int, Query(ge=1, le=MAX_OFFSET)]


class FromRow(BaseModel):
    """An output read from an ORM row's attributes (`Model.model_validate(row)`)."""

    model_config = ConfigDict(from_attributes=True)


class StateOut(FromRow):
    """The document's fully read model state kept for later tasks (the most recently used, if several)."""

    kept: bool = True
    tokens: int
    bytes: int = Field(validation_alias="size_bytes")


class DocumentOut(FromRow):
    id: str
    filename: str
    content_type: str
    pages: int = Field(validation_alias="page_count")
    tokens: int
    sha256: str
    size_bytes: int
    created_at: datetime
    # When retention deletes it (DOCPROC_RETENTION_DAYS); None: kept until deleted.
    expires_at: datetime | None
    state: StateOut | None = Field(
        validation_alias="kept_state",
        description="Null when no state is kept: the next task reads the document (again).",
    )


class PageOut(FromRow):
    """A page of a document's text as the model reads it, and how the text was obtained."""

    number: int
    text: str
    source: str = Field(description="text_layer, ocr, or the file's format: text, markdown, html, docx, ...")


Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    data: list[Item]
    total: int
    limit: int
    offset: int


WebhookUrl = Annotated[
    str | None,
    Field(
        max_length=WEBHOOK_URL_MAX,
        description="An http(s) URL told of the end (signed per Standard Webhooks); default: the server's.",
    ),
]


# Each task's options, shown in OpenAPI; validated against the task's own model when the job is created.
TASK_OPTIONS_FIELD = Field(
    default_factory=dict,
    description="The task's options: "
    + "; ".join(f"{task}: {model.__name__}" for task, model in TASK_OPTIONS.items())
    + " (unknown fields and another task's options are refused).",
    json_schema_extra={
        "anyOf": [{"title": model.__name__, **model.model_json_schema()} for model in TASK_OPTIONS.values()]
    },
)


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_id: str
    task: TaskName = "summarize"
    options: dict[str, Any] = TASK_OPTIONS_FIELD
    webhook_url: WebhookUrl = None


class WebhookOut(FromRow):
    """The delivery of the end event: pending until the job or batch ended and its receiver took it."""

    status: WebhookStatus
    attempts: int
    last_error: str | None


class Progress(FromRow):
    tokens_done: int
    tokens_total: int


class JobOut(FromRow):
    id: str
    # None once the document was deleted.
    document_id: str | None
    task: str
    options: dict[str, Any]
    status: JobStatus
    progress: Progress
    error: ErrorBody | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # Set for a batch's items.
    batch_id: str | None
    custom_id: str | None
    # When retention deletes the job and its result; None: kept until deleted.
    expires_at: datetime | None
    # None without a webhook.
    webhook: WebhookOut | None = Field(None, validation_alias="webhook_state")


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    # Document tokens not read again: a streaming engine continued from the document's kept state.
    cached_tokens: int = 0


class Citation(BaseModel):
    page: int
    # Occurs on that page (compared with whitespace and case normalised).
    quote: str


class ResultOut(FromRow):
    job_id: str
    task: str
    # summarize: the summary; ask: the answer; extract: data, valid against the job's schema.
    summary: str | None
    answer: str | None
    data: dict[str, Any] | None
    # ask, extract: the quotes the answer rests on, each checked on its page; dropped_quotes counts the
    # quotes the model gave that were not on the page they named.
    citations: list[Citation] | None
    dropped_quotes: int | None
    thinking: str | None
    model: str
    usage: Usage
    source_pages: list[list[int]]
    # extract_compress | extractive | abstractive (None for results made before methods were recorded).
    method: str | None
    # Generated sentences that failed the faithfulness check: replaced by their closest source sentence or
    # dropped.
    replaced_sentences: int | None


class BatchIn(BaseModel):
    """A batch over documents: one request per document id, all with the same task and options."""

    model_config = ConfigDict(extra="forbid")

    document_ids: list[str] = Field(min_length=1)
    task: TaskName = "summarize"
    options: dict[str, Any] = TASK_OPTIONS_FIELD
    webhook_url: WebhookUrl = None


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int
    cancelled: int


class BatchLineError(BaseModel):
    line: int
    custom_id: str | None
    code: str
    message: str


BatchStatus = Literal[
    "validating", "in_progress", "finalizing", "completed", "failed", "cancelling", "cancelled"
]


class BatchOut(BaseModel):
    """Like OpenAI's Batch object; `errors` lists the input lines that were refused."""

    id: str
    object: Literal["batch"] = "batch"
    status: BatchStatus
    request_counts: RequestCounts
    errors: list[BatchLineError]
    results_url: str
    created_at: datetime
    in_progress_at: datetime | None
    finalizing_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    cancelling_at: datetime | None
    cancelled_at: datetime | None
    # When retention deletes the batch and its items; None: kept until deleted.
    expires_at: datetime | None
    # None without a webhook.
    webhook: WebhookOut | None = None

    @classmethod
    def of(cls, batch: Batch, state: "BatchState") -> "BatchOut":
        return cls(
            id=batch.id,
            status=state.status,
            request_counts=RequestCounts(
                total=state.total, completed=state.completed, failed=state.failed, cancelled=state.cancelled
            ),
            errors=[BatchLineError(**error) for error in batch.errors],
            results_url=f"/v1/batches/{batch.id}/results",
            created_at=batch.created_at,
            in_progress_at=batch.in_progress_at,
            finalizing_at=state.finalizing_at,
            completed_at=state.completed_at,
            failed_at=state.failed_at,
            cancelling_at=batch.cancelling_at,
            cancelled_at=state.cancelled_at,
            expires_at=batch.expires_at,
            webhook=None if batch.webhook_state is None else WebhookOut.model_validate(batch.webhook_state),
        )

"""JSON shapes of the REST API."""

from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from docproc.models import Batch, Document, Job, JobStatus, Result
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


class StateOut(BaseModel):
    """The document's fully read model state kept for later tasks (the most recently used, if several)."""

    kept: bool
    tokens: int
    bytes: int


class DocumentOut(BaseModel):
    id: str
    filename: str
    content_type: str
    pages: int
    tokens: int
    sha256: str
    size_bytes: int
    created_at: datetime
    state: StateOut | None = Field(
        description="Null when no state is kept: the next task reads the document (again)."
    )

    @classmethod
    def of(cls, document: Document) -> "DocumentOut":
        kept = document.states[0] if document.states else None
        return cls(
            id=document.id,
            filename=document.filename,
            content_type=document.content_type,
            pages=document.page_count,
            tokens=document.tokens,
            sha256=document.sha256,
            size_bytes=document.size_bytes,
            created_at=document.created_at,
            state=StateOut(kept=True, tokens=kept.tokens, bytes=kept.size_bytes) if kept else None,
        )


Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    data: list[Item]
    total: int
    limit: int
    offset: int


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


class Progress(BaseModel):
    tokens_done: int
    tokens_total: int


class JobOut(BaseModel):
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

    @classmethod
    def of(cls, job: Job) -> "JobOut":
        return cls(
            id=job.id,
            document_id=job.document_id,
            task=job.task,
            options=job.options,
            status=job.status,
            progress=Progress(tokens_done=job.tokens_done, tokens_total=job.tokens_total),
            error=ErrorBody(code=job.error_code, message=job.error_message or "") if job.error_code else None,
            attempts=job.attempts,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            batch_id=job.batch_id,
            custom_id=job.custom_id,
        )


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    # Document tokens not read again: a streaming engine continued from the document's kept state.
    cached_tokens: int = 0


class Citation(BaseModel):
    page: int
    # Occurs on that page (compared with whitespace and case normalised).
    quote: str


class ResultOut(BaseModel):
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

    @classmethod
    def of(cls, result: Result) -> "ResultOut":
        return cls(
            job_id=result.job_id,
            task=result.job.task,
            summary=result.summary,
            answer=result.answer,
            data=result.data,
            citations=None if result.citations is None else [Citation(**c) for c in result.citations],
            dropped_quotes=result.dropped_quotes,
            thinking=result.thinking,
            model=result.model,
            usage=Usage(
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
                cached_tokens=result.cached_tokens,
            ),
            source_pages=result.source_pages,
            method=result.method,
            replaced_sentences=result.replaced_sentences,
        )


class BatchIn(BaseModel):
    """A batch over documents: one request per document id, all with the same task and options."""

    model_config = ConfigDict(extra="forbid")

    document_ids: list[str] = Field(min_length=1)
    task: TaskName = "summarize"
    options: dict[str, Any] = TASK_OPTIONS_FIELD


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
        )

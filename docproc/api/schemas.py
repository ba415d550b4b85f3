"""JSON shapes of the REST API."""

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from docproc.models import Document, Job, JobStatus, Result


class ErrorBody(BaseModel):
    code: str
    message: str


class DocumentOut(BaseModel):
    id: str
    filename: str
    content_type: str
    pages: int
    tokens: int
    sha256: str
    size_bytes: int
    created_at: datetime

    @classmethod
    def of(cls, document: Document) -> "DocumentOut":
        return cls(
            id=document.id,
            filename=document.filename,
            content_type=document.content_type,
            pages=document.page_count,
            tokens=document.tokens,
            sha256=document.sha256,
            size_bytes=document.size_bytes,
            created_at=document.created_at,
        )


Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    data: list[Item]
    total: int
    limit: int
    offset: int


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_id: str
    task: Literal["summarize"] = "summarize"
    options: dict[str, Any] = Field(default_factory=dict)


class Progress(BaseModel):
    tokens_done: int
    tokens_total: int


class JobOut(BaseModel):
    id: str
    document_id: str
    task: str
    options: dict[str, Any]
    status: JobStatus
    progress: Progress
    error: ErrorBody | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

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
        )


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class ResultOut(BaseModel):
    job_id: str
    summary: str
    thinking: str | None
    model: str
    usage: Usage
    source_pages: list[list[int]]

    @classmethod
    def of(cls, result: Result) -> "ResultOut":
        return cls(
            job_id=result.job_id,
            summary=result.summary,
            thinking=result.thinking,
            model=result.model,
            usage=Usage(input_tokens=result.input_tokens, output_tokens=result.output_tokens),
            source_pages=result.source_pages,
        )

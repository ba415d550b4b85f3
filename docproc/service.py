"""Operations on documents and jobs, shared by the REST API and the CLI. Errors carry a code and a reason."""

import shutil
from pathlib import Path
from typing import BinaryIO, TypeVar

from pydantic import ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from docproc.engine import get_tokenizer
from docproc.errors import ServiceError
from docproc.ingestion import IngestionError, extract
from docproc.models import Batch, Document, DocumentPage, Job, JobStatus, utcnow
from docproc.pipeline import SummarizeOptions
from docproc.settings import get_settings
from docproc.storage import UploadTooLarge, blob_path, save_blob

TASKS = {"summarize": SummarizeOptions}

Owned = TypeVar("Owned", Document, Job, Batch)


def not_found(kind: str, item_id: str) -> ServiceError:
    return ServiceError(404, "not_found", f"No {kind} with id {item_id!r}.")


def add_document(
    session: Session, owner: str | None, filename: str, source: BinaryIO, password: str | None = None
) -> tuple[Document, bool]:
    """Store and extract an upload; returns (document, created). An owner's same file is not added twice."""
    settings = get_settings()
    try:
        path, sha256, size = save_blob(source, settings.blob_dir, settings.max_upload_bytes)
    except UploadTooLarge as exc:
        raise ServiceError(413, exc.code, str(exc)) from exc
    existing = session.scalar(select(Document).where(Document.owner == owner, Document.sha256 == sha256))
    if existing is not None:
        return existing, False
    try:
        extracted = extract(
            path,
            password=password,
            timeout_s=settings.parse_timeout_s,
            max_pages=settings.max_pages,
            max_chars=settings.max_document_chars,
            page_chars=settings.text_page_chars,
        )
    except IngestionError:
        _drop_blob_if_unused(session, sha256)
        raise
    tokenizer = get_tokenizer()
    document = Document(
        owner=owner,
        filename=Path(filename or "upload").name[:512],
        content_type=extracted.content_type,
        sha256=sha256,
        size_bytes=size,
        page_count=len(extracted.pages),
        tokens=sum(len(ids) for ids in tokenizer([p.text for p in extracted.pages])["input_ids"]),
        pages=[DocumentPage(number=page.number, text=page.text) for page in extracted.pages],
    )
    session.add(document)
    session.flush()
    return document, True


def _drop_blob_if_unused(session: Session, sha256: str) -> None:
    if session.scalar(select(func.count()).select_from(Document).where(Document.sha256 == sha256)) == 0:
        blob_path(get_settings().blob_dir, sha256).unlink(missing_ok=True)


def owned(session: Session, model: type[Owned], owner: str | None, item_id: str) -> Owned:
    """The row with this id if this owner may see it; 404 otherwise (whether it exists or not)."""
    item = session.get(model, item_id)
    if item is None or item.owner != owner:
        raise not_found(model.__name__.lower(), item_id)
    return item


def newest_first(
    session: Session, query: Select[tuple[Owned]], limit: int, offset: int
) -> tuple[list[Owned], int]:
    """One page of a listing, newest first, and the total count."""
    model = query.column_descriptions[0]["entity"]
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(model.created_at.desc(), model.id).limit(limit).offset(offset))
    return list(page), total


def get_document(session: Session, owner: str | None, document_id: str) -> Document:
    return owned(session, Document, owner, document_id)


def list_documents(
    session: Session, owner: str | None, limit: int, offset: int
) -> tuple[list[Document], int]:
    return newest_first(session, select(Document).where(Document.owner == owner), limit, offset)


def delete_document(session: Session, owner: str | None, document_id: str) -> None:
    """Delete a document with its jobs, results and saved model states; refused while a job runs on it."""
    document = get_document(session, owner, document_id)
    running = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.document_id == document_id, Job.status == JobStatus.running)
    )
    if running:
        raise ServiceError(409, "document_busy", "The document has running jobs: cancel them first.")
    session.delete(document)
    session.flush()
    _drop_blob_if_unused(session, document.sha256)
    shutil.rmtree(get_settings().state_dir / "documents" / document_id, ignore_errors=True)


def create_job(session: Session, owner: str | None, document_id: str, task: str, options: dict) -> Job:
    get_document(session, owner, document_id)
    if task not in TASKS:
        raise ServiceError(422, "unknown_task", f"Unknown task {task!r}; known: {', '.join(TASKS)}.")
    try:
        validated = TASKS[task].model_validate(options)
    except ValidationError as exc:
        raise ServiceError(
            422, "invalid_options", f"Invalid options: {exc.errors(include_url=False)}"
        ) from exc
    job = Job(
        owner=owner, document_id=document_id, task=task, options=validated.model_dump(exclude_none=True)
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, owner: str | None, job_id: str) -> Job:
    return owned(session, Job, owner, job_id)


def list_jobs(
    session: Session, owner: str | None, limit: int, offset: int, document_id: str | None = None
) -> tuple[list[Job], int]:
    query = select(Job).where(Job.owner == owner)
    if document_id:
        query = query.where(Job.document_id == document_id)
    return newest_first(session, query, limit, offset)


def cancel_job(session: Session, owner: str | None, job_id: str) -> Job:
    """A queued job is cancelled at once; a running one stops at its next chunk."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.owner != owner:
        raise not_found("job", job_id)
    if job.status is JobStatus.queued:
        job.status = JobStatus.cancelled
        job.finished_at = utcnow()
    elif job.status is JobStatus.running:
        job.cancel_requested = True
    return job


def fail_unqueued(session: Session, job: Job, reason: str) -> None:
    job.status = JobStatus.failed
    job.error_code = "queue_unavailable"
    job.error_message = f"The job could not be queued: {reason}. Submit it again."
    job.finished_at = utcnow()

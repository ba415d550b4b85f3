"""Operations on documents and jobs, shared by the REST API and the CLI. Errors carry a code and a reason."""

import logging
import shutil
from pathlib import Path
from typing import BinaryIO, TypeVar

from pydantic import ValidationError
from sqlalchemy import Select, false, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from docproc.chat import ChatOptions
from docproc.db import session_scope
from docproc.engine import get_tokenizer
from docproc.engine.base import PAGE_SEPARATOR
from docproc.errors import ServiceError, describe, field_errors, shorten
from docproc.ingestion import ParserLimits, ParserSlots, extract
from docproc.models import Batch, Document, DocumentPage, Job, JobStatus, Result, is_well_formed_id, utcnow
from docproc.pipeline import SummarizeOptions
from docproc.settings import get_settings
from docproc.storage import (
    StagedUpload,
    UploadTooLarge,
    blob_lock,
    blob_path,
    publish,
    stage_upload,
    stale_files,
)

log = logging.getLogger(__name__)

TASKS: dict[str, type[SummarizeOptions | ChatOptions]] = {"summarize": SummarizeOptions, "chat": ChatOptions}
# Blob names per query when looking for orphans (SQLite allows 32766 parameters in one statement).
ORPHAN_QUERY_BATCH = 10_000

Owned = TypeVar("Owned", Document, Job, Batch)


def not_found(kind: str, item_id: str) -> ServiceError:
    return ServiceError(404, "not_found", f"No {kind} with id {shorten(item_id)}.")


def checked_filename(filename: str | None) -> str:
    """An uploaded file's name as given ("upload" if none); NUL is refused (PostgreSQL cannot store it)."""
    if filename and "\x00" in filename:
        raise ServiceError(422, "invalid_filename", "The file name must not contain NUL characters.")
    return filename or "upload"


def add_document(
    session: Session, owner: str | None, filename: str, source: BinaryIO, password: str | None = None
) -> tuple[Document, bool]:
    """Store and extract an upload and commit its row; returns (document, created).

    An owner's same file is one document, also when uploaded many times at once. The blob is published and
    the row committed together under the blob lock, so that a blob exists with its row or, after a crash in
    between, as an orphan that remove_orphan_files collects; on any error nothing is left behind.
    """
    settings = get_settings()
    try:
        staged = stage_upload(source, settings.blob_dir, settings.max_upload_bytes)
    except UploadTooLarge as exc:
        raise ServiceError(413, exc.code, str(exc)) from exc
    try:
        if (existing := _find_document(session, owner, staged.sha256)) is not None:
            return existing, False
        document = _extracted_document(owner, filename, staged, password)
        try:
            with session.begin_nested():
                session.add(document)
        except IntegrityError:
            # Another upload of this owner's file committed first: that one is the document.
            if (existing := _find_document(session, owner, staged.sha256)) is None:
                raise
            session.commit()
            return existing, False
        with blob_lock(settings.blob_dir):
            publish(staged, settings.blob_dir)
            try:
                session.commit()
            except BaseException:
                session.rollback()
                _remove_blob_if_unreferenced(session, staged.sha256)
                raise
        return document, True
    finally:
        staged.path.unlink(missing_ok=True)


def _find_document(session: Session, owner: str | None, sha256: str) -> Document | None:
    return session.scalar(select(Document).where(Document.owner == owner, Document.sha256 == sha256))


def _extracted_document(
    owner: str | None, filename: str, staged: StagedUpload, password: str | None
) -> Document:
    settings = get_settings()
    extracted = extract(
        staged.path,
        password=password,
        limits=ParserLimits(
            timeout_s=settings.parse_timeout_s,
            memory_bytes=settings.parser_memory_limit_bytes,
            max_inflated_bytes=settings.max_inflated_pdf_bytes,
            max_form_draws_per_page=settings.max_form_draws_per_page,
            slots=ParserSlots(
                settings.parser_slot_dir, settings.max_parser_processes, settings.parser_wait_s
            ),
        ),
        max_pages=settings.max_pages,
        max_chars=settings.max_document_chars,
        page_chars=settings.text_page_chars,
    )
    # Counted as the engine reads them (docproc.engine.base.Engine.chunks): a job's tokens_total agrees.
    page_texts = [page.text + PAGE_SEPARATOR for page in extracted.pages]
    token_ids = get_tokenizer()(page_texts, add_special_tokens=False)["input_ids"]
    return Document(
        owner=owner,
        filename=Path(filename or "upload").name[:512],
        content_type=extracted.content_type,
        sha256=staged.sha256,
        size_bytes=staged.size,
        page_count=len(extracted.pages),
        tokens=sum(len(ids) for ids in token_ids),
        pages=[DocumentPage(number=page.number, text=page.text) for page in extracted.pages],
    )


def _remove_blob_if_unreferenced(session: Session, sha256: str) -> None:
    """Call with the blob lock held, so that no upload publishes this blob meanwhile."""
    if session.scalar(select(func.count()).select_from(Document).where(Document.sha256 == sha256)) == 0:
        blob_path(get_settings().blob_dir, sha256).unlink(missing_ok=True)


def remove_orphan_files() -> None:
    """Remove what crashed uploads left: temp files, and blobs no document references.

    Only files older than the grace period go, so that an upload in flight keeps its temp file.
    """
    settings = get_settings()
    temps, blobs = stale_files(settings.blob_dir, settings.orphan_grace_s)
    for path in temps:
        path.unlink(missing_ok=True)
    with blob_lock(settings.blob_dir), session_scope() as session:
        names = list(blobs)
        referenced: set[str] = set()
        for start in range(0, len(names), ORPHAN_QUERY_BATCH):
            batch = names[start : start + ORPHAN_QUERY_BATCH]
            referenced.update(session.scalars(select(Document.sha256).where(Document.sha256.in_(batch))))
        orphans = [path for sha256, path in blobs.items() if sha256 not in referenced]
        for path in orphans:
            path.unlink(missing_ok=True)
    if temps or orphans:
        log.warning(
            "removed %d temp files and %d orphan blobs left by interrupted uploads", len(temps), len(orphans)
        )


def owned(session: Session, model: type[Owned], owner: str | None, item_id: str) -> Owned:
    """The row with this id if this owner may see it; 404 otherwise (whether it exists or not).

    An id of another shape cannot exist and is not looked up (PostgreSQL refuses some strings, NUL for one).
    """
    item = session.get(model, item_id) if is_well_formed_id(item_id) else None
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
    """Delete a document's file, pages and saved model states; refused while a job waits or runs on it.

    Its finished jobs and their results stay (their document_id becomes null), so that the history, batch
    counts included, does not change after the fact.
    """
    document = get_document(session, owner, document_id)
    unfinished = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.document_id == document_id, Job.status.in_([JobStatus.queued, JobStatus.running]))
    )
    if unfinished:
        raise ServiceError(
            409, "document_busy", "The document has queued or running jobs: cancel them first."
        )
    session.delete(document)
    session.commit()
    with blob_lock(get_settings().blob_dir):
        _remove_blob_if_unreferenced(session, document.sha256)
    shutil.rmtree(get_settings().state_dir / "documents" / document_id, ignore_errors=True)


def create_job(session: Session, owner: str | None, document_id: str | None, task: str, options: dict) -> Job:
    """A job on a document (summarize), or on the documents its chat messages reference (chat; the job's
    document is the first of them, if any)."""
    if document_id is not None:
        get_document(session, owner, document_id)
    if task not in TASKS:
        raise ServiceError(422, "unknown_task", f"Unknown task {shorten(task)}; known: {', '.join(TASKS)}.")
    try:
        validated = TASKS[task].model_validate(options)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        raise ServiceError(
            422, "invalid_options", f"Invalid options: {describe(errors)}.", errors=errors
        ) from exc
    if isinstance(validated, ChatOptions):
        for referenced in validated.document_ids:
            get_document(session, owner, referenced)
        document_id = next(iter(validated.document_ids), None)
    job = Job(
        owner=owner,
        document_id=document_id,
        task=task,
        options=validated.model_dump(mode="json", exclude_none=True),
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, owner: str | None, job_id: str) -> Job:
    return owned(session, Job, owner, job_id)


def list_jobs(
    session: Session,
    owner: str | None,
    limit: int,
    offset: int,
    document_id: str | None = None,
    status: JobStatus | None = None,
) -> tuple[list[Job], int]:
    query = select(Job).where(Job.owner == owner)
    if document_id:
        query = query.where(Job.document_id == document_id if is_well_formed_id(document_id) else false())
    if status:
        query = query.where(Job.status == status)
    return newest_first(session, query, limit, offset)


def get_result(session: Session, owner: str | None, job_id: str) -> Result:
    """A succeeded job's result; 409 with the reason while there is none."""
    job = get_job(session, owner, job_id)
    if job.status is not JobStatus.succeeded or job.result is None:
        reason = job.error_message if job.status is JobStatus.failed else f"the job is {job.status.value}"
        raise ServiceError(409, "no_result", f"No result: {reason}.")
    return job.result


def cancel_job(session: Session, owner: str | None, job_id: str) -> Job:
    """A queued job is cancelled at once; a running one within about `cancel_poll_s` (its worker polls)."""
    job = session.get(Job, job_id, with_for_update=True) if is_well_formed_id(job_id) else None
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

"""Operations on documents and jobs, shared by the REST API and the CLI. Errors carry a code and a reason."""

import logging
import shutil
from collections.abc import Collection
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, TypeVar

from sqlalchemy import Select, false, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from docproc import metrics, webhooks
from docproc.chat import ChatOptions
from docproc.db import session_scope
from docproc.engine import get_tokenizer
from docproc.engine.base import PAGE_SEPARATOR
from docproc.errors import ServiceError, describe, shorten
from docproc.ingestion import OcrMode, ParserLimits, ParserSlots, extract
from docproc.models import Batch, Document, DocumentPage, Job, JobStatus, Result, is_well_formed_id, utcnow
from docproc.retrieval import remove_index, remove_orphan_indexes
from docproc.settings import get_settings
from docproc.states import get_state_store
from docproc.storage import (
    StagedUpload,
    UploadTooLarge,
    blob_lock,
    blob_path,
    publish,
    stage_upload,
    stale_files,
)
from docproc.task_options import validated as checked
from docproc.task_options import validated_options

log = logging.getLogger(__name__)

# Blob names or document ids per query when looking for orphans (SQLite allows 32766 parameters in one
# statement).
ORPHAN_QUERY_BATCH = 10_000

Owned = TypeVar("Owned", Document, Job, Batch)


def expiry() -> datetime | None:
    """When something created now expires under DOCPROC_RETENTION_DAYS; None: it is kept."""
    days = get_settings().retention_days
    return utcnow() + timedelta(days=days) if days is not None else None


def not_found(kind: str, item_id: str) -> ServiceError:
    return ServiceError(404, "not_found", f"No {kind} with id {shorten(item_id)}.")


def checked_filename(filename: str | None) -> str:
    """An uploaded file's name as given ("upload" if none); NUL is refused (PostgreSQL cannot store it)."""
    if filename and "\x00" in filename:
        raise ServiceError(422, "invalid_filename", "The file name must not contain NUL characters.")
    return filename or "upload"


def add_document(
    session: Session,
    owner: str | None,
    filename: str,
    source: BinaryIO,
    password: str | None = None,
    ocr: OcrMode = OcrMode.auto,
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
        try:
            document = _extracted_document(owner, filename, staged, password, ocr)
        except ServiceError as exc:
            metrics.INGESTION_FAILURES.inc(code=exc.code)
            raise
        metrics.INGESTED_PAGES.inc(document.page_count, content_type=document.content_type)
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
    owner: str | None, filename: str, staged: StagedUpload, password: str | None, ocr: OcrMode
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
            max_inflated_archive_bytes=settings.max_inflated_archive_bytes,
            max_image_pixels=settings.max_image_pixels,
            slots=ParserSlots(
                settings.parser_slot_dir, settings.max_parser_processes, settings.parser_wait_s
            ),
        ),
        max_pages=settings.max_pages,
        max_chars=settings.max_document_chars,
        page_chars=settings.text_page_chars,
        ocr=ocr,
    )
    # Counted as the engine reads them (docproc.engine.base.Engine.chunks): a job's tokens_total agrees.
    page_texts = [page.text + PAGE_SEPARATOR for page in extracted.pages]
    token_ids = get_tokenizer().encode_batch(page_texts)
    return Document(
        owner=owner,
        filename=Path(filename or "upload").name[:512],
        content_type=extracted.content_type,
        sha256=staged.sha256,
        size_bytes=staged.size,
        page_count=len(extracted.pages),
        tokens=sum(len(ids) for ids in token_ids),
        expires_at=expiry(),
        pages=[
            DocumentPage(number=page.number, text=page.text, source=page.source) for page in extracted.pages
        ],
    )


def _remove_blob_if_unreferenced(session: Session, sha256: str) -> None:
    """Call with the blob lock held, so that no upload publishes this blob meanwhile."""
    if session.scalar(select(func.count()).select_from(Document).where(Document.sha256 == sha256)) == 0:
        blob_path(get_settings().blob_dir, sha256).unlink(missing_ok=True)


def remove_orphan_files() -> None:
    """Remove what crashed uploads left: temp files, and blobs no document references; what crashed jobs
    left in the state store (docproc.states.StateStore.remove_orphans); passage indexes of deleted documents.

    Only files older than the grace period go, so that an upload in flight keeps its temp file.
    """
    settings = get_settings()
    temps, blobs = stale_files(settings.blob_dir, settings.orphan_grace_s)
    for path in temps:
        path.unlink(missing_ok=True)
    with blob_lock(settings.blob_dir):
        referenced = _present(Document.sha256, blobs)
        orphans = [path for sha256, path in blobs.items() if sha256 not in referenced]
        for path in orphans:
            path.unlink(missing_ok=True)
    if temps or orphans:
        log.warning(
            "removed %d temp files and %d orphan blobs left by interrupted uploads", len(temps), len(orphans)
        )
    if states := get_state_store().remove_orphans(settings.orphan_grace_s):
        log.warning("removed %d state files or rows left by interrupted jobs", states)
    if indexes := remove_orphan_indexes(lambda ids: _present(Document.id, ids), settings.orphan_grace_s):
        log.warning("removed %d passage indexes of deleted documents or crashed builds", indexes)


def _present(column: InstrumentedAttribute[str], values: Collection[str]) -> set[str]:
    """Which of the values some document has in this column."""
    found: set[str] = set()
    items = list(values)
    with session_scope() as session:
        for start in range(0, len(items), ORPHAN_QUERY_BATCH):
            batch = items[start : start + ORPHAN_QUERY_BATCH]
            found.update(session.scalars(select(column).where(column.in_(batch))))
    return found


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


def list_pages(
    session: Session,
    owner: str | None,
    document_id: str,
    first: int | None,
    last: int | None,
    limit: int,
    offset: int,
) -> tuple[list[DocumentPage], int]:
    """One page of a document's pages in order, numbers within [first, last] when given, and their count."""
    max_limit = get_settings().max_pages_per_request
    if limit > max_limit:
        errors = [{"loc": ["query", "limit"], "type": "less_than_equal", "msg": f"at most {max_limit}"}]
        raise ServiceError(422, "invalid_request", f"Invalid request: {describe(errors)}.", errors=errors)
    get_document(session, owner, document_id)
    query = select(DocumentPage).where(DocumentPage.document_id == document_id)
    if first is not None:
        query = query.where(DocumentPage.number >= first)
    if last is not None:
        query = query.where(DocumentPage.number <= last)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = session.scalars(query.order_by(DocumentPage.number).limit(limit).offset(offset))
    return list(pages), total


def delete_document(session: Session, owner: str | None, document_id: str) -> None:
    """Delete a document's file, pages and saved model states; refused while a job waits or runs on it.

    Its finished jobs and their results stay (their document_id becomes null), so that the history, batch
    counts included, does not change after the fact.
    """
    document = get_document(session, owner, document_id)
    if _has_unfinished_jobs(session, document_id):
        raise ServiceError(
            409, "document_busy", "The document has queued or running jobs: cancel them first."
        )
    _delete_document(session, document)


def _has_unfinished_jobs(session: Session, document_id: str) -> bool:
    return bool(
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.document_id == document_id, Job.status.in_([JobStatus.queued, JobStatus.running]))
        )
    )


def _delete_document(session: Session, document: Document) -> None:
    """The one deletion path of a document: its row and pages, its blob unless shared, its model states."""
    session.delete(document)
    session.commit()
    with blob_lock(get_settings().blob_dir):
        _remove_blob_if_unreferenced(session, document.sha256)
    get_state_store().remove_document(document.id)
    remove_index(document.id)


def _delete_jobs(session: Session, jobs: Select[tuple[Job]]) -> int:
    """The one deletion path of finished jobs: their rows, results and saved states."""
    job_ids = list(session.scalars(jobs.with_only_columns(Job.id)))
    for job in session.scalars(select(Job).where(Job.id.in_(job_ids))):
        session.delete(job)
    session.commit()
    for job_id in job_ids:
        shutil.rmtree(get_settings().state_dir / "jobs" / job_id, ignore_errors=True)
    return len(job_ids)


def delete_expired(session: Session) -> dict[str, int]:
    """Retention: delete what expired, with every file it owns; returns how many of each went.

    Nothing is deleted under a running job: a document or batch with queued or running jobs waits for them,
    and a job's result goes with it once it has finished.
    """
    now = utcnow()
    expired_batches = [
        batch
        for batch in session.scalars(select(Batch).where(Batch.expires_at < now))
        if not session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.batch_id == batch.id, Job.status.in_([JobStatus.queued, JobStatus.running]))
        )
    ]
    finished = Job.status.in_([JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled])
    batch_ids = [batch.id for batch in expired_batches]
    jobs = _delete_jobs(session, select(Job).where(Job.batch_id.in_(batch_ids)))
    for batch in expired_batches:
        session.delete(batch)
    session.commit()
    jobs += _delete_jobs(session, select(Job).where(Job.batch_id.is_(None), Job.expires_at < now, finished))
    documents = 0
    for document in session.scalars(select(Document).where(Document.expires_at < now)).all():
        if not _has_unfinished_jobs(session, document.id):
            _delete_document(session, document)
            documents += 1
    return {"documents": documents, "jobs": jobs, "batches": len(expired_batches)}


def check_active_jobs_quota(session: Session, owner: str | None) -> None:
    """429 when this API key already has DOCPROC_MAX_ACTIVE_JOBS_PER_KEY single jobs queued or running."""
    settings = get_settings()
    limit = settings.max_active_jobs_per_key
    if owner is None or limit is None:
        return
    active = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(
            Job.owner == owner,
            Job.batch_id.is_(None),
            Job.status.in_([JobStatus.queued, JobStatus.running]),
        )
    )
    if (active or 0) >= limit:
        raise ServiceError(
            429,
            "too_many_active_jobs",
            f"This API key has {limit} jobs queued or running, its limit: wait for one to finish.",
            headers={"Retry-After": str(settings.active_jobs_retry_after_s)},
        )


def create_job(
    session: Session,
    owner: str | None,
    document_id: str,
    task: str,
    options: dict,
    webhook_url: str | None = None,
) -> Job:
    """A queued job, not yet sent to the queue; `webhook_url` (webhooks.resolve_url) is told of its end."""
    get_document(session, owner, document_id)
    job = Job(
        owner=owner,
        document_id=document_id,
        task=task,
        options=validated_options(task, options),
        expires_at=expiry(),
        webhook_url=webhook_url,
    )
    session.add(job)
    session.flush()
    return job


def create_chat_job(session: Session, owner: str | None, options: dict) -> Job:
    """A chat job (the OpenAI-compatible API) on the documents its messages reference; the job's document is
    the first of them, if any."""
    validated = checked(ChatOptions, options)
    for referenced in validated.document_ids:
        get_document(session, owner, referenced)
    job = Job(
        owner=owner,
        document_id=next(iter(validated.document_ids), None),
        task="chat",
        options=validated.model_dump(mode="json", exclude_none=True),
        expires_at=expiry(),
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
    stop_job(session, job)
    if job.status.finished and job.batch_id is not None:
        webhooks.batch_may_have_ended(session, job.batch_id)
    return job


def stop_job(session: Session, job: Job) -> None:
    """Cancel a queued job now, ask a running one to stop (call with the job's row locked)."""
    if job.status is JobStatus.queued:
        job.status = JobStatus.cancelled
        job.finished_at = utcnow()
        webhooks.job_ended(session, job)
    elif job.status is JobStatus.running:
        job.cancel_requested = True


def fail_unqueued(session: Session, job: Job, reason: str) -> None:
    job.status = JobStatus.failed
    job.error_code = "queue_unavailable"
    job.error_message = f"The job could not be queued: {reason}. Submit it again."
    job.finished_at = utcnow()
    webhooks.job_ended(session, job)

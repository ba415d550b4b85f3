"""Running a job under a lease: claim it atomically, renew the lease while it runs, record the outcome.

A job runs on one worker at a time: the claim is a conditional UPDATE that only succeeds when nobody holds
a live lease. A worker that dies stops renewing; the sweeper then puts its jobs back on the queue, and the
next worker resumes from the job's checkpoint.
"""

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, or_, select, update

from docproc.db import session_scope
from docproc.engine import Engine
from docproc.ingestion import Page
from docproc.models import DocumentPage, Job, JobStatus, Result, utcnow
from docproc.pipeline import ProgressReporter, SummarizeOptions, Workspace, summarize
from docproc.settings import get_settings

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobStopped(Exception):
    """Raised between chunks when the job was cancelled or another worker took it over."""

    def __init__(self, status: JobStatus | None) -> None:
        super().__init__(status)
        self.status = status


def claim(job_id: str, lease_s: float) -> bool:
    now = utcnow()
    with session_scope() as session:
        claimed = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.status.in_([JobStatus.queued, JobStatus.running]),
                Job.cancel_requested.is_(False),
                or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now),
            )
            .values(
                status=JobStatus.running,
                lease_owner=WORKER_ID,
                lease_expires_at=now + timedelta(seconds=lease_s),
                started_at=func.coalesce(Job.started_at, now),
                attempts=Job.attempts + 1,
            )
        ).rowcount
    return claimed == 1


class JobRun(ProgressReporter):
    """Progress, cancellation and lease renewal for one claimed job."""

    def __init__(self, job_id: str, lease_s: float) -> None:
        self.job_id = job_id
        self.lease_s = lease_s
        self._stop = threading.Event()
        self._lost = False
        self._heartbeat = threading.Thread(target=self._renew_lease, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> "JobRun":
        self._heartbeat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._heartbeat.join()

    def _renew_lease(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with session_scope() as session:
                renewed = session.execute(
                    update(Job)
                    .where(Job.id == self.job_id, Job.lease_owner == WORKER_ID)
                    .values(lease_expires_at=utcnow() + timedelta(seconds=self.lease_s))
                ).rowcount
            if not renewed:
                self._lost = True
                return

    def _owned_update(self, **values: object) -> Job:
        """Write to the job if this worker still holds it; stop the run otherwise."""
        with session_scope() as session:
            job = session.get(Job, self.job_id, with_for_update=True)
            if job is None:
                raise JobStopped(None)
            if self._lost or job.lease_owner != WORKER_ID:
                raise JobStopped(None)
            if job.cancel_requested:
                raise JobStopped(JobStatus.cancelled)
            for key, value in values.items():
                setattr(job, key, value)
            return job

    def started(self, tokens_total: int) -> None:
        self._owned_update(tokens_total=tokens_total)

    def advanced(self, tokens_done: int) -> None:
        self._owned_update(tokens_done=tokens_done)

    def finish(
        self, status: JobStatus, *, error: tuple[str, str] | None = None, result: Result | None = None
    ) -> None:
        with session_scope() as session:
            job = session.get(Job, self.job_id, with_for_update=True)
            if job is None or job.lease_owner != WORKER_ID or job.status.finished:
                return
            job.status = status
            job.finished_at = utcnow()
            job.lease_owner = job.lease_expires_at = None
            if status is JobStatus.succeeded:
                job.tokens_done = job.tokens_total
            if error:
                job.error_code, job.error_message = error
            if result is not None:
                result.job_id = job.id
                session.merge(result)


def job_workspace(job_id: str, document_id: str) -> Workspace:
    state_dir = get_settings().state_dir
    return Workspace(state_dir / "jobs" / job_id, state_dir / "documents" / document_id)


def _load_job(job_id: str) -> tuple[SummarizeOptions, Workspace, list[Page]]:
    with session_scope() as session:
        job = session.get_one(Job, job_id)
        rows = session.scalars(
            select(DocumentPage)
            .where(DocumentPage.document_id == job.document_id)
            .order_by(DocumentPage.number)
        )
        pages = [Page(row.number, row.text) for row in rows]
        return SummarizeOptions.model_validate(job.options), job_workspace(job.id, job.document_id), pages


def run_job(job_id: str, engine_factory: Callable[[], Engine]) -> None:
    """Run a job to its end, unless it is finished, cancelled or held by a live worker."""
    settings = get_settings()
    if not claim(job_id, settings.job_lease_s):
        log.info("job %s not claimed (finished, cancelled or running elsewhere)", job_id)
        return
    with JobRun(job_id, settings.job_lease_s) as run:
        try:
            options, workspace, pages = _load_job(job_id)
            engine = engine_factory()
            summary = summarize(
                engine,
                pages,
                options,
                run,
                workspace,
                settings.chunk_tokens,
                settings.checkpoint_every_tokens,
            )
        except JobStopped as stopped:
            if stopped.status is JobStatus.cancelled:
                run.finish(JobStatus.cancelled)
                workspace.clear_job()
            return
        except Exception as exc:  # a job's failure must never take the worker down
            log.exception("job %s failed", job_id)
            run.finish(JobStatus.failed, error=(getattr(exc, "code", "internal_error"), str(exc)))
            return
        run.finish(
            JobStatus.succeeded,
            result=Result(
                summary=summary.text,
                thinking=summary.thinking,
                model=engine.name,
                input_tokens=summary.input_tokens,
                output_tokens=summary.output_tokens,
                source_pages=summary.source_pages,
                method=summary.method,
                replaced_sentences=summary.replaced_sentences,
            ),
        )
        workspace.clear_job()


def release_expired_leases() -> list[str]:
    """Jobs whose worker stopped renewing its lease go back to the queue (or end, if cancelled meanwhile).

    Returns the ids to send to the queue again.
    """
    now = utcnow()
    expired = (Job.status == JobStatus.running, Job.lease_expires_at < now)
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(*expired, Job.cancel_requested.is_(True))
            .values(status=JobStatus.cancelled, finished_at=now, lease_owner=None, lease_expires_at=None)
        )
        ids = list(session.scalars(select(Job.id).where(*expired)))
        if ids:
            session.execute(
                update(Job)
                .where(Job.id.in_(ids), *expired)
                .values(status=JobStatus.queued, lease_owner=None, lease_expires_at=None)
            )
    return ids

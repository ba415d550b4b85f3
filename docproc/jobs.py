"""Running a job under a lease: claim it atomically, renew the lease while it runs, record the outcome.

A job runs on one worker at a time: the claim is a conditional UPDATE that only succeeds when nobody holds
a live lease. A worker that dies stops renewing; the sweeper then puts its jobs back on the queue, and the
next worker resumes from the job's checkpoint.
"""

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from docproc.chat import ChatOptions, chat
from docproc.db import session_scope
from docproc.engine import Engine, Stopped
from docproc.ingestion import Page
from docproc.models import DocumentPage, Job, JobStatus, Result, utcnow
from docproc.pipeline import ProgressReporter, SummarizeOptions, Workspace, summarize
from docproc.settings import get_settings

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobStopped(Stopped):
    """Raised between chunks when the job was cancelled or another worker took it over."""


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
    """Progress, cancellation and lease renewal for one claimed job.

    A watcher thread reads the job's cancel flag and owner every `poll_s` and renews the lease every
    lease_s / 3; on a cancel, or when another worker holds the job, it sets `stop`, which the engine checks
    between tokens and layers, so the model stops within about `poll_s`.
    """

    def __init__(self, job_id: str, lease_s: float, poll_s: float) -> None:
        super().__init__()
        self.job_id = job_id
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.cancelled = False
        self._lost = False
        self._finished = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name=f"watch-{job_id}", daemon=True)

    def __enter__(self) -> "JobRun":
        self._watcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._finished.set()
        self._watcher.join()

    def _watch(self) -> None:
        renew_every = self.lease_s / 3
        renewed_at = time.monotonic()
        while not self._finished.wait(min(self.poll_s, renew_every)):
            try:
                # The lease is kept until the run ends, even once stopping: the run still holds the job.
                if time.monotonic() - renewed_at >= renew_every:
                    self._renew_lease()
                    renewed_at = time.monotonic()
                if not self.stop.is_set():
                    self._check_claim()
            except Exception:  # the database may be briefly away; try again next round
                log.exception("job %s: lease renewal or cancel check failed", self.job_id)

    def _renew_lease(self) -> None:
        with session_scope() as session:
            session.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.lease_owner == WORKER_ID)
                .values(lease_expires_at=utcnow() + timedelta(seconds=self.lease_s))
            )

    def _check_claim(self) -> None:
        """Stop the run if the job was cancelled or is no longer this worker's."""
        with session_scope() as session:
            row = session.execute(
                select(Job.cancel_requested, Job.lease_owner).where(Job.id == self.job_id)
            ).one_or_none()
        if row is None or row.lease_owner != WORKER_ID:
            self._lost = True
        elif row.cancel_requested:
            self.cancelled = True
        else:
            return
        self.stop.set()

    def _owned_update(self, **values: object) -> Job:
        """Write to the job if this worker still holds it; stop the run otherwise."""
        with session_scope() as session:
            job = session.get(Job, self.job_id, with_for_update=True)
            if job is None or self._lost or job.lease_owner != WORKER_ID:
                raise JobStopped
            if job.cancel_requested:
                self.cancelled = True
                raise JobStopped
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


def _pages(session: Session, document_id: str | None) -> list[Page]:
    rows = session.scalars(
        select(DocumentPage).where(DocumentPage.document_id == document_id).order_by(DocumentPage.number)
    )
    return [Page(row.number, row.text) for row in rows]


def _summarize(job_id: str, engine: Engine, run: JobRun) -> Result:
    with session_scope() as session:
        job = session.get_one(Job, job_id)
        options = SummarizeOptions.model_validate(job.options)
        workspace, pages = job_workspace(job.id, job.document_id), _pages(session, job.document_id)
    settings = get_settings()
    summary = summarize(
        engine, pages, options, run, workspace, settings.chunk_tokens, settings.checkpoint_every_tokens
    )
    return Result(
        summary=summary.text,
        thinking=summary.thinking,
        model=engine.name,
        input_tokens=summary.input_tokens,
        output_tokens=summary.output_tokens,
        source_pages=summary.source_pages,
        method=summary.method,
        replaced_sentences=summary.replaced_sentences,
    )


def _chat(job_id: str, engine: Engine, run: JobRun) -> Result:
    with session_scope() as session:
        options = ChatOptions.model_validate(session.get_one(Job, job_id).options)
        documents = {
            document_id: pages
            for document_id in options.document_ids
            if (pages := _pages(session, document_id))
        }
    answer = chat(engine, options, documents, get_settings().chat_max_tokens, run.stop)
    return Result(
        summary=answer.text,
        thinking=None,
        model=engine.name,
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
        cached_tokens=answer.cached_tokens,
        finish_reason=answer.finish_reason,
        source_pages=[],
    )


# Each task's run: the job's id, the engine and the run's progress and stop signal → the result to store.
TASKS: dict[str, Callable[[str, Engine, JobRun], Result]] = {"summarize": _summarize, "chat": _chat}


def run_job(job_id: str, engine_factory: Callable[[], Engine]) -> None:
    """Run a job to its end, unless it is finished, cancelled or held by a live worker."""
    settings = get_settings()
    if not claim(job_id, settings.job_lease_s):
        log.info("job %s not claimed (finished, cancelled or running elsewhere)", job_id)
        return
    with session_scope() as session:
        task = session.get_one(Job, job_id).task
    # The job's own files (checkpoints); the document's kept states stay.
    workspace = job_workspace(job_id, document_id="")
    with JobRun(job_id, settings.job_lease_s, settings.cancel_poll_s) as run:
        try:
            result = TASKS[task](job_id, engine_factory(), run)
        except Stopped:  # between chunks (JobStopped) or inside the model
            if run.cancelled:
                run.finish(JobStatus.cancelled)
                workspace.clear_job()
            return
        except Exception as exc:  # a job's failure must never take the worker down
            log.exception("job %s failed", job_id)
            run.finish(JobStatus.failed, error=(getattr(exc, "code", "internal_error"), str(exc)))
            return
        run.finish(JobStatus.succeeded, result=result)
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
                .values(status=JobStatus.queued, lease_owner=None, lease_expires_at=None, queue_seen_at=now)
            )
    return ids


def take_unseen_queued_jobs(grace_s: float) -> list[tuple[str, str | None]]:
    """The queued jobs not seen on the queue for grace_s, marked seen now: (id, batch_id) of each.

    The caller looks for them on the queue and re-sends the missing ones. Marking them in the same conditional
    UPDATE means that of several sweepers, only one checks a job, and each job at most once per grace period.
    """
    now = utcnow()
    with session_scope() as session:
        return [
            (job_id, batch_id)
            for job_id, batch_id in session.execute(
                update(Job)
                .where(Job.status == JobStatus.queued, Job.queue_seen_at < now - timedelta(seconds=grace_s))
                .values(queue_seen_at=now)
                .returning(Job.id, Job.batch_id)
            )
        ]

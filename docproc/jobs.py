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

from docproc import metrics, webhooks
from docproc.chat import ChatOptions
from docproc.db import session_scope
from docproc.engine import Engine, Stopped
from docproc.engine.base import StreamingEngine
from docproc.engine.batcher import Batcher
from docproc.ingestion import Page
from docproc.models import DocumentPage, Job, JobStatus, Result, utcnow
from docproc.pipeline import ProgressReporter, Workspace
from docproc.settings import get_settings
from docproc.states import get_state_store
from docproc.task_options import TASK_OPTIONS, TaskOptions
from docproc.tasks import TASKS
from docproc.tasks import Job as TaskJob

# The options of every task a job may run: the public ones, and chat (the OpenAI-compatible API's).
JOB_OPTIONS: dict[str, type[TaskOptions | ChatOptions]] = {**TASK_OPTIONS, "chat": ChatOptions}

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
        # Reading speed in this run (a resumed job starts part way): tokens and seconds from `started` to the
        # latest `advanced`.
        self._read_from = (0, time.monotonic())
        self._read = (0, 0.0)
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
        job = self._owned_update(tokens_total=tokens_total)
        self._read_from = (job.tokens_done, time.monotonic())

    def advanced(self, tokens_done: int) -> None:
        self._owned_update(tokens_done=tokens_done)
        tokens_from, time_from = self._read_from
        self._read = (tokens_done - tokens_from, time.monotonic() - time_from)

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
            webhooks.job_and_batch_ended(session, job)
        self._record(job, result)

    def _record(self, job: Job, result: Result | None) -> None:
        """Metrics of the ended job (its row was loaded before the commit, so it reads without a query)."""
        metrics.JOBS_FINISHED.inc(task=job.task, status=job.status.value)
        if job.started_at is not None and job.finished_at is not None:
            metrics.QUEUE_SECONDS.observe((job.started_at - job.created_at).total_seconds(), task=job.task)
            metrics.RUN_SECONDS.observe((job.finished_at - job.started_at).total_seconds(), task=job.task)
        metrics.TOKENS_READ.inc(job.tokens_done, task=job.task)
        if result is not None:
            metrics.TOKENS_GENERATED.inc(result.output_tokens, task=job.task)
        tokens, seconds = self._read
        if tokens > 0 and seconds > 0:
            metrics.PREFILL_TOKENS.inc(tokens)
            metrics.PREFILL_SECONDS.inc(seconds)
            metrics.PREFILL_TOKENS_PER_S.observe(tokens / seconds)


def job_workspace(job_id: str, document_id: str) -> Workspace:
    return Workspace(get_settings().state_dir / "jobs" / job_id, document_id, get_state_store())


def _load_job(
    job_id: str,
) -> tuple[str, TaskOptions | ChatOptions, Workspace, list[Page], dict[str, list[Page]]]:
    """The job's task, options, workspace, its document's pages and the pages of the documents its task
    references (a chat's file parts)."""
    with session_scope() as session:
        job = session.get_one(Job, job_id)
        task = TASKS[job.task]
        options = JOB_OPTIONS[job.task].model_validate(job.options)
        documents = {document_id: _pages(session, document_id) for document_id in task.documents(options)}
        workspace = job_workspace(job.id, job.document_id)
        return job.task, options, workspace, _pages(session, job.document_id), documents


def _pages(session: Session, document_id: str | None) -> list[Page]:
    rows = session.scalars(
        select(DocumentPage).where(DocumentPage.document_id == document_id).order_by(DocumentPage.number)
    )
    return [Page(row.number, row.text, row.source) for row in rows]


def run_job(job_id: str, engine_factory: Callable[[], Engine]) -> None:
    """Run a job to its end, unless it is finished, cancelled or held by a live worker.

    A batch's item is run together with up to batch_items_together - 1 queued items of its batch, claimed
    here: each in a thread of its own, exactly as alone (lease, progress, cancellation, result), their
    generations batched by a `Batcher`. Their own messages, delivered later, then find them taken or done."""
    settings = get_settings()
    if not claim(job_id, settings.job_lease_s):
        log.info("job %s not claimed (finished, cancelled or running elsewhere)", job_id)
        return
    mates = _claim_batch_mates(job_id, engine_factory)
    if not mates:
        _run_claimed(job_id, engine_factory)
        return
    log.info("job %s runs together with %s", job_id, ", ".join(mates))
    batcher = Batcher(engine_factory(), participants=len(mates) + 1)

    def run(one: str) -> None:
        try:
            _run_claimed(one, lambda: batcher)
        finally:
            batcher.leave()

    threads = [threading.Thread(target=run, args=(one,), name=f"job-{one}") for one in [job_id, *mates]]
    for thread in threads:
        thread.start()
    batcher.serve()  # the model runs on this thread
    for thread in threads:
        thread.join()


def _claim_batch_mates(job_id: str, engine_factory: Callable[[], Engine]) -> list[str]:
    """Queued items of the job's batch, claimed to run with it (in the batch's order). None for a job outside
    a batch, or on a streaming engine: it reads each document into a state of its own, one at a time."""
    settings = get_settings()
    if settings.batch_items_together == 1:
        return []
    with session_scope() as session:
        batch_id = session.scalar(select(Job.batch_id).where(Job.id == job_id))
        if batch_id is None:
            return []
        candidates = session.scalars(
            select(Job.id)
            .where(Job.batch_id == batch_id, Job.status == JobStatus.queued, Job.cancel_requested.is_(False))
            .order_by(Job.batch_line)
            .limit(settings.batch_items_together - 1)
        ).all()
    if not candidates:
        return []
    try:
        if isinstance(engine_factory(), StreamingEngine):
            return []
    except Exception:  # the job's own run reports the engine's failure to load
        return []
    return [one for one in candidates if claim(one, settings.job_lease_s)]


def _run_claimed(job_id: str, engine_factory: Callable[[], Engine]) -> None:
    """Run a job this worker has claimed, and record its outcome."""
    settings = get_settings()
    with session_scope() as session:
        task = session.get_one(Job, job_id).task
    # The job's own files (checkpoints); the document's kept states stay.
    workspace = job_workspace(job_id, document_id="")
    with JobRun(job_id, settings.job_lease_s, settings.cancel_poll_s) as run:
        try:
            task, options, workspace, pages, documents = _load_job(job_id)
            engine = engine_factory()
            job = TaskJob(pages, run, workspace, settings, documents)
            outcome = TASKS[task].run(engine, options, job)
        except Stopped:  # between chunks (JobStopped) or inside the model
            if run.cancelled:
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
                summary=outcome.summary,
                answer=outcome.answer,
                data=outcome.data,
                citations=outcome.citations,
                dropped_quotes=outcome.dropped_quotes,
                thinking=outcome.thinking,
                model=engine.name,
                input_tokens=outcome.input_tokens,
                output_tokens=outcome.output_tokens,
                cached_tokens=outcome.cached_tokens,
                source_pages=outcome.source_pages,
                method=outcome.method,
                replaced_sentences=outcome.replaced_sentences,
                finish_reason=outcome.finish_reason,
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
        for job in session.scalars(
            select(Job).where(*expired, Job.cancel_requested.is_(True)).with_for_update()
        ):
            job.status, job.finished_at = JobStatus.cancelled, now
            job.lease_owner = job.lease_expires_at = None
            webhooks.job_and_batch_ended(session, job)
        session.flush()
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

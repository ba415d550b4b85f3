"""Celery tasks take ids and re-read the database; the sweeper keeps every queued job on the queue.

The database, not the broker, says which jobs must run: a broker that loses messages (killed and restarted
from an older snapshot, or emptied) cannot lose jobs, because the sweeper looks on the queue for every job
queued longer than the grace period and sends the missing ones again. Duplicates are harmless: a job's
claim is a conditional UPDATE under a lease, so a second message for it finds nothing to do.
"""

import json
import logging
import threading
from collections.abc import Iterable

from celery.signals import worker_ready, worker_shutdown
from sqlalchemy import ColumnElement, select

from docproc import idempotency, metrics, webhooks
from docproc.db import session_scope
from docproc.engine import get_engine
from docproc.jobs import WORKER_ID, release_expired_leases, take_unseen_queued_jobs
from docproc.jobs import run_job as run_job_under_lease
from docproc.models import Job
from docproc.service import delete_expired, remove_orphan_files
from docproc.settings import get_settings
from workers.celery_app import BATCH_QUEUE, JOBS_QUEUE, app, enqueue_job, enqueue_webhook

log = logging.getLogger(__name__)

# Messages read from the queue at a time when looking for jobs on it.
QUEUE_SCAN_PAGE = 1000


@app.task(name="workers.tasks.run_job")
def run_job(job_id: str) -> None:
    run_job_under_lease(job_id, get_engine)


@app.task(name="workers.tasks.deliver_webhook")
def deliver_webhook(delivery_id: str) -> None:
    """One attempt; a failed one schedules the next (the delivery's row says when, if the task is lost)."""
    if (retry_in := webhooks.attempt(delivery_id)) is not None:
        enqueue_webhook(delivery_id, countdown=retry_in)


def sweep() -> None:
    """Re-send jobs whose worker died and queued jobs whose message is no longer on the queue; remove the
    files interrupted uploads left; delete what outlived its retention and expired idempotency keys."""
    if released := release_expired_leases():
        for job_id in _resend(Job.id.in_(released)):
            log.warning("job %s: its worker stopped renewing the lease; queued again", job_id)
    if lost := resend_lost_jobs():
        log.warning("%d queued jobs had no message on the queue (broker data lost?): sent again", len(lost))
    # A webhook task is held by its worker until its countdown ends: one lost with its worker is sent again.
    for delivery_id in webhooks.take_overdue(get_settings().job_lease_s):
        log.warning("webhook %s: its task was lost; sent again", delivery_id)
        enqueue_webhook(delivery_id)
    remove_orphan_files()
    with session_scope() as session:
        deleted = delete_expired(session)
    if any(deleted.values()):
        log.info("retention: deleted %s", ", ".join(f"{n} {kind}" for kind, n in deleted.items()))
    idempotency.delete_expired()


def resend_lost_jobs() -> list[str]:
    """Send again the queued jobs, unseen for the grace period, that have no message on the queue."""
    unseen = take_unseen_queued_jobs(get_settings().queue_resend_grace_s)
    if not unseen:
        return []
    # Only waiting messages count, not those a worker has taken (Redis's unacked set): a message prefetched by
    # a worker that then died would otherwise hold its job for the 12-hour visibility timeout. The price is at
    # most one refused duplicate per grace period for each message a live worker holds before claiming it.
    on_queue = _job_ids_on_queue()
    lost = [(job_id, batch_id) for job_id, batch_id in unseen if job_id not in on_queue]
    _send(lost)
    return [job_id for job_id, _ in lost]


def _job_ids_on_queue() -> set[str]:
    """The jobs that have a message waiting on either queue, read page by page.

    Producers push at the head and workers pop at the tail, so reading from the head never skips a message
    that stays on the queue (a push only shifts messages towards pages not yet read).
    """
    found: set[str] = set()
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in (JOBS_QUEUE, BATCH_QUEUE):
            start = 0
            while raw_messages := channel.client.lrange(queue, start, start + QUEUE_SCAN_PAGE - 1):
                for raw in raw_messages:
                    message = channel.Message(json.loads(raw), channel=channel)
                    if message.headers.get("task") == run_job.name:
                        args, _kwargs, _embed = message.decode()
                        found.add(args[0])
                start += len(raw_messages)
    return found


def _resend(*where: ColumnElement[bool]) -> list[str]:
    """Send the matching jobs again; returns their ids."""
    with session_scope() as session:
        jobs = [
            (job_id, batch_id)
            for job_id, batch_id in session.execute(select(Job.id, Job.batch_id).where(*where))
        ]
    _send(jobs)
    return [job_id for job_id, _ in jobs]


def _send(jobs: Iterable[tuple[str, str | None]]) -> None:
    """Batch items to the batch queue, single jobs to the jobs queue."""
    for job_id, batch_id in jobs:
        enqueue_job(job_id, BATCH_QUEUE if batch_id else JOBS_QUEUE)


_stop_sweeper = threading.Event()


def _beat_forever() -> None:
    """The worker's heartbeat for /metrics (docproc_worker_heartbeat_age_seconds)."""
    interval = get_settings().worker_heartbeat_s
    metrics.heartbeat(WORKER_ID)
    while not _stop_sweeper.wait(interval):
        metrics.heartbeat(WORKER_ID)


def _sweep_forever() -> None:
    interval = get_settings().job_lease_s / 2
    while not _stop_sweeper.wait(interval):
        try:
            sweep()
        except Exception:  # the broker or database may be briefly away; try again next round
            log.exception("sweep failed")


@worker_ready.connect
def _start_sweeper(**_: object) -> None:
    threading.Thread(target=_sweep_forever, name="lease-sweeper", daemon=True).start()
    threading.Thread(target=_beat_forever, name="heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_sweeping(**_: object) -> None:
    _stop_sweeper.set()
    metrics.forget_worker(WORKER_ID)

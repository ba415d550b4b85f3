"""Celery tasks take ids and re-read the database; the sweeper keeps every queued job on the queue."""

import logging
import threading
import uuid

from celery.signals import worker_ready, worker_shutdown
from sqlalchemy import ColumnElement, select

from docproc.db import session_scope
from docproc.engine import get_engine
from docproc.jobs import release_expired_leases
from docproc.jobs import run_job as run_job_under_lease
from docproc.models import Job, JobStatus
from docproc.service import remove_orphan_files
from docproc.settings import get_settings
from workers.celery_app import BATCH_QUEUE, JOBS_QUEUE, app, enqueue_job

log = logging.getLogger(__name__)

# Set in Redis by the first worker that sees the broker; a broker restarted without its data has lost it, and
# with it, possibly, queued messages.
BROKER_EPOCH_KEY = "docproc:broker-epoch"


@app.task(name="workers.tasks.run_job")
def run_job(job_id: str) -> None:
    run_job_under_lease(job_id, get_engine)


def sweep() -> None:
    """Re-send jobs whose worker died, and all queued jobs if the broker lost its data; remove orphans."""
    if released := release_expired_leases():
        for job_id in _resend(Job.id.in_(released)):
            log.warning("job %s: its worker stopped renewing the lease; queued again", job_id)
    with app.connection_for_write() as connection:
        client = connection.default_channel.client
        lost_data = client.set(BROKER_EPOCH_KEY, uuid.uuid4().hex, nx=True)
    if lost_data and (resent := _resend(Job.status == JobStatus.queued)):
        log.warning("broker has no epoch (restarted?): re-sent %d queued jobs", len(resent))
    remove_orphan_files()


def _resend(*where: ColumnElement[bool]) -> list[str]:
    """Send the matching jobs again, batch items to the batch queue; returns their ids."""
    with session_scope() as session:
        jobs = session.execute(select(Job.id, Job.batch_id).where(*where)).all()
    for job_id, batch_id in jobs:
        enqueue_job(job_id, BATCH_QUEUE if batch_id else JOBS_QUEUE)
    return [job_id for job_id, _ in jobs]


_stop_sweeper = threading.Event()


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


@worker_shutdown.connect
def _stop_sweeping(**_: object) -> None:
    _stop_sweeper.set()

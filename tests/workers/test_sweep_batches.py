"""The sweeper sends batch items back to the batch queue and single jobs to the jobs queue, both when a lease
expired and when a queued job's message is missing from the queue; a job whose message waits on the queue
gets no second one."""

import json
import subprocess
import sys
from pathlib import Path

import redis

from tests.conftest import REDIS_URL, REPO, service_env

# Runs in its own process: the Celery app reads the broker address when it is imported.
SWEEP = """
from datetime import timedelta
from docproc.db import migrate, session_scope
from docproc.models import Batch, Document, Job, JobStatus, utcnow
from workers.celery_app import BATCH_QUEUE, enqueue_job
from workers.tasks import sweep

migrate()
expired = {"status": JobStatus.running, "lease_owner": "dead", "lease_expires_at": utcnow() - timedelta(1)}
lost = {"queue_seen_at": utcnow() - timedelta(1)}  # queued long ago, and no message on the queue
with session_scope() as session:
    document = Document(
        filename="n.txt", content_type="text/plain", sha256="0" * 64, size_bytes=1, page_count=1, tokens=1
    )
    batch = Batch()
    session.add_all([document, batch])
    session.flush()
    jobs = {
        "single-expired": Job(document_id=document.id, task="summarize", **expired),
        "item-expired": Job(document_id=document.id, task="summarize", batch_id=batch.id, **expired),
        "single-queued": Job(document_id=document.id, task="summarize", **lost),
        "item-queued": Job(document_id=document.id, task="summarize", batch_id=batch.id, **lost),
        "single-waiting": Job(document_id=document.id, task="summarize", **lost),
        "item-waiting": Job(document_id=document.id, task="summarize", batch_id=batch.id, **lost),
    }
    session.add_all(jobs.values())
enqueue_job(jobs["single-waiting"].id)
enqueue_job(jobs["item-waiting"].id, BATCH_QUEUE)
sweep()
sweep()  # finds every job on the queue now
print(json.dumps({name: job.id for name, job in jobs.items()}))
"""


def test_sweeper_sends_each_job_to_its_queue_once(database_url: str, tmp_path: Path) -> None:
    env = service_env(tmp_path / "data", database_url)
    run = subprocess.run(
        [sys.executable, "-c", "import json\n" + SWEEP], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    ids = json.loads(run.stdout.splitlines()[-1])
    broker = redis.Redis.from_url(REDIS_URL)
    messages = {queue: broker.lrange(queue, 0, -1) for queue in ("jobs", "batch")}
    ours = {
        queue: [m for m in found if any(i.encode() in m for i in ids.values())]
        for queue, found in messages.items()
    }
    for name, job_id in ids.items():
        queue, other = ("batch", "jobs") if name.startswith("item") else ("jobs", "batch")
        assert sum(job_id.encode() in m for m in ours[queue]) == 1, name
        assert not any(job_id.encode() in m for m in ours[other]), name
    for queue, found in ours.items():  # no worker of a later test should receive them
        for message in found:
            broker.lrem(queue, 0, message)

"""The Celery app: tasks travel on Redis, job state lives in the database."""

from celery import Celery
from kombu import Queue

from docproc.broker import broker_url

# Single jobs and batch items have their own queues, so one huge batch never starves single jobs: a worker
# consumes both queues in turn and, with prefetch 1, a new single job waits for at most one batch item.
JOBS_QUEUE = "jobs"
BATCH_QUEUE = "batch"
# Webhook deliveries: every worker serves it between jobs; a `docproc worker --queues webhooks` (no model is
# loaded) delivers them while the others run long jobs.
WEBHOOKS_QUEUE = "webhooks"

app = Celery("docproc", broker=broker_url(), include=["workers.tasks"])
app.conf.update(
    # Each queue its own routing key: without one, a queue is bound with the default key and gets every job.
    task_queues=[Queue(name, routing_key=name) for name in (JOBS_QUEUE, BATCH_QUEUE, WEBHOOKS_QUEUE)],
    task_default_queue=JOBS_QUEUE,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    # Jobs can run for hours: a redelivery after this long is harmless (the job lease stops a second run),
    # and a dead worker's jobs are picked up sooner by the lease sweeper in workers.tasks.
    broker_transport_options={"visibility_timeout": 12 * 3600},
)


def enqueue_job(job_id: str, queue: str = JOBS_QUEUE) -> None:
    app.send_task("workers.tasks.run_job", args=[job_id], queue=queue)


def enqueue_webhook(delivery_id: str, countdown: float = 0) -> None:
    app.send_task(
        "workers.tasks.deliver_webhook", args=[delivery_id], queue=WEBHOOKS_QUEUE, countdown=countdown
    )

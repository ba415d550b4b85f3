import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse

from docproc import service, webhooks
from docproc.api.deps import OwnerDep, SessionDep, declare_idempotency_key
from docproc.api.events import EVENT_STREAM_RESPONSE, LastEventId, event_stream
from docproc.api.schemas import JobIn, JobOut, Limit, Offset, Page, ResultOut, error_responses
from docproc.db import session_scope
from docproc.models import Job, JobStatus
from workers.celery_app import enqueue_job

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=error_responses(401, 422))


@router.post(
    "",
    response_model=JobOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(declare_idempotency_key)],
    responses=error_responses(400, 404, 408, 409, 413, 429, 503),
)
async def create_job(body: JobIn, owner: OwnerDep) -> JobOut:
    # One hop to a worker thread for the whole submit, its own session included: the submit path is the
    # busiest route, and each hop costs a thread hand-over under the GIL (bench/load/submit_latency.py).
    return await run_in_threadpool(_submit, body, owner)


def _submit(body: JobIn, owner: str | None) -> JobOut:
    webhook_url = webhooks.resolve_url(body.webhook_url)
    with session_scope() as session:
        service.check_active_jobs_quota(session, owner)
        job = service.create_job(session, owner, body.document_id, body.task, body.options, webhook_url)
        queue_job(session, job)
        return JobOut.model_validate(job)


def queue_job(session: Session, job: Job) -> None:
    """Commit the new job and send it to the queue; 503 (and the job failed) if the broker is down."""
    session.commit()  # the worker must find the job when the message arrives
    try:
        enqueue_job(job.id)
    except Exception as exc:  # the broker is down: say so rather than leave a job nobody will run
        # The broker's error names hosts and socket paths: logged here, not told to the client.
        log.exception("job %s could not be queued", job.id)
        service.fail_unqueued(session, job, "the queue is unavailable")
        session.commit()
        raise service.ServiceError(503, "queue_unavailable", job.error_message or "") from exc


@router.get("", response_model=Page[JobOut])
def list_jobs(
    session: SessionDep,
    owner: OwnerDep,
    document_id: str | None = None,
    job_status: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[JobOut]:
    jobs, total = service.list_jobs(session, owner, limit, offset, document_id, job_status)
    return Page(data=[JobOut.model_validate(j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut, responses=error_responses(404))
def get_job(job_id: str, session: SessionDep, owner: OwnerDep) -> JobOut:
    return JobOut.model_validate(service.get_job(session, owner, job_id))


@router.get("/{job_id}/result", response_model=ResultOut, responses=error_responses(404, 409))
def get_result(job_id: str, session: SessionDep, owner: OwnerDep) -> ResultOut:
    return ResultOut.model_validate(service.get_result(session, owner, job_id))


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses=EVENT_STREAM_RESPONSE | error_responses(404),
)
def job_events(job_id: str, owner: OwnerDep, last_event_id: LastEventId = None) -> EventSourceResponse:
    """Server-Sent Events: `progress` with the job (as GET /v1/jobs/{id}) whenever it changes, then one
    `status` event once it has ended; ids count up, and `Last-Event-ID` resumes after one."""
    # Not the request's session: it would hold a pooled connection for as long as the stream is open.
    with session_scope() as session:
        service.get_job(session, owner, job_id)

    def read() -> tuple[dict[str, Any], bool] | None:
        with session_scope() as reading:
            job = reading.get(Job, job_id)
            if job is None:
                return None
            return JobOut.model_validate(job).model_dump(mode="json"), job.status.finished

    return event_stream(read, last_event_id)


@router.post("/{job_id}/cancel", response_model=JobOut, responses=error_responses(404))
def cancel_job(job_id: str, session: SessionDep, owner: OwnerDep) -> JobOut:
    job = service.cancel_job(session, owner, job_id)
    session.commit()
    return JobOut.model_validate(job)

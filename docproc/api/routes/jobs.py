import logging
from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlalchemy.orm import Session

from docproc import service
from docproc.api.deps import OwnerDep, SessionDep
from docproc.api.schemas import JobIn, JobOut, Limit, Offset, Page, ResultOut, error_responses
from docproc.models import Job, JobStatus
from workers.celery_app import enqueue_job

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=error_responses(401, 422))


@router.post(
    "",
    response_model=JobOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 404, 408, 413, 503),
)
def create_job(body: JobIn, session: SessionDep, owner: OwnerDep) -> JobOut:
    job = service.create_job(session, owner, body.document_id, body.task, body.options)
    queue_job(session, job)
    return JobOut.of(job)


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
    return Page(data=[JobOut.of(j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut, responses=error_responses(404))
def get_job(job_id: str, session: SessionDep, owner: OwnerDep) -> JobOut:
    return JobOut.of(service.get_job(session, owner, job_id))


@router.get("/{job_id}/result", response_model=ResultOut, responses=error_responses(404, 409))
def get_result(job_id: str, session: SessionDep, owner: OwnerDep) -> ResultOut:
    return ResultOut.of(service.get_result(session, owner, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut, responses=error_responses(404))
def cancel_job(job_id: str, session: SessionDep, owner: OwnerDep) -> JobOut:
    job = service.cancel_job(session, owner, job_id)
    session.commit()
    return JobOut.of(job)

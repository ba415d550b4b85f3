from typing import Annotated

from fastapi import APIRouter, Query, status

from docproc import service
from docproc.api.deps import OwnerDep, SessionDep
from docproc.api.schemas import JobIn, JobOut, Page, ResultOut
from workers.celery_app import enqueue_job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", response_model=JobOut, status_code=status.HTTP_201_CREATED)
def create_job(body: JobIn, session: SessionDep, owner: OwnerDep) -> JobOut:
    job = service.create_job(session, owner, body.document_id, body.task, body.options)
    session.commit()  # the worker must find the job when the message arrives
    try:
        enqueue_job(job.id)
    except Exception as exc:  # the broker is down: say so rather than leave a job nobody will run
        service.fail_unqueued(session, job, str(exc))
        session.commit()
        raise service.ServiceError(503, "queue_unavailable", job.error_message or "") from exc
    return JobOut.of(job)


@router.get("", response_model=Page[JobOut])
def list_jobs(
    session: SessionDep,
    owner: OwnerDep,
    document_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[JobOut]:
    jobs, total = service.list_jobs(session, owner, limit, offset, document_id)
    return Page(data=[JobOut.of(j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: SessionDep, owner: OwnerDep) -> JobOut:
    return JobOut.of(service.get_job(session, owner, job_id))


@router.get("/{job_id}/result", response_model=ResultOut)
def get_result(job_id: str, session: SessionDep, owner: OwnerDep) -> ResultOut:
    return ResultOut.of(service.get_result(session, owner, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, session: SessionDep, owner: OwnerDep) -> JobOut:
    job = service.cancel_job(session, owner, job_id)
    session.commit()
    return JobOut.of(job)

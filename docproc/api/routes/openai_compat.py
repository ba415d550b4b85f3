"""The OpenAI-compatible API under /openai/v1: clients of OpenAI's SDKs set base_url to http://HOST/openai/v1.

Thin routes over docproc.openai_compat. A chat completion is a job: the request waits for it (or streams it as
server-sent chunks) and cancels it when the client goes away or the wait runs out. OpenAI's own API reference
documents this surface; it is left out of docproc's OpenAPI document.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse

from docproc import openai_compat, service
from docproc.api.deps import OwnerDep, SessionDep
from docproc.api.middleware import OPENAI_PREFIX
from docproc.api.openai_schemas import (
    BatchCreateRequest,
    BatchList,
    ChatCompletion,
    ChatCompletionRequest,
    FileDeleted,
    FileList,
    FileObject,
    Model,
    ModelList,
    OpenAIBatch,
)
from docproc.api.routes.jobs import queue_job
from docproc.db import session_scope
from docproc.errors import ServiceError, openai_error_envelope
from docproc.models import Job, JobStatus
from docproc.settings import get_settings
from workers.celery_app import BATCH_QUEUE, enqueue_job

router = APIRouter(prefix=OPENAI_PREFIX, tags=["openai"], include_in_schema=False)

# Retrying a chat request whose job failed would run it again to the same end: tell OpenAI's SDKs not to.
NO_RETRY = {"x-should-retry": "false"}


@router.get("/models", response_model=ModelList)
def list_models() -> ModelList:
    return openai_compat.models()


@router.get("/models/{model_id}", response_model=Model)
def get_model(model_id: str) -> Model:
    return openai_compat.get_model(model_id)


@router.post("/chat/completions", response_model=ChatCompletion)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, owner: OwnerDep
) -> ChatCompletion | EventSourceResponse:
    job_id = await run_in_threadpool(_submit_chat, owner, body)
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        return EventSourceResponse(_chunks(job_id, request, include_usage), ping=15)
    return await _wait(job_id, request)


def _submit_chat(owner: str | None, body: ChatCompletionRequest) -> str:
    with session_scope() as session:
        job = openai_compat.create_chat_job(session, owner, body)
        queue_job(session, job)
        return job.id


def _outcome(job_id: str) -> ChatCompletion | ServiceError | None:
    """The job's answer or error once it has finished; None while it waits or runs."""
    with session_scope() as session:
        job = session.get_one(Job, job_id)
        if not job.status.finished:
            return None
        if job.status is JobStatus.succeeded and job.result is not None:
            return openai_compat.completion(job, job.result)
        failure = openai_compat.job_failure(job)
        failure.headers.update(NO_RETRY)
        return failure


def _cancel(job_id: str) -> None:
    with session_scope() as session:
        job = session.get_one(Job, job_id)
        service.cancel_job(session, job.owner, job_id)


async def _finished(job_id: str, request: Request) -> ChatCompletion | ServiceError:
    """Poll the job until it ends; cancel it if the client leaves or the wait runs out."""
    settings = get_settings()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.chat_wait_timeout_s
    try:
        while (outcome := await run_in_threadpool(_outcome, job_id)) is None:
            if loop.time() > deadline:
                await run_in_threadpool(_cancel, job_id)
                message = (
                    f"No answer within {settings.chat_wait_timeout_s:g} seconds; the request was cancelled."
                )
                return ServiceError(504, "timeout", message, headers=dict(NO_RETRY))
            if await request.is_disconnected():
                await run_in_threadpool(_cancel, job_id)
                return ServiceError(499, "client_closed_request", "The client went away.")
            await asyncio.sleep(settings.chat_poll_s)
    except BaseException:  # the server stops or the stream's task is cancelled: the job must not run on
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_cancel, job_id)
        raise
    return outcome


async def _wait(job_id: str, request: Request) -> ChatCompletion:
    outcome = await _finished(job_id, request)
    if isinstance(outcome, ServiceError):
        raise outcome
    return outcome


async def _chunks(job_id: str, request: Request, include_usage: bool) -> AsyncIterator[dict[str, str]]:
    """OpenAI's chat.completion.chunk events: the role at once, then the answer, its finish reason and (if
    asked for) the usage; an error as an `error` event; then [DONE]."""
    created = int(time.time())
    head = {
        "id": job_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": openai_compat.served_model(),
    }

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
        return {"data": json.dumps(head | {"choices": choices} | extra, ensure_ascii=False)}

    def choice(delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}

    yield chunk([choice({"role": "assistant", "content": ""})])
    outcome = await _finished(job_id, request)
    if isinstance(outcome, ServiceError):
        yield {"data": json.dumps(openai_error_envelope(outcome))}
    else:
        head |= {"created": outcome.created, "model": outcome.model}
        answer = outcome.choices[0]
        yield chunk([choice({"content": answer.message.content})])
        yield chunk([choice({}, answer.finish_reason)])
        if include_usage:
            yield chunk([], usage=outcome.usage.model_dump(mode="json"))
    yield {"data": "[DONE]"}


@router.post("/files", response_model=FileObject)
def create_file(
    file: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()],
    session: SessionDep,
    owner: OwnerDep,
) -> FileObject:
    filename = service.checked_filename(file.filename)
    return openai_compat.upload_file(session, owner, purpose, filename, file.file)


@router.get("/files", response_model=FileList)
def list_files(
    session: SessionDep,
    owner: OwnerDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
) -> FileList:
    return openai_compat.list_files(session, owner, purpose, limit)


@router.get("/files/{file_id}", response_model=FileObject)
def get_file(file_id: str, session: SessionDep, owner: OwnerDep) -> FileObject:
    return openai_compat.get_file(session, owner, file_id)


@router.delete("/files/{file_id}", response_model=FileDeleted)
def delete_file(file_id: str, session: SessionDep, owner: OwnerDep) -> FileDeleted:
    return openai_compat.delete_file(session, owner, file_id)


@router.get("/files/{file_id}/content", response_class=StreamingResponse)
def file_content(file_id: str, session: SessionDep, owner: OwnerDep) -> StreamingResponse:
    return StreamingResponse(
        openai_compat.file_content(session, owner, file_id), media_type="application/octet-stream"
    )


@router.post("/batches", response_model=OpenAIBatch)
def create_batch(body: BatchCreateRequest, session: SessionDep, owner: OwnerDep) -> OpenAIBatch:
    return openai_compat.create_batch(session, owner, body, lambda job_id: enqueue_job(job_id, BATCH_QUEUE))


@router.get("/batches", response_model=BatchList)
def list_batches(
    session: SessionDep,
    owner: OwnerDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> BatchList:
    return openai_compat.list_batches(session, owner, after, limit)


@router.get("/batches/{batch_id}", response_model=OpenAIBatch)
def get_batch(batch_id: str, session: SessionDep, owner: OwnerDep) -> OpenAIBatch:
    return openai_compat.batch_view(session, openai_compat.get_batch(session, owner, batch_id))


@router.post("/batches/{batch_id}/cancel", response_model=OpenAIBatch)
def cancel_batch(batch_id: str, session: SessionDep, owner: OwnerDep) -> OpenAIBatch:
    return openai_compat.cancel_batch(session, owner, batch_id)

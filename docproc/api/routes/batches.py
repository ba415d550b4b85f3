from typing import Any, BinaryIO

from fastapi import APIRouter, Depends, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse
from starlette.datastructures import UploadFile

from docproc import batches, service, webhooks
from docproc.api.deps import OwnerDep, SessionDep, declare_idempotency_key
from docproc.api.events import EVENT_STREAM_RESPONSE, LastEventId, event_stream
from docproc.api.schemas import BatchIn, BatchOut, Limit, Offset, Page, error_responses
from docproc.db import session_scope
from docproc.errors import describe, field_errors
from docproc.models import Batch
from workers.celery_app import BATCH_QUEUE, enqueue_job

router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=error_responses(401, 422))

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": BatchIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "JSONL: one {custom_id, document_id, task?, options?} per line.",
                        },
                        "webhook_url": {
                            "type": "string",
                            "maxLength": 2048,
                            "description": "An http(s) URL told of the batch's end.",
                        },
                    },
                }
            },
        },
    }
}


def _view(session: Session, batch: Batch) -> BatchOut:
    return BatchOut.of(batch, batches.states(session, [batch])[batch.id])


@router.post(
    "",
    response_model=BatchOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(declare_idempotency_key)],
    openapi_extra=_BODY_DOC,
    responses=error_responses(400, 408, 409, 413, 503),
)
async def create_batch(request: Request, session: SessionDep, owner: OwnerDep) -> BatchOut:
    """A batch from JSON `{document_ids, task, options}` or from an uploaded JSONL file (multipart `file`)."""
    lines: BinaryIO | None = None
    items: list[batches.ItemSpec] = []
    requested_webhook: str | None = None
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload, requested_webhook = form.get("file"), form.get("webhook_url")
        if not isinstance(upload, UploadFile):
            raise service.ServiceError(
                422, "file_required", "Upload the JSONL file in the multipart field `file`."
            )
        if not isinstance(requested_webhook, str | None):
            raise service.ServiceError(
                422, "invalid_webhook_url", "webhook_url must be a form field, not a file."
            )
        lines = upload.file
    else:
        try:
            body = BatchIn.model_validate_json(await request.body())
        except ValidationError as exc:
            errors = field_errors(exc.errors())
            raise service.ServiceError(
                422, "invalid_request", f"Invalid batch: {describe(errors)}.", errors=errors
            ) from exc
        items = batches.items_from_document_ids(body.document_ids, body.task, body.options)
        requested_webhook = body.webhook_url

    def submit() -> BatchOut:
        webhook_url = webhooks.resolve_url(requested_webhook)
        parsed = items if lines is None else batches.parse_jsonl(lines)
        batch = batches.create_batch(session, owner, parsed, webhook_url)
        batches.enqueue_items(session, batch, lambda job_id: enqueue_job(job_id, BATCH_QUEUE))
        return _view(session, batch)

    return await run_in_threadpool(submit)


@router.get("", response_model=Page[BatchOut])
def list_batches(
    session: SessionDep, owner: OwnerDep, limit: Limit = 50, offset: Offset = 0
) -> Page[BatchOut]:
    rows, total = batches.list_batches(session, owner, limit, offset)
    states = batches.states(session, rows)
    return Page(data=[BatchOut.of(b, states[b.id]) for b in rows], total=total, limit=limit, offset=offset)


@router.get("/{batch_id}", response_model=BatchOut, responses=error_responses(404))
def get_batch(batch_id: str, session: SessionDep, owner: OwnerDep) -> BatchOut:
    return _view(session, batches.get_batch(session, owner, batch_id))


@router.get(
    "/{batch_id}/results",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}}
    | error_responses(404),
)
def get_results(batch_id: str, session: SessionDep, owner: OwnerDep) -> StreamingResponse:
    """JSONL, one line per request: `{custom_id, job_id, document_id, status, result, error}`; partial while
    the batch runs."""
    batches.get_batch(session, owner, batch_id)
    return StreamingResponse(batches.result_lines(batch_id), media_type="application/x-ndjson")


@router.get(
    "/{batch_id}/events",
    response_class=EventSourceResponse,
    responses=EVENT_STREAM_RESPONSE | error_responses(404),
)
def batch_events(batch_id: str, owner: OwnerDep, last_event_id: LastEventId = None) -> EventSourceResponse:
    """Server-Sent Events: `progress` with the batch (as GET /v1/batches/{id}) whenever it changes, then one
    `status` event once it has ended; ids count up, and `Last-Event-ID` resumes after one."""
    # Not the request's session: it would hold a pooled connection for as long as the stream is open.
    with session_scope() as session:
        batches.get_batch(session, owner, batch_id)

    def read() -> tuple[dict[str, Any], bool] | None:
        with session_scope() as reading:
            batch = reading.get(Batch, batch_id)
            if batch is None:
                return None
            view = _view(reading, batch)
            return view.model_dump(mode="json"), view.status in batches.FINISHED_STATUSES

    return event_stream(read, last_event_id)


@router.post("/{batch_id}/cancel", response_model=BatchOut, responses=error_responses(404))
def cancel_batch(batch_id: str, session: SessionDep, owner: OwnerDep) -> BatchOut:
    batch = batches.cancel_batch(session, owner, batch_id)
    session.commit()
    return _view(session, batch)

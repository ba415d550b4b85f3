"""OpenAI's API over docproc's own parts: a chat completion is a `chat` job, an uploaded file a stored batch
input or a document, an OpenAI batch a docproc batch of chat jobs (docproc.batches).

Ids are docproc's: a chat completion's id is its job's, a user_data file's id its document's (so that it
can be a message's `file_id`). A batch's output and error files are not stored: they are read from its jobs
when asked for, under ids made from the batch's (`bout_…`, `berr_…`).
"""

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from docproc import batches, service
from docproc.api.openai_schemas import (
    CHAT_ENDPOINT,
    AssistantMessage,
    BatchCreateRequest,
    BatchError,
    BatchErrors,
    BatchList,
    BatchRequestCounts,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    CompletionUsage,
    FileDeleted,
    FileList,
    FileObject,
    Model,
    ModelList,
    OpenAIBatch,
    PromptTokensDetails,
)
from docproc.chat import FAILURE_STATUS
from docproc.engine import is_remote, model_name
from docproc.errors import ServiceError, describe, field_errors, openai_error_envelope, shorten
from docproc.models import Batch, Document, Job, JobStatus, Result, StoredFile, is_well_formed_id
from docproc.settings import get_settings

# Output and error files of a batch: these prefixes and the batch id's hex part.
OUTPUT_FILE_PREFIX, ERROR_FILE_PREFIX = "bout_", "berr_"
# OpenAI's one completion window: a batch's expires_at is this long after its creation.
COMPLETION_WINDOW = timedelta(hours=24)
# Created when this module was first loaded: the models list's `created`.
_STARTED = datetime.now()


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def served_model() -> str:
    """The configured model's name, as chat requests give it (the API process does not load the model)."""
    settings = get_settings()
    if is_remote(settings.model):
        return settings.remote_model_name or "remote"
    return model_name(settings.model)


def models() -> ModelList:
    return ModelList(data=[Model(id=served_model(), created=int(_STARTED.timestamp()))])


def get_model(model_id: str) -> Model:
    if model_id != served_model():
        raise ServiceError(404, "model_not_found", f"The model {shorten(model_id)} does not exist.")
    return Model(id=model_id, created=int(_STARTED.timestamp()))


def create_chat_job(session: Session, owner: str | None, request: ChatCompletionRequest) -> Job:
    get_model(request.model)
    return service.create_chat_job(session, owner, request.options())


def completion(job: Job, result: Result) -> ChatCompletion:
    cached = result.cached_tokens or 0
    return ChatCompletion(
        id=job.id,
        created=unix(job.created_at) or 0,
        model=result.model,
        choices=[
            Choice(
                message=AssistantMessage(content=result.summary),
                finish_reason="length" if result.finish_reason == "length" else "stop",
            )
        ],
        usage=CompletionUsage(
            prompt_tokens=result.input_tokens,
            completion_tokens=result.output_tokens,
            total_tokens=result.input_tokens + result.output_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
        ),
    )


def job_failure(job: Job) -> ServiceError:
    """Why a finished chat job has no answer, as the request's error."""
    if job.status is JobStatus.cancelled:
        return ServiceError(409, "cancelled", "The request's job was cancelled.")
    code = job.error_code or "internal_error"
    return ServiceError(FAILURE_STATUS.get(code, 500), code, job.error_message or "The request failed.")


# Files


def _document_file(document: Document) -> FileObject:
    return FileObject(
        id=document.id,
        bytes=document.size_bytes,
        created_at=unix(document.created_at) or 0,
        filename=document.filename,
        purpose="user_data",
    )


def _stored_file(stored: StoredFile) -> FileObject:
    return FileObject(
        id=stored.id,
        bytes=stored.size_bytes,
        created_at=unix(stored.created_at) or 0,
        filename=stored.filename,
        purpose="batch",
    )


def upload_file(
    session: Session, owner: str | None, purpose: str, filename: str, source: BinaryIO
) -> FileObject:
    """purpose `user_data`: the file becomes a document (as POST /v1/documents makes it); `batch`: a JSONL
    batch input, kept until deleted."""
    if purpose == "user_data":
        document, _ = service.add_document(session, owner, filename, source)
        return _document_file(document)
    if purpose != "batch":
        raise ServiceError(
            422,
            "unsupported_purpose",
            f"Purpose {shorten(purpose)} is not supported: use batch or user_data.",
        )
    content = source.read()  # bounded by the upload limit (RequestLimits)
    if not content.strip():
        raise ServiceError(422, "empty_file", "The file is empty.")
    stored = StoredFile(
        owner=owner, purpose=purpose, filename=filename[:512], size_bytes=len(content), content=content
    )
    session.add(stored)
    session.commit()
    return _stored_file(stored)


def _split_batch_file_id(file_id: str) -> tuple[str, str] | None:
    """(prefix, batch id) of a batch output or error file id."""
    for prefix in (OUTPUT_FILE_PREFIX, ERROR_FILE_PREFIX):
        if file_id.startswith(prefix) and is_well_formed_id(file_id):
            return prefix, f"batch_{file_id.removeprefix(prefix)}"
    return None


def get_file(session: Session, owner: str | None, file_id: str) -> FileObject:
    if batch_file := _split_batch_file_id(file_id):
        prefix, batch_id = batch_file
        batch = get_batch(session, owner, batch_id, kind="file", shown_id=file_id)
        return FileObject(
            id=file_id,
            bytes=sum(map(len, _batch_file_lines(batch.id, prefix))),
            created_at=unix(batch.created_at) or 0,
            filename=f"{batch.id}_{'output' if prefix == OUTPUT_FILE_PREFIX else 'error'}.jsonl",
            purpose="batch_output",
        )
    if file_id.startswith("doc_"):
        return _document_file(service.get_document(session, owner, file_id))
    return _stored_file(_get_stored(session, owner, file_id))


def _get_stored(session: Session, owner: str | None, file_id: str) -> StoredFile:
    stored = session.get(StoredFile, file_id) if is_well_formed_id(file_id) else None
    if stored is None or stored.owner != owner:
        raise service.not_found("file", file_id)
    return stored


def list_files(session: Session, owner: str | None, purpose: str | None, limit: int) -> FileList:
    """Newest first: batch inputs and documents (batch outputs are listed by their batches)."""
    files: list[FileObject] = []
    if purpose in (None, "batch"):
        stored = select(StoredFile).where(StoredFile.owner == owner)
        files += map(_stored_file, service.newest_first(session, stored, limit, 0)[0])
    if purpose in (None, "user_data"):
        files += map(_document_file, service.list_documents(session, owner, limit, 0)[0])
    files = sorted(files, key=lambda file: file.created_at, reverse=True)[:limit]
    return FileList(
        data=files, first_id=files[0].id if files else None, last_id=files[-1].id if files else None
    )


def delete_file(session: Session, owner: str | None, file_id: str) -> FileDeleted:
    if _split_batch_file_id(file_id):
        raise ServiceError(
            422,
            "not_deletable",
            "A batch's output and error files go with the batch; they cannot be deleted.",
        )
    if file_id.startswith("doc_"):
        service.delete_document(session, owner, file_id)
    else:
        session.delete(_get_stored(session, owner, file_id))
        session.commit()
    return FileDeleted(id=file_id)


def file_content(session: Session, owner: str | None, file_id: str) -> Iterator[bytes]:
    """A batch input as uploaded, or a batch's output or error file (JSONL, OpenAI's line format)."""
    if batch_file := _split_batch_file_id(file_id):
        prefix, batch_id = batch_file
        batch = get_batch(session, owner, batch_id, kind="file", shown_id=file_id)
        return _batch_file_lines(batch.id, prefix)
    if file_id.startswith("doc_"):
        service.get_document(session, owner, file_id)
        raise ServiceError(
            422, "not_downloadable", "Files of purpose user_data are documents: their content is not served."
        )
    return iter([_get_stored(session, owner, file_id).content])


# Batches


def create_batch(
    session: Session, owner: str | None, body: BatchCreateRequest, enqueue: Callable[[str], None]
) -> OpenAIBatch:
    """A batch of chat jobs, one per line of the input file; a refused line counts as a failed request and
    is reported in the error file."""
    stored = _get_stored(session, owner, body.input_file_id)
    if stored.purpose != "batch":
        raise ServiceError(422, "invalid_input_file", "The input file's purpose must be batch.")
    items = batches.parse_jsonl(stored.content.splitlines(), _chat_item)
    batch = batches.create_batch(session, owner, items)
    batch.endpoint, batch.input_file_id = body.endpoint, stored.id
    batch.completion_window, batch.request_metadata = body.completion_window, body.metadata
    batches.enqueue_items(session, batch, enqueue)
    return batch_view(session, batch)


def _chat_item(number: int, line: dict[str, Any]) -> batches.ItemSpec | batches.LineError:
    """An input line `{custom_id, method: "POST", url: "/v1/chat/completions", body}`."""
    if unknown := set(line) - {"custom_id", "method", "url", "body"}:
        return batches.refused_line(number, line, f"unknown fields {shorten(sorted(unknown))}")
    if not batches.valid_custom_id(line.get("custom_id")):
        return batches.refused_line(
            number, line, "custom_id must be a string of 1 to 256 characters, without NUL"
        )
    if line.get("method") != "POST" or line.get("url") != CHAT_ENDPOINT:
        return batches.refused_line(number, line, f"method and url must be POST and {CHAT_ENDPOINT}")
    try:
        request = ChatCompletionRequest.model_validate(line.get("body"))
        if request.stream:
            raise ServiceError(422, "invalid_line", "a batch request cannot stream")
        get_model(request.model)
    except ValidationError as exc:
        return batches.refused_line(number, line, f"invalid body: {describe(field_errors(exc.errors()))}")
    except ServiceError as exc:
        return batches.refused_line(number, line, exc.message.rstrip("."))
    return batches.ItemSpec(number, line["custom_id"], None, "chat", request.options())


def get_batch(
    session: Session, owner: str | None, batch_id: str, kind: str = "batch", shown_id: str | None = None
) -> Batch:
    """One of the owner's OpenAI batches (those made through /openai/v1/batches)."""
    batch = session.get(Batch, batch_id) if is_well_formed_id(batch_id) else None
    if batch is None or batch.owner != owner or batch.endpoint is None:
        raise service.not_found(kind, shown_id or batch_id)
    return batch


def list_batches(session: Session, owner: str | None, after: str | None, limit: int) -> BatchList:
    """Newest first, `limit` batches after the batch `after`."""
    query = select(Batch).where(Batch.owner == owner, Batch.endpoint.is_not(None))
    if after is not None:
        cursor = get_batch(session, owner, after)
        query = query.where(
            (Batch.created_at < cursor.created_at)
            | ((Batch.created_at == cursor.created_at) & (Batch.id > cursor.id))
        )
    rows, _ = service.newest_first(session, query, limit + 1, 0)
    states = batches.states(session, rows[:limit])
    data = [batch_view(session, batch, states[batch.id]) for batch in rows[:limit]]
    return BatchList(
        data=data,
        has_more=len(rows) > limit,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
    )


def cancel_batch(session: Session, owner: str | None, batch_id: str) -> OpenAIBatch:
    batch = batches.cancel_batch(session, owner, get_batch(session, owner, batch_id).id)
    session.commit()
    return batch_view(session, batch)


def batch_view(session: Session, batch: Batch, state: batches.BatchState | None = None) -> OpenAIBatch:
    state = state or batches.states(session, [batch])[batch.id]
    hex_id = batch.id.removeprefix("batch_")
    finished = state.status in ("completed", "cancelled", "failed")
    # Cancelled requests are neither completed nor failed: OpenAI's counts leave them out too.
    has_errors = state.failed + state.cancelled > 0
    errors = [
        BatchError(code=error["code"], message=error["message"], line=error["line"]) for error in batch.errors
    ]
    return OpenAIBatch(
        id=batch.id,
        endpoint=batch.endpoint or CHAT_ENDPOINT,
        errors=BatchErrors(data=errors) if errors else None,
        input_file_id=batch.input_file_id or "",
        completion_window=batch.completion_window or "24h",
        status=state.status,
        output_file_id=OUTPUT_FILE_PREFIX + hex_id if finished and state.completed else None,
        error_file_id=ERROR_FILE_PREFIX + hex_id if finished and has_errors else None,
        created_at=unix(batch.created_at) or 0,
        in_progress_at=unix(batch.in_progress_at),
        expires_at=unix(batch.created_at + COMPLETION_WINDOW),
        finalizing_at=unix(state.finalizing_at),
        completed_at=unix(state.completed_at),
        failed_at=unix(state.failed_at),
        cancelling_at=unix(batch.cancelling_at),
        cancelled_at=unix(state.cancelled_at),
        request_counts=BatchRequestCounts(total=state.total, completed=state.completed, failed=state.failed),
        metadata=batch.request_metadata,
    )


def _batch_file_lines(batch_id: str, prefix: str) -> Iterator[bytes]:
    if prefix == OUTPUT_FILE_PREFIX:
        return batches.result_lines(batch_id, item_line=_output_line, refused_line=lambda _: None)
    return batches.result_lines(batch_id, item_line=_error_line, refused_line=_refused_line)


def _line(
    custom_id: str, request_id: str, response: dict[str, Any] | None, error: dict[str, str] | None
) -> bytes:
    line = {"id": f"batch_req_{request_id.split('_', 1)[-1]}", "custom_id": custom_id, "response": response}
    return json.dumps(line | {"error": error}, ensure_ascii=False).encode() + b"\n"


def _output_line(job: Job, result: Result | None) -> bytes | None:
    if job.status is not JobStatus.succeeded or result is None:
        return None
    body = completion(job, result).model_dump(mode="json")
    return _line(
        job.custom_id or job.id, job.id, {"status_code": 200, "request_id": job.id, "body": body}, None
    )


def _error_line(job: Job, _: Result | None) -> bytes | None:
    """A failed request as OpenAI writes one (its HTTP error), a cancelled one as `batch_cancelled`."""
    if job.status is JobStatus.cancelled:
        message = "The batch was cancelled before this request ran."
        return _line(job.custom_id or job.id, job.id, None, {"code": "batch_cancelled", "message": message})
    if job.status is not JobStatus.failed:
        return None
    failure = job_failure(job)
    response = {"status_code": failure.status, "request_id": job.id, "body": openai_error_envelope(failure)}
    return _line(job.custom_id or job.id, job.id, response, None)


def _refused_line(error: dict[str, Any]) -> bytes:
    failure = ServiceError(400, error["code"], error["message"])
    response = {"status_code": 400, "request_id": "", "body": openai_error_envelope(failure)}
    return _line(batches.refused_id(error), f"line_{error['line']}", response, None)

"""Batches: many jobs submitted together, modelled on OpenAI's Batch API.

A batch stores no status: its status, counts and finishing times are derived from its jobs' rows every time
it is read, so they can never disagree with the jobs (only creation, validation and cancel times are stored).
Input lines that are refused are kept on the batch (line number, code, reason) and count as failed requests;
the rest of the batch runs.
"""

import heapq
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from docproc import service, webhooks
from docproc.api.schemas import BatchStatus, ResultOut
from docproc.db import session_scope
from docproc.errors import shorten
from docproc.models import Batch, Job, JobStatus, Result, is_well_formed_id, utcnow

log = logging.getLogger(__name__)

MAX_BATCH_ITEMS = 50_000
# A batch in one of these has ended: nothing of it runs or waits any more.
FINISHED_STATUSES = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class ItemSpec:
    """One request of a batch, as the caller gave it."""

    line: int
    custom_id: str
    # None for a chat request, whose messages name their documents.
    document_id: str | None
    task: str = "summarize"
    options: dict[str, Any] | None = None


@dataclass(frozen=True)
class LineError:
    line: int
    custom_id: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "custom_id": self.custom_id, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class BatchState:
    """What a batch's jobs say about it."""

    status: BatchStatus
    total: int
    completed: int
    failed: int
    cancelled: int
    finalizing_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    cancelled_at: datetime | None


def items_from_document_ids(
    document_ids: Sequence[str], task: str, options: dict[str, Any]
) -> list[ItemSpec]:
    """custom_id is the document id, or item-N (N from 1) for a document listed more than once or an id that
    cannot exist (which the results then need not repeat)."""
    seen: set[str] = set()
    items = []
    for number, document_id in enumerate(document_ids, start=1):
        unique = document_id not in seen and is_well_formed_id(document_id)
        custom_id = document_id if unique else f"item-{number}"
        seen.add(document_id)
        items.append(ItemSpec(number, custom_id, document_id, task, options))
    return items


def parse_jsonl(
    lines: Iterable[bytes], item_of: Callable[[int, dict[str, Any]], ItemSpec | LineError] | None = None
) -> list[ItemSpec | LineError]:
    """JSON objects, one a line, each made an item by `item_of` (line number, object); by default docproc's
    lines `{custom_id, document_id, task?, options?}`. Blank lines are skipped, bad ones become errors."""
    item_of = item_of or _docproc_item
    parsed: list[ItemSpec | LineError] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            parsed.append(LineError(number, None, "invalid_json", f"Line {number} is not JSON: {exc}."))
            continue
        except RecursionError:
            message = f"Line {number} is nested too deeply to read."
            parsed.append(LineError(number, None, "invalid_json", message))
            continue
        if not isinstance(line, dict):
            parsed.append(LineError(number, None, "invalid_line", f"Line {number} is not a JSON object."))
            continue
        parsed.append(item_of(number, line))
    return parsed


def _docproc_item(number: int, line: dict[str, Any]) -> ItemSpec | LineError:
    if problem := _line_problem(line):
        return refused_line(number, line, problem)
    return ItemSpec(number, line["custom_id"], line["document_id"], line["task"], line["options"])


def refused_line(number: int, line: dict[str, Any], problem: str) -> LineError:
    # The refused line's custom_id is kept (and shown) only if it is a valid one.
    custom_id = line.get("custom_id")
    known_id = custom_id if valid_custom_id(custom_id) else None
    return LineError(number, known_id, "invalid_line", f"Line {number}: {problem}.")


def valid_custom_id(custom_id: object) -> bool:
    return isinstance(custom_id, str) and 0 < len(custom_id) <= 256 and "\x00" not in custom_id


def _line_problem(line: dict[str, Any]) -> str | None:
    unknown = set(line) - {"custom_id", "document_id", "task", "options"}
    if unknown:
        return f"unknown fields {shorten(sorted(unknown))}"
    if not valid_custom_id(line.get("custom_id")):
        return "custom_id must be a string of 1 to 256 characters, without NUL"
    if not isinstance(line.get("document_id"), str):
        return "document_id must be a string"
    line.setdefault("task", "summarize")
    line.setdefault("options", {})
    if not isinstance(line["task"], str):
        return "task must be a string"
    if not isinstance(line["options"], dict):
        return "options must be an object"
    return None


def create_batch(
    session: Session,
    owner: str | None,
    items: Sequence[ItemSpec | LineError],
    webhook_url: str | None = None,
) -> Batch:
    """Validate every item (each like a single job) and create the jobs of the valid ones, not yet queued.

    `webhook_url` (checked by the caller) is told when the batch ends; its items have no webhook of their own.
    """
    if not items:
        raise service.ServiceError(422, "empty_batch", "The batch has no requests.")
    if len(items) > MAX_BATCH_ITEMS:
        raise service.ServiceError(
            422, "batch_too_large", f"A batch holds at most {MAX_BATCH_ITEMS} requests, not {len(items)}."
        )
    batch = Batch(owner=owner, expires_at=service.expiry(), webhook_url=webhook_url)
    session.add(batch)
    session.flush()
    errors: list[LineError] = []
    custom_ids: set[str] = set()
    for item in items:
        if isinstance(item, LineError):
            errors.append(item)
            continue
        if item.custom_id in custom_ids:
            message = f"Line {item.line}: custom_id {item.custom_id!r} is used by an earlier line."
            errors.append(LineError(item.line, item.custom_id, "duplicate_custom_id", message))
            continue
        try:
            if item.task == "chat":  # the OpenAI-compatible batches: the documents are in the messages
                job = service.create_chat_job(session, owner, item.options or {})
            else:
                job = service.create_job(session, owner, item.document_id, item.task, item.options or {})
        except service.ServiceError as exc:
            errors.append(LineError(item.line, item.custom_id, exc.code, f"Line {item.line}: {exc.message}"))
            continue
        custom_ids.add(item.custom_id)
        job.batch_id, job.custom_id, job.batch_line = batch.id, item.custom_id, item.line
    batch.errors = [error.as_dict() for error in errors]
    batch.in_progress_at = utcnow() if custom_ids else None
    session.flush()
    if not custom_ids:  # every line refused: the batch has failed already
        webhooks.batch_may_have_ended(session, batch.id)
    return batch


def enqueue_items(session: Session, batch: Batch, enqueue: Callable[[str], None]) -> None:
    """Send the batch's queued jobs to the queue; commit first so that workers find them.

    If the broker fails midway, the items not sent fail with `queue_unavailable` and the error is raised.
    """
    session.commit()
    job_ids = list(
        session.scalars(batch_items(batch.id).where(Job.status == JobStatus.queued).with_only_columns(Job.id))
    )
    for sent, job_id in enumerate(job_ids):
        try:
            enqueue(job_id)
        except Exception as exc:
            # The broker's error names hosts and socket paths: logged here, not told to the client.
            log.exception("batch %s: %d items could not be queued", batch.id, len(job_ids) - sent)
            for job in session.scalars(select(Job).where(Job.id.in_(job_ids[sent:]))):
                service.fail_unqueued(session, job, "the queue is unavailable")
            webhooks.batch_may_have_ended(session, batch.id)
            session.commit()
            raise service.ServiceError(
                503,
                "queue_unavailable",
                f"{len(job_ids) - sent} of the batch's requests could not be queued.",
            ) from exc


def batch_items(batch_id: str) -> Select:
    return select(Job).where(Job.batch_id == batch_id).order_by(Job.batch_line, Job.created_at, Job.id)


def get_batch(session: Session, owner: str | None, batch_id: str) -> Batch:
    return service.owned(session, Batch, owner, batch_id)


def list_batches(session: Session, owner: str | None, limit: int, offset: int) -> tuple[list[Batch], int]:
    return service.newest_first(session, select(Batch).where(Batch.owner == owner), limit, offset)


def states(session: Session, batches: Sequence[Batch]) -> dict[str, BatchState]:
    """Each batch's state from one aggregate query over its jobs."""
    rows = session.execute(
        select(
            Job.batch_id,
            Job.status,
            func.count(),
            func.max(Job.started_at),
            func.max(Job.finished_at),
        )
        .where(Job.batch_id.in_([batch.id for batch in batches]))
        .group_by(Job.batch_id, Job.status)
    ).all()
    by_batch: dict[str, dict[JobStatus, tuple[int, datetime | None, datetime | None]]] = {}
    for batch_id, status, count, last_started, last_finished in rows:
        by_batch.setdefault(batch_id, {})[JobStatus(status)] = (count, last_started, last_finished)
    return {batch.id: _state(batch, by_batch.get(batch.id, {})) for batch in batches}


def _state(batch: Batch, jobs: dict[JobStatus, tuple[int, datetime | None, datetime | None]]) -> BatchState:
    def count(*statuses: JobStatus) -> int:
        return sum(jobs[s][0] for s in statuses if s in jobs)

    def latest(index: int) -> datetime | None:
        times = [row[index] for row in jobs.values() if row[index] is not None]
        return max(times) if times else None

    refused = len(batch.errors)
    queued, running = count(JobStatus.queued), count(JobStatus.running)
    all_finished = queued + running == 0
    # Finalizing: nothing left to start, the last items are running; it began when the last item started.
    finalizing_at = latest(1) if queued == 0 and jobs else None
    finished_at = latest(2) if all_finished else None
    if not jobs:
        status = "failed"
    elif batch.cancelling_at is not None:
        status = "cancelled" if all_finished else "cancelling"
    elif all_finished:
        status = "completed"
    elif queued == 0:
        status = "finalizing"
    else:
        status = "in_progress"
    return BatchState(
        status=status,
        total=sum(row[0] for row in jobs.values()) + refused,
        completed=count(JobStatus.succeeded),
        failed=count(JobStatus.failed) + refused,
        cancelled=count(JobStatus.cancelled),
        finalizing_at=finalizing_at if status in ("finalizing", "completed") else None,
        completed_at=finished_at if status == "completed" else None,
        failed_at=batch.created_at if status == "failed" else None,
        cancelled_at=max(filter(None, (finished_at, batch.cancelling_at))) if status == "cancelled" else None,
    )


def cancel_batch(session: Session, owner: str | None, batch_id: str) -> Batch:
    """Items not started are cancelled at once; running ones stop within about a second. A finished batch
    stays as it is."""
    batch = get_batch(session, owner, batch_id)
    if states(session, [batch])[batch.id].status in ("completed", "failed"):
        return batch
    # The items first, then the batch: the order in which a worker ending an item takes their locks.
    unfinished = batch_items(batch.id).where(Job.status.in_([JobStatus.queued, JobStatus.running]))
    for job in list(session.scalars(unfinished.with_for_update())):
        service.stop_job(session, job)
    if batch.cancelling_at is None:
        batch.cancelling_at = utcnow()
    webhooks.batch_may_have_ended(session, batch.id)
    return batch


# A result line of one request: from its job and result, or from its refused input line ({line, custom_id,
# code, message}); None leaves the request out (a file of failures only, say).
ItemLine = Callable[[Job, Result | None], bytes | None]
RefusedLine = Callable[[dict[str, Any]], bytes | None]


def result_lines(
    batch_id: str,
    page_size: int = 500,
    item_line: ItemLine | None = None,
    refused_line: RefusedLine | None = None,
) -> Iterator[bytes]:
    """The results file, one JSON line per request (refused lines included) in input order; by default in
    docproc's line format (`result_line`).

    Reads in pages with its own session, so that it can stream after the request's session is gone.
    """
    item_line, refused_line = item_line or _item_line, refused_line or _refused_line
    with session_scope() as session:
        batch = session.get_one(Batch, batch_id)
        refused = [
            (error["line"], refused_line(error)) for error in sorted(batch.errors, key=itemgetter("line"))
        ]
        items = (
            (job.batch_line or 0, item_line(job, result))
            for job, result in _item_rows(session, batch_id, page_size)
        )
        lines = heapq.merge(refused, items, key=itemgetter(0))
        yield from (line for _, line in lines if line is not None)


def _refused_line(error: dict[str, Any]) -> bytes:
    return result_line(refused_id(error), None, None, "failed", None, error)


def _item_line(job: Job, result: Result | None) -> bytes:
    return result_line(
        job.custom_id or job.id, job.id, job.document_id, job.status.value, result, _error(job)
    )


def refused_id(error: dict[str, Any]) -> str:
    """A refused line's custom_id in results."""
    # A duplicate's custom_id names the earlier line's result: this line goes by its number instead.
    if error["custom_id"] and error["code"] != "duplicate_custom_id":
        return error["custom_id"]
    return f"line-{error['line']}"


def _item_rows(session: Session, batch_id: str, page_size: int) -> Iterator[tuple[Job, Result | None]]:
    offset = 0
    while True:
        rows = session.execute(
            batch_items(batch_id)
            .add_columns(Result)
            .outerjoin(Result, Result.job_id == Job.id)
            .limit(page_size)
            .offset(offset)
        ).all()
        yield from rows
        if len(rows) < page_size:
            return
        offset += page_size
        session.expunge_all()


def _error(job: Job) -> dict[str, str] | None:
    return {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None


def result_line(
    custom_id: str,
    job_id: str | None,
    document_id: str | None,
    status: str,
    result: Result | None,
    error: dict[str, Any] | None,
) -> bytes:
    line = {
        "custom_id": custom_id,
        "job_id": job_id,
        "document_id": document_id,
        "status": status,
        "result": ResultOut.model_validate(result).model_dump(mode="json") if result is not None else None,
        "error": {"code": error["code"], "message": error["message"]} if error else None,
    }
    return json.dumps(line, ensure_ascii=False).encode() + b"\n"

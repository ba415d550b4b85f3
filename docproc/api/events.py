"""Live progress as Server-Sent Events: a stream of a job's or a batch's JSON, one event per change.

Each stream reads its object from the database every `events_poll_s` (one primary-key SELECT, in a thread)
and sends it when it differs from the last one sent: `event: progress` while it runs, then `event: status`
once it has ended, after which the stream ends. Reading the database rather than a message bus means any API
process can serve any stream, with nothing to publish on the workers' side. Event ids count up across
reconnections: a client that reconnects with `Last-Event-ID: N` gets ids from N + 1, starting with the
object as it is now (a snapshot, so nothing it missed is lost).
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Header
from fastapi.concurrency import run_in_threadpool
from sse_starlette import EventSourceResponse, ServerSentEvent

from docproc.settings import get_settings

# Largest Last-Event-ID taken; another value starts the ids afresh.
MAX_EVENT_ID = 2**53 - 1

EVENT_STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`progress` events with the object's JSON whenever it changes, then a `status` event.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}

# The header a reconnecting client sends: the id of the last event it got.
LastEventId = Annotated[str | None, Header(description="Resume after this event id.")]

# Reads the object's JSON and whether it has ended; None once it is gone (deleted).
Reader = Callable[[], tuple[dict[str, Any], bool] | None]


def first_event_id(last_event_id: str | None) -> int:
    """The first id to send: the one after the client's Last-Event-ID (1 without one, or one not ours)."""
    if last_event_id is None or not last_event_id.isdigit() or len(last_event_id) > 16:
        return 1
    return min(int(last_event_id), MAX_EVENT_ID - 1) + 1


def event_stream(read: Reader, last_event_id: str | None) -> EventSourceResponse:
    settings = get_settings()
    return EventSourceResponse(
        _events(read, first_event_id(last_event_id), settings.events_poll_s), ping=settings.events_ping_s
    )


async def _events(read: Reader, next_id: int, poll_s: float) -> AsyncIterator[ServerSentEvent]:
    sent: dict[str, Any] | None = None
    while (current := await run_in_threadpool(read)) is not None:
        view, ended = current
        if view != sent:
            yield ServerSentEvent(json.dumps(view), event="status" if ended else "progress", id=str(next_id))
            sent, next_id = view, next_id + 1
        if ended:
            return
        await asyncio.sleep(poll_s)

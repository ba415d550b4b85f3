"""The Idempotency-Key header on submits, as ASGI middleware: the first response is kept and replayed.

It runs after the key check and the request limits, reads the body (spooled to disk past 1 MiB) to fingerprint
it, then either runs the request, waits for a concurrent duplicate's answer, or replays the stored one.
"""

import asyncio
import tempfile
from collections.abc import Iterator

from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docproc import idempotency
from docproc.api.middleware import error_response, header
from docproc.errors import ServiceError
from docproc.settings import get_settings

SUBMIT_PATHS = frozenset({"/v1/documents", "/v1/jobs", "/v1/batches"})
SPOOL_IN_MEMORY_BYTES = 1 << 20
REPLAY_CHUNK_BYTES = 64 * 1024
WAIT_POLL_S = 0.05
# Responses that are not kept: the client may try again with the same key and get a new answer.
NOT_KEPT = frozenset({408, 429})


class IdempotentSubmits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_key = header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if raw_key is None or scope["method"] != "POST" or scope["path"].rstrip("/") not in SUBMIT_PATHS:
            return await self.app(scope, receive, send)
        key = raw_key.decode("latin-1")
        try:
            idempotency.check_key(key)
        except ServiceError as exc:
            return await error_response(exc, scope["path"])(scope, receive, send)
        content_type = (header(scope, b"content-type") or b"").decode("latin-1")
        fingerprint = idempotency.Fingerprint(scope["method"], scope["path"], content_type)
        with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY_BYTES) as spool:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # the client left, or the request limits refused the body (they answer)
                chunk = message.get("body", b"")
                spool.write(chunk)
                fingerprint.update(chunk)
                if not message.get("more_body", False):
                    break
            spool.seek(0)
            owner = scope.get("state", {}).get("owner")
            try:
                claim = await self._claim(owner, key, fingerprint.hexdigest())
            except ServiceError as exc:
                return await error_response(exc, scope["path"])(scope, receive, send)
            if isinstance(claim, idempotency.StoredResponse):
                return await _replay(claim, send)
            await self._run(scope, _replaying(spool, receive), send, owner, key)

    async def _claim(
        self, owner: str | None, key: str, fingerprint: str
    ) -> "idempotency.Claim | idempotency.StoredResponse":
        deadline = asyncio.get_running_loop().time() + get_settings().idempotency_wait_s
        while (
            claim := await run_in_threadpool(idempotency.begin, owner, key, fingerprint)
        ) is idempotency.Claim.WAIT:
            if asyncio.get_running_loop().time() > deadline:
                raise ServiceError(
                    409,
                    "idempotency_in_progress",
                    "A request with this Idempotency-Key is still running: try again later.",
                    headers={"Retry-After": "5"},
                )
            await asyncio.sleep(WAIT_POLL_S)
        return claim

    async def _run(self, scope: Scope, receive: Receive, send: Send, owner: str | None, key: str) -> None:
        status, content_type, chunks = 500, "application/json", []

        async def recording_send(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                content_type = headers.get(b"content-type", b"application/json").decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except BaseException:
            await run_in_threadpool(idempotency.finish, owner, key, None)
            raise
        keep = status < 500 and status not in NOT_KEPT
        response = idempotency.StoredResponse(status, content_type, b"".join(chunks)) if keep else None
        await run_in_threadpool(idempotency.finish, owner, key, response)


def _replaying(spool: "tempfile.SpooledTemporaryFile[bytes]", receive: Receive) -> Receive:
    """The spooled body again, then the client's own messages (a disconnect, for streaming responses)."""
    chunks: Iterator[bytes] = iter(lambda: spool.read(REPLAY_CHUNK_BYTES), b"")
    pending = next(chunks, b"")
    done = False

    async def replay() -> Message:
        nonlocal pending, done
        if done:
            return await receive()
        chunk, pending = pending, next(chunks, b"")
        done = not pending
        return {"type": "http.request", "body": chunk, "more_body": not done}

    return replay


async def _replay(stored: idempotency.StoredResponse, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": stored.status,
            "headers": [
                (b"content-type", stored.content_type.encode("latin-1")),
                (b"content-length", str(len(stored.body)).encode()),
                (b"idempotent-replayed", b"true"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": stored.body})

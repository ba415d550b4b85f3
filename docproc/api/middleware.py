"""ASGI middleware that guards requests before any route runs: the API key first, then the body's size and
the time the client takes to send it, then the key's upload rate. Pure ASGI, so that nothing reads the body
before these checks."""

import asyncio

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docproc import quotas
from docproc.api.deps import owner_for
from docproc.errors import ServiceError, error_envelope, openai_error_envelope

# Paths of the OpenAI-compatible API: its errors take OpenAI's shape.
OPENAI_PREFIX = "/openai/v1"


def error_response(error: ServiceError, path: str) -> JSONResponse:
    """The error's response, in the envelope of the surface the request went to."""
    on_openai = (path + "/").startswith(OPENAI_PREFIX + "/")
    body = (
        openai_error_envelope(error) if on_openai else error_envelope(error.code, error.message, error.errors)
    )
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope["headers"] if key == name), None)


class ApiKeyAuth:
    """The one place API keys are checked: a /v1 or /openai/v1 request without a valid key is answered 401
    before its body is read; a valid key's owner goes into the request's state."""

    def __init__(self, app: ASGIApp, keys: list[str]) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["path"] + "/").startswith(("/v1/", OPENAI_PREFIX + "/")):
            try:
                owner = owner_for(header(scope, b"authorization"), self.keys)
            except ServiceError as exc:
                return await error_response(exc, scope["path"])(scope, receive, send)
            scope.setdefault("state", {})["owner"] = owner  # request.state.owner, for deps.get_owner
        await self.app(scope, receive, send)


class UploadRate:
    """Count an upload against its key's per-minute limit (docproc.quotas) before its body is read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].rstrip("/") == "/v1/documents"
        ):
            try:
                await run_in_threadpool(quotas.take_upload, scope.get("state", {}).get("owner"))
            except ServiceError as exc:
                return await error_response(exc, scope["path"])(scope, receive, send)
        await self.app(scope, receive, send)


class RequestLimits:
    """Refuse a request whose line and headers exceed `max_header_bytes` (431), then a body over `max_bytes`
    (413) or not sent within `timeout_s` (408) while it streams in.

    The server bounds a head that arrives in pieces (h11's buffer); a head that arrives at once is complete
    before it can be measured, so it is measured here. On a body refusal the app sees a disconnected client
    and stops reading; its answer is dropped for the refusal, and the connection is closed so that the rest of
    the body is not read.
    """

    def __init__(self, app: ASGIApp, max_header_bytes: int, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_header_bytes = app, max_header_bytes
        self.max_bytes, self.timeout_s = max_bytes, timeout_s

    def _headers_too_large(self) -> ServiceError:
        message = f"The request line and headers exceed the limit of {self.max_header_bytes} bytes."
        return ServiceError(431, "headers_too_large", message, headers={"Connection": "close"})

    def _too_large(self) -> ServiceError:
        message = f"The upload exceeds the limit of {self.max_bytes} bytes."
        return ServiceError(413, "file_too_large", message, headers={"Connection": "close"})

    def _too_slow(self) -> ServiceError:
        message = f"The request body was not received within {self.timeout_s:g} seconds."
        return ServiceError(408, "request_timeout", message, headers={"Connection": "close"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        head_bytes = len(scope.get("raw_path") or b"") + len(scope["query_string"])
        head_bytes += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if head_bytes > self.max_header_bytes:
            return await error_response(self._headers_too_large(), scope["path"])(scope, receive, send)
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await error_response(self._too_large(), scope["path"])(scope, receive, send)
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        received = 0
        body_done = response_started = False
        refusal: ServiceError | None = None

        async def guarded_receive() -> Message:
            nonlocal received, body_done, refusal
            if body_done:  # after the body: the app waits for a disconnect (streaming responses)
                return await receive()
            if refusal is None:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    refusal = self._too_slow()
                else:
                    received += len(message.get("body", b""))
                    body_done = not message.get("more_body", False)
                    if received <= self.max_bytes:
                        return message
                    refusal = self._too_large()
            return {"type": "http.disconnect"}

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refusal is None:
                response_started = True
                await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if refusal is None:
                raise
        if refusal is not None and not response_started:
            await error_response(refusal, scope["path"])(scope, receive, send)

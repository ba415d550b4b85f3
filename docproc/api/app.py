"""The FastAPI application: routes are thin; docproc.service does the work."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docproc.api.routes import batches, documents, jobs
from docproc.engine import get_tokenizer
from docproc.errors import ServiceError, error_envelope
from docproc.settings import get_settings


class BodySizeLimit:
    """Refuse a request body over the limit while it streams in, declared length or not."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _too_large(self.max_bytes)(scope, receive, send)
        received = 0
        overflow = False

        async def counted_receive() -> Message:
            # Past the limit the app sees a disconnected client and stops reading; its answer is dropped.
            nonlocal received, overflow
            if not overflow:
                message = await receive()
                received += len(message.get("body", b""))
                overflow = received > self.max_bytes
                if not overflow:
                    return message
            return {"type": "http.disconnect"}

        async def guarded_send(message: Message) -> None:
            if not overflow:
                await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not overflow:
                raise
        if overflow:
            await _too_large(self.max_bytes)(scope, receive, send)


def _too_large(max_bytes: int) -> JSONResponse:
    message = f"The upload exceeds the limit of {max_bytes} bytes."
    return JSONResponse(error_envelope("file_too_large", message), status_code=413)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # Uploads count tokens: load the tokenizer (converting the model on first use) before taking requests.
    await run_in_threadpool(get_tokenizer)
    yield


def create_app() -> FastAPI:
    settings = get_settings()
    # /docs and /redoc load their scripts and styles from the package, not a CDN: they work offline.
    app = FastAPIOffline(
        lifespan=lifespan,
        title="docproc",
        summary="Upload documents, summarize them with a long-context model, poll jobs, read results.",
        version="0.1.0",
    )
    app.include_router(documents.router)
    app.include_router(jobs.router)
    app.include_router(batches.router)

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(
            error_envelope(exc.code, exc.message), status_code=exc.status, headers=exc.headers
        )

    @app.get("/healthz", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # Multipart overhead on top of the file itself.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes + 64 * 1024)
    return app

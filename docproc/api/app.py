"""The FastAPI application: routes are thin; docproc.service does the work."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.exceptions import HTTPException

from docproc import service, webui
from docproc.api.idempotency import IdempotentSubmits
from docproc.api.middleware import ApiKeyAuth, RequestLimits, UploadRate, error_response
from docproc.api.routes import batches, documents, jobs, openai_compat
from docproc.engine import get_tokenizer
from docproc.errors import ECHO_CHARS, ServiceError, describe, field_errors
from docproc.metrics import SharedCollector
from docproc.settings import get_settings
from workers.celery_app import BATCH_QUEUE, JOBS_QUEUE

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # Uploads count tokens: load the tokenizer (converting the model on first use) before taking requests.
    await run_in_threadpool(get_tokenizer)
    await run_in_threadpool(service.remove_orphan_files)
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
    metrics_registry = CollectorRegistry()
    metrics_registry.register(SharedCollector([JOBS_QUEUE, BATCH_QUEUE]))
    # HTTP request counts and latency histograms of this process; /metrics is outside /v1 (no API key).
    Instrumentator(registry=metrics_registry).instrument(app).expose(app, include_in_schema=False)
    app.include_router(documents.router)
    app.include_router(jobs.router)
    app.include_router(batches.router)
    app.include_router(openai_compat.router)
    webui.mount(app)  # the web page at /, its assets under /ui

    # Every error a client sees has the one envelope: the service's own, FastAPI's validation errors,
    # Starlette's 404/405, and anything unexpected.
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc.errors())
        return error_response(
            ServiceError(422, "invalid_request", f"Invalid request: {describe(errors)}.", errors=errors),
            request.url.path,
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's and FastAPI's own: 404/405 for routes, 400 for a body that cannot be parsed.
        phrase = HTTPStatus(exc.status_code).phrase
        code = phrase.lower().replace(" ", "_").replace("-", "_")
        message = str(exc.detail)[: 4 * ECHO_CHARS] if exc.detail != phrase else f"{phrase}."
        return error_response(
            ServiceError(exc.status_code, code, message, headers=exc.headers), request.url.path
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this answer, so the server logs its traceback too.
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        message = "The server failed to handle the request; it has been logged."
        return error_response(
            ServiceError(500, "internal_error", message, headers={"Connection": "close"}), request.url.path
        )

    @app.get("/healthz", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # The last added runs first: the key is checked before the body is read, and an idempotent submit is
    # fingerprinted once the limits have passed its body.
    app.add_middleware(IdempotentSubmits)
    app.add_middleware(UploadRate)
    app.add_middleware(
        RequestLimits,
        max_header_bytes=settings.max_header_bytes,
        max_bytes=settings.max_upload_bytes + 64 * 1024,  # multipart overhead on top of the file itself
        timeout_s=settings.request_body_timeout_s,
    )
    app.add_middleware(ApiKeyAuth, keys=settings.api_keys)
    return app

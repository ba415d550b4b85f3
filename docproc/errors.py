"""The one error root: every error a client sees has an HTTP status, a short snake_case code and a reason.

Routes, services, ingestion and the CLI raise `ServiceError` (or a subclass); the API turns it into the one
envelope `error_envelope` builds (on the OpenAI-compatible surface, /openai/v1, into OpenAI's shape, built by
`openai_error_envelope`, so that OpenAI's SDKs raise their own exceptions), the CLI into a one-line message.
"""

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

# Values a client sent are echoed in messages only this long: an error must not send a large input back.
ECHO_CHARS = 64
# Invalid fields listed in one error response (a body can be invalid in millions of places).
MAX_FIELD_ERRORS = 20


class ServiceError(Exception):
    """A request the service refuses: `status` (HTTP), `code` (for programs), `message` (for people), and
    optionally `errors`, one entry per invalid field (see `field_errors`)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.errors = errors

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (parser children): rebuild from the same arguments.
        return (type(self), (self.status, self.code, self.message, self.headers, self.errors))


def shorten(value: object) -> str:
    """A client's value as it may appear in a message: its repr, cut to a short prefix."""
    text = repr(value)
    return text if len(text) <= ECHO_CHARS else f"{text[:ECHO_CHARS]}… ({len(text)} characters)"


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's errors as `{loc, type, msg}`: never the input value; names and messages of bounded length
    (an unknown field's name is part of its location)."""
    errors = list(itertools.islice(errors, MAX_FIELD_ERRORS))
    return [
        {
            "loc": [part[:ECHO_CHARS] if isinstance(part, str) else part for part in error["loc"]],
            "type": error["type"],
            "msg": str(error["msg"])[: 4 * ECHO_CHARS],
        }
        for error in errors
    ]


def describe(errors: list[dict[str, Any]]) -> str:
    """`field_errors` in one line, for a message."""
    return "; ".join(f"{'.'.join(map(str, error['loc'])) or 'body'}: {error['msg']}" for error in errors[:3])


def error_envelope(code: str, message: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The body of every error response: {"detail": {"code", "message"[, "errors"]}}."""
    detail: dict[str, Any] = {"code": code, "message": message}
    if errors is not None:
        detail["errors"] = errors
    return {"detail": detail}


# OpenAI's error `type` by HTTP status; others are "invalid_request_error" (4xx) or "server_error" (5xx).
OPENAI_ERROR_TYPES = {401: "authentication_error", 403: "permission_error"}


def openai_error_envelope(error: ServiceError) -> dict[str, Any]:
    """The same error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}; `param` names the
    first invalid field, if any."""
    default_type = "server_error" if error.status >= 500 else "invalid_request_error"
    # FastAPI's locations start with where the field was sent (body, query, path); OpenAI names the field.
    loc = error.errors[0]["loc"] if error.errors else []
    param = ".".join(map(str, loc[1:] if loc[:1] in (["body"], ["query"], ["path"]) else loc)) or None
    return {
        "error": {
            "message": error.message,
            "type": OPENAI_ERROR_TYPES.get(error.status, default_type),
            "param": param,
            "code": error.code,
        }
    }

"""The one error root: every error a client sees has an HTTP status, a short snake_case code and a reason.

Routes, services, ingestion and the CLI raise `ServiceError` (or a subclass); the API turns it into the one
envelope `error_envelope` builds, the CLI into a one-line message.
"""

from typing import Any


class ServiceError(Exception):
    """A request the service refuses: `status` (HTTP), `code` (for programs), `message` (for people)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (parser children): rebuild from the same arguments.
        return (type(self), (self.status, self.code, self.message, self.headers))


def error_envelope(code: str, message: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The body of every error response: {"detail": {"code", "message"[, "errors"]}}."""
    detail: dict[str, Any] = {"code": code, "message": message}
    if errors is not None:
        detail["errors"] = errors
    return {"detail": detail}

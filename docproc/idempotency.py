"""Idempotent submits: a request's Idempotency-Key, its fingerprint and the response it got.

The key's row is inserted before the request runs, under a unique index on (owner, key): of many concurrent
duplicates exactly one inserts it and runs; the others wait for its response and get the same one.
"""

import contextlib
import enum
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from docproc.db import session_scope
from docproc.errors import ServiceError
from docproc.models import IdempotencyKey, utcnow
from docproc.settings import get_settings

MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    content_type: str
    body: bytes


class Claim(enum.Enum):
    RUN = "run"  # this request is the key's first: its row is inserted, the request runs
    WAIT = "wait"  # the key's first request still runs (or just gave its key up): ask again shortly


def check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_CHARS or not key.isascii() or not key.isprintable():
        raise ServiceError(
            422,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable ASCII characters.",
        )


class Fingerprint:
    """What makes two requests the same, fed the body as it arrives. A multipart body's boundary is random
    per request, so it is left out; a JSON body is compared by its content, not its spacing or key order."""

    def __init__(self, method: str, path: str, content_type: str) -> None:
        media_type, _, params = content_type.partition(";")
        self.media_type = media_type.strip().lower()
        self.digest = hashlib.sha256(f"{method} {path} {self.media_type}\n".encode())
        self.boundary = b""
        if self.media_type == "multipart/form-data":
            for param in params.split(";"):
                name, _, value = param.strip().partition("=")
                if name.lower() == "boundary":
                    self.boundary = value.strip('"').encode("latin-1")
        self.held = b""  # multipart: a tail that may hold the start of a boundary; JSON: the whole body

    def update(self, chunk: bytes) -> None:
        data = self.held + chunk
        if self.media_type == "application/json":
            self.held = data
        elif self.boundary:
            data = data.replace(self.boundary, b"")
            keep = len(self.boundary) - 1
            self.digest.update(data[:-keep] if keep else data)
            self.held = data[-keep:] if keep else b""
        else:
            self.digest.update(chunk)

    def hexdigest(self) -> str:
        held = self.held
        if self.media_type == "application/json":
            with contextlib.suppress(
                ValueError
            ):  # invalid JSON is compared byte for byte (and refused anyway)
                held = json.dumps(json.loads(held), sort_keys=True, separators=(",", ":")).encode()
        self.digest.update(held)
        return self.digest.hexdigest()


def begin(owner: str | None, key: str, request_fingerprint: str) -> Claim | StoredResponse:
    """Whether this request runs, waits for the key's first request, or gets the first one's response; 409
    when the key was used for another request."""
    settings = get_settings()
    now = utcnow()
    try:
        with session_scope() as session:
            session.add(
                IdempotencyKey(
                    owner=owner,
                    key=key,
                    fingerprint=request_fingerprint,
                    created_at=now,
                    expires_at=now + timedelta(seconds=settings.idempotency_ttl_s),
                )
            )
        return Claim.RUN
    except IntegrityError:
        pass
    with session_scope() as session:
        row = session.scalar(
            select(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
        )
        if row is None:  # deleted meanwhile (its request failed): try again
            return Claim.WAIT
        abandoned = row.status_code is None and row.created_at < now - timedelta(
            seconds=settings.idempotency_wait_s
        )
        if row.expires_at < now or abandoned:
            # Expired, or its request's server died mid-way: the key is free again.
            session.delete(row)
            return Claim.WAIT
        if row.fingerprint != request_fingerprint:
            raise ServiceError(
                409,
                "idempotency_conflict",
                "This Idempotency-Key was used with a different request: use a new key for a new request.",
            )
        if row.status_code is None:
            return Claim.WAIT
        return StoredResponse(
            row.status_code, row.content_type or "application/json", (row.body or "").encode()
        )


def finish(owner: str | None, key: str, response: StoredResponse | None) -> None:
    """Keep the first response for replays; None forgets the key (the request failed and may be retried)."""
    with session_scope() as session:
        where = (IdempotencyKey.owner == owner, IdempotencyKey.key == key)
        if response is None:
            session.execute(delete(IdempotencyKey).where(*where))
        else:
            session.execute(
                update(IdempotencyKey)
                .where(*where)
                .values(
                    status_code=response.status,
                    content_type=response.content_type,
                    body=response.body.decode(),
                )
            )


def delete_expired() -> int:
    with session_scope() as session:
        return session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at < utcnow())).rowcount

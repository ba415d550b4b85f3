"""Request dependencies: the database session and the caller's identity."""

import hashlib
import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from docproc.db import session_scope
from docproc.errors import ServiceError

# Declares the scheme in OpenAPI; the key itself is checked by middleware.ApiKeyAuth before the body is read.
bearer = HTTPBearer(
    auto_error=False,
    description="An API key (DOCPROC_API_KEYS) as `Authorization: Bearer KEY`; not needed when none is set.",
)


def get_session() -> Iterator[Session]:
    # Routes that change something commit before they answer: this scope may close after the response is sent.
    with session_scope() as session:
        yield session


def owner_for(authorization: bytes | None, keys: list[str]) -> str | None:
    """With API keys configured, the caller's key (hashed) owns what it creates; without, the API is open.

    The header is compared as bytes: a client may send any bytes, and only a configured key matches.
    """
    if not keys:
        return None
    scheme, _, key = (authorization or b"").partition(b" ")
    if scheme.lower() == b"bearer":
        for known in keys:
            if hmac.compare_digest(key, known.encode()):
                return hashlib.sha256(known.encode()).hexdigest()
    raise ServiceError(
        401,
        "unauthorized",
        "A valid API key is required: Authorization: Bearer KEY.",
        # The body, if any, is not read: close rather than read it to reuse the connection.
        headers={"WWW-Authenticate": "Bearer", "Connection": "close"},
    )


async def get_owner(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> str | None:
    # Async: a plain read needs no hop to a worker thread.
    return request.state.owner


async def declare_idempotency_key(
    _: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="The same key with the same request returns the first response; with another "
            "request, 409 idempotency_conflict. Kept DOCPROC_IDEMPOTENCY_TTL_S (24 h) per API key.",
        ),
    ] = None,
) -> None:
    """Declares the header in OpenAPI; the middleware docproc.api.idempotency acts on it. Async: no hop to a
    worker thread."""


SessionDep = Annotated[Session, Depends(get_session)]
OwnerDep = Annotated[str | None, Depends(get_owner)]

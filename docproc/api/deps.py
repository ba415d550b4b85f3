"""Request dependencies: the database session and the caller's identity."""

import hashlib
import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException
from sqlalchemy.orm import Session

from docproc.db import session_scope
from docproc.settings import get_settings


def get_session() -> Iterator[Session]:
    # Routes that change something commit before they answer: this scope may close after the response is sent.
    with session_scope() as session:
        yield session


def get_owner(authorization: Annotated[str | None, Header()] = None) -> str | None:
    """With API keys configured, the caller's key (hashed) owns what it creates; without, the API is open."""
    keys = get_settings().api_keys
    if not keys:
        return None
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not any(hmac.compare_digest(key, known) for known in keys):
        raise HTTPException(
            401,
            detail={
                "code": "unauthorized",
                "message": "A valid API key is required: Authorization: Bearer KEY.",
            },
            headers={"WWW-Authenticate": "Bearer"},
        )
    return hashlib.sha256(key.encode()).hexdigest()


SessionDep = Annotated[Session, Depends(get_session)]
OwnerDep = Annotated[str | None, Depends(get_owner)]

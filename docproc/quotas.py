"""Per-key upload rate, counted in the broker's Redis so that every API process shares one count."""

import logging
import time

import redis

from docproc.broker import redis_client
from docproc.errors import ServiceError
from docproc.settings import get_settings

log = logging.getLogger(__name__)

WINDOW_S = 60


def take_upload(owner: str | None) -> None:
    """Count one upload for this key in the current minute; 429 with Retry-After once over the limit.

    With the API open (no keys) or no limit set, nothing is counted. Should Redis be away, the upload is let
    through (and logged) rather than refused for a reason the client cannot act on.
    """
    limit = get_settings().max_uploads_per_minute
    if owner is None or limit is None:
        return
    now = time.time()
    window = int(now // WINDOW_S)
    counter = f"docproc:quota:uploads:{owner}:{window}"
    try:
        with redis_client().pipeline() as pipe:
            count, _ = pipe.incr(counter).expire(counter, 2 * WINDOW_S).execute()
    except redis.RedisError:
        log.exception("upload quota not counted: Redis is unavailable")
        return
    if count > limit:
        retry_after = max(1, int((window + 1) * WINDOW_S - now + 0.999))
        raise ServiceError(
            429,
            "too_many_uploads",
            f"This API key may upload {limit} files per minute: try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )

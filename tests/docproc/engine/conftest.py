import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, free_port

SERVED_NAMES = ("smollm2", "smollm2-thinking")


class OpenAIServer:
    def __init__(self, port: int) -> None:
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/v1"

    def fail_next(self, count: int, status: int = 503) -> None:
        httpx.post(f"{self.root}/test/fail", params={"count": count, "status": status}).raise_for_status()

    def configure(self, **options: object) -> None:
        """openai_server.TestConfig: the options given, the others back to their defaults."""
        httpx.post(f"{self.root}/test/config", json=options).raise_for_status()

    def stats(self) -> dict:
        return httpx.get(f"{self.root}/test/stats").json()


@pytest.fixture(scope="session")
def openai_server(default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAIServer]:
    """tests/docproc/engine/openai_server.py on loopback, serving the default model under two names."""
    port = free_port()
    log = (tmp_path_factory.mktemp("openai-server") / "server.log").open("wb")
    names = [arg for name in SERVED_NAMES for arg in ("--served-name", name)]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.docproc.engine.openai_server",
            "--model",
            str(default_model),
            "--port",
            str(port),
            *names,
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = OpenAIServer(port)
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{server.url}/models").status_code == 200:
                break
        except httpx.TransportError:
            assert process.poll() is None and time.monotonic() < deadline, (
                f"test server did not start: {log.name}"
            )
            time.sleep(0.3)
    yield server
    process.terminate()
    process.wait(20)


@pytest.fixture
def server_config(openai_server: OpenAIServer) -> Iterator[Callable[..., None]]:
    """Configures the shared test server for one test, then puts its defaults back."""
    yield openai_server.configure
    openai_server.configure()

"""A live service for the ask benchmarks: an API server and one worker (real processes, as in the tests),
on a data dir of their own, with SQLite and the test Redis (DOCPROC_TEST_REDIS); and the `ask` task's
contract: POST /v1/jobs {"document_id", "task": "ask", "options": {"question"}} → a result
{answer, citations: [{page, quote}], usage: {input_tokens, output_tokens, cached_tokens}}.
"""

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import Service, service_env  # noqa: E402

FINISHED = {"succeeded", "failed", "cancelled"}


def start(workdir: Path, **env: str) -> Service:
    service = Service(service_env(workdir / "data", f"sqlite:///{workdir / 'docproc.db'}", **env), workdir)
    service.start_api()
    service.start_worker()
    return service


@dataclass(frozen=True)
class Answer:
    answer: str
    citations: list[dict[str, Any]]
    usage: dict[str, int]
    seconds: float


def upload(client: httpx.Client, name: str, content: bytes) -> dict[str, Any]:
    response = client.post("/v1/documents", files={"file": (name, content)}, timeout=600)
    response.raise_for_status()
    return response.json()


def ask(
    service: Service,
    client: httpx.Client,
    document_id: str,
    question: str,
    method: str = "auto",
    timeout: float = 7200,
) -> Answer:
    """Ask and wait; seconds from submitting the job to its end (read, if any, and answer)."""
    started = time.perf_counter()
    options = {"question": question, "method": method}
    response = client.post("/v1/jobs", json={"document_id": document_id, "task": "ask", "options": options})
    response.raise_for_status()
    job = service.wait_job(client, response.json()["id"], FINISHED, timeout=timeout)
    seconds = time.perf_counter() - started
    if job["status"] != "succeeded":
        raise RuntimeError(f"ask job {job['id']} {job['status']}: {job['error']}")
    result = client.get(f"/v1/jobs/{job['id']}/result").json()
    return Answer(result["answer"], result.get("citations", []), result.get("usage", {}), seconds)

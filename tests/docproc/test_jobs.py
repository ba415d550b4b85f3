"""Cancelling a running job stops the model within seconds, mid-generation or mid-prefill; the worker is free.

A real API server and worker process, the default model. The worker runs on one thread (a good neighbour on a
shared machine), so that uncancelled, each job below would run for far longer than the cancel is given.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Service, database_url_for, service_env

LONG_TEXT = Path("/usr/share/common-licenses/GPL-3")
SHORT_NOTE = b"The cooperative's solar roofs produced 1.2 GWh in 2025, 14% more than planned."
# From the cancel request to the job's `cancelled` status; the model checks every DOCPROC_CANCEL_POLL_S (1 s).
CANCEL_WITHIN_S = 10.0


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, default_model: Path
) -> Iterator[Service]:
    """API and one worker whose chunks fill SmolLM2's whole context: one chunk's prefill is a long forward."""
    data = tmp_path_factory.mktemp(f"cancel-{request.param}")
    database_url = database_url_for(request, data)
    env = service_env(data / "data", database_url, DOCPROC_CHUNK_TOKENS="8192", OMP_NUM_THREADS="1")
    running = Service(env, data)
    running.start_api()
    running.start_worker()
    yield running
    running.stop()


def _start_job(service: Service, client: httpx.Client, text: bytes, options: dict[str, object]) -> dict:
    """Submit a job and wait until the worker has read its document and handed the model its first request."""
    document = client.post("/v1/documents", files={"file": ("doc.txt", text)}).json()
    job = client.post("/v1/jobs", json={"document_id": document["id"], "options": options}).json()
    deadline = time.monotonic() + 300
    while (view := client.get(f"/v1/jobs/{job['id']}").json())["progress"]["tokens_total"] == 0:
        assert view["status"] in ("queued", "running") and time.monotonic() < deadline, view
        time.sleep(0.1)
    assert view["status"] == "running", view
    return view


def _cancel_promptly(service: Service, client: httpx.Client, job_id: str) -> None:
    asked = time.monotonic()
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "running"
    stopped = service.wait_job(client, job_id, {"cancelled", "succeeded", "failed"}, timeout=120)
    took = time.monotonic() - asked
    assert stopped["status"] == "cancelled", stopped
    assert took < CANCEL_WITHIN_S, f"cancelled after {took:.1f} s"
    assert client.get(f"/v1/jobs/{job_id}/result").status_code == 409
    assert not (service.log_dir / "data" / "states" / "jobs" / job_id).exists()
    # The worker is free again: a new job runs to its end.
    document = client.post("/v1/documents", files={"file": ("note.txt", SHORT_NOTE)}).json()
    after = client.post("/v1/jobs", json={"document_id": document["id"], "options": {"max_words": 10}}).json()
    assert service.wait_job(client, after["id"], {"succeeded", "failed"})["status"] == "succeeded"


def test_cancel_stops_a_long_generation(service: Service) -> None:
    # Up to 3216 new tokens at a temperature that keeps the model from ending early: minutes uncancelled.
    options = {"max_words": 2000, "temperature": 2.0, "top_p": 1.0, "top_k": 0}
    with service.client() as client:
        job = _start_job(service, client, SHORT_NOTE, options)
        time.sleep(2)  # well into the generation
        _cancel_promptly(service, client, job["id"])


def test_cancel_stops_a_long_prefill(service: Service) -> None:
    # The chunked read: one chunk of about 7400 tokens (all the context leaves), one long forward.
    with service.client() as client:
        job = _start_job(
            service,
            client,
            LONG_TEXT.read_bytes(),
            {"max_words": 10, "max_input_tokens": 7000, "method": "abstractive"},
        )
        assert job["progress"]["tokens_total"] > 7000
        _cancel_promptly(service, client, job["id"])

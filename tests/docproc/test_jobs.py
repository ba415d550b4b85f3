"""Cancelling a running job stops the model within seconds, mid-generation or mid-prefill; the worker is free.

A real API server and worker process, the default model. The worker runs on one thread (a good neighbour on a
shared machine), so that uncancelled, each job below would run for far longer than the cancel is given.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Service, database_for, isolated_broker_url, service_env

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
    with database_for(request, data) as database_url:
        env = service_env(data / "data", database_url, DOCPROC_CHUNK_TOKENS="8192", OMP_NUM_THREADS="1")
        with Service(env, data).running() as running:
            yield running


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


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def together(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, default_model: Path
) -> Iterator[Service]:
    """An API with DOCPROC_BATCH_ITEMS_TOGETHER=4; the test starts the worker once it has queued a batch.
    Its queue is a Redis database of its own: other modules' workers still running would take the items."""
    data = tmp_path_factory.mktemp(f"together-{request.param}")
    with database_for(request, data) as database_url:
        env = service_env(
            data / "data",
            database_url,
            DOCPROC_BROKER_URL=isolated_broker_url(),
            DOCPROC_BATCH_ITEMS_TOGETHER="4",
            OMP_NUM_THREADS="1",
        )
        running = Service(env, data)
        running.start_api()
        yield running
        running.stop()


def test_batch_items_run_together_each_under_its_own_lease(together: Service) -> None:
    """Three queued items run at once in one worker, each with its own progress and result; one is cancelled
    while they run. Their own messages, delivered afterwards, find them taken and change nothing."""
    short = {"max_words": 10}
    # As in test_cancel_stops_a_long_generation: minutes of generation unless cancelled.
    endless = {"max_words": 2000, "temperature": 2.0, "top_p": 1.0, "top_k": 0}
    with together.client() as client:
        note = client.post("/v1/documents", files={"file": ("note.txt", SHORT_NOTE)}).json()
        lines = [
            {"custom_id": name, "document_id": note["id"], "options": options}
            for name, options in (("a", short), ("b", short), ("endless", endless))
        ]
        jsonl = "\n".join(map(json.dumps, lines)).encode()
        batch = client.post("/v1/batches", files={"file": ("requests.jsonl", jsonl)}).json()
        jobs = {
            line["custom_id"]: line["job_id"]
            for line in map(json.loads, client.get(f"/v1/batches/{batch['id']}/results").text.splitlines())
        }
        worker = together.start_worker()

        deadline = time.monotonic() + 300
        while (endless_job := client.get(f"/v1/jobs/{jobs['endless']}").json())["status"] == "queued":
            assert time.monotonic() < deadline, endless_job
            time.sleep(0.1)
        views = {name: client.get(f"/v1/jobs/{job_id}").json() for name, job_id in jobs.items()}
        assert all(view["status"] != "queued" for view in views.values()), views
        assert "runs together with" in together.log_of(worker)

        _cancel_promptly(together, client, jobs["endless"])
        for name in ("a", "b"):
            done = together.wait_job(client, jobs[name], {"succeeded", "failed", "cancelled"})
            assert done["status"] == "succeeded" and done["attempts"] == 1, done
            assert done["progress"]["tokens_done"] == done["progress"]["tokens_total"] > 0
            result = client.get(f"/v1/jobs/{jobs[name]}/result").json()
            assert result["summary"] and result["usage"]["output_tokens"] > 0

        # The items' own messages came after: each found its job taken and did nothing.
        deadline = time.monotonic() + 60
        while together.log_of(worker).count("not claimed") < 2:
            assert time.monotonic() < deadline, together.log_of(worker)
            time.sleep(0.3)
        assert [client.get(f"/v1/jobs/{job_id}").json()["attempts"] for job_id in jobs.values()] == [1, 1, 1]

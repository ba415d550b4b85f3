"""Jobs end to end: HTTP API, a real worker process on Redis, the real default model, SQLite + PostgreSQL."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_PDF, Service, service_env

LONG_TEXT = Path("/usr/share/common-licenses/GPL-3")


@pytest.fixture
def service(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Service]:
    """API and one worker (with the chunk size a test's `chunk_tokens` marker asks for)."""
    marker = request.node.get_closest_marker("chunk_tokens")
    chunk_tokens = str(marker.args[0]) if marker else "1536"
    running = Service(
        service_env(tmp_path / "data", database_url, DOCPROC_CHUNK_TOKENS=chunk_tokens), tmp_path
    )
    running.start_api()
    running.start_worker()
    yield running
    running.stop()


def test_summary_of_a_pdf(service: Service) -> None:
    with service.client() as client:
        document = client.post(
            "/v1/documents", files={"file": ("report.pdf", SAMPLE_PDF.read_bytes())}
        ).json()
        job = client.post("/v1/jobs", json={"document_id": document["id"], "options": {"max_words": 60}})
        assert job.status_code == 201 and job.json()["status"] == "queued"
        done = service.wait_job(client, job.json()["id"], {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        assert done["progress"]["tokens_done"] == done["progress"]["tokens_total"] > 0
        assert done["started_at"] and done["finished_at"] and done["attempts"] == 1

        result = client.get(f"/v1/jobs/{done['id']}/result").json()
        assert result["model"] == "SmolLM2-135M-Instruct"
        assert result["thinking"] is None
        # The default for a small model: key sentences, rewritten, checked; cited by the pages they are on.
        assert result["method"] == "extract_compress" and result["replaced_sentences"] >= 0
        assert result["usage"]["input_tokens"] > 100 and result["usage"]["output_tokens"] > 5
        first, last = result["source_pages"][0][0], result["source_pages"][-1][1]
        assert 1 <= first <= last <= 3
        assert "(Drawn from pages " in result["summary"]
        assert len(result["summary"].split("\n\n(Drawn from")[0].split()) <= 60
        words = result["summary"].lower()
        assert any(term in words for term in ("solar", "cooperative", "battery", "energy")), words


@pytest.mark.chunk_tokens(256)  # so that the document takes many chunks
def test_cancel_a_queued_and_a_running_job(service: Service) -> None:
    with service.client() as client:
        document = client.post("/v1/documents", files={"file": ("gpl.txt", LONG_TEXT.read_bytes())}).json()
        # The hierarchical read, chunk by chunk: a job that is still running when cancelled.
        chunked = {"document_id": document["id"], "options": {"method": "abstractive"}}
        running = client.post("/v1/jobs", json=chunked).json()
        queued = client.post("/v1/jobs", json=chunked).json()

        cancelled = client.post(f"/v1/jobs/{queued['id']}/cancel").json()
        assert cancelled["status"] == "cancelled"

        deadline = time.monotonic() + 300
        while client.get(f"/v1/jobs/{running['id']}").json()["progress"]["tokens_done"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert client.post(f"/v1/jobs/{running['id']}/cancel").json()["status"] == "running"
        stopped = service.wait_job(client, running["id"], {"cancelled", "succeeded", "failed"}, timeout=120)
        assert stopped["status"] == "cancelled"
        assert stopped["progress"]["tokens_done"] < stopped["progress"]["tokens_total"]
        assert client.get(f"/v1/jobs/{running['id']}/result").status_code == 409
        # The worker is free again: a new job runs to its end.
        small = client.post("/v1/documents", files={"file": ("n.txt", b"A short note about solar roofs.")})
        after = client.post("/v1/jobs", json={"document_id": small.json()["id"]}).json()
        assert service.wait_job(client, after["id"], {"succeeded", "failed"})["status"] == "succeeded"

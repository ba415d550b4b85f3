"""GET /metrics from a real server and worker: parsed with prometheus_client's parser, the counters move."""

import math

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SAMPLE_PDF, Service

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(service: Service) -> Samples:
    # /metrics is outside the keyed /v1 routes: no key needed.
    response = httpx.get(f"{service.url}/metrics", timeout=60)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_after_a_job(running_service: Service) -> None:
    with running_service.client(running_service.keys[0]) as client:
        before = scrape(running_service)
        document = client.post(
            "/v1/documents", files={"file": ("report.pdf", SAMPLE_PDF.read_bytes())}
        ).json()
        empty = client.post("/v1/documents", files={"file": ("empty.txt", b"")})
        assert empty.status_code == 422
        job = client.post(
            "/v1/jobs",
            json={"document_id": document["id"], "options": {"max_words": 12, "method": "abstractive"}},
        ).json()
        done = running_service.wait_job(client, job["id"], {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        result = client.get(f"/v1/jobs/{job['id']}/result").json()
        after = scrape(running_service)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Shared counters (the worker's and the API's, read from Redis by whichever API process answers).
    assert moved("docproc_jobs_finished_total", task="summarize", status="succeeded") >= 1
    assert moved("docproc_job_queue_seconds_count", task="summarize") >= 1
    assert moved("docproc_job_run_seconds_count", task="summarize") >= 1
    assert moved("docproc_job_run_seconds_bucket", task="summarize", le="+Inf") >= 1
    assert (
        moved("docproc_document_tokens_read_total", task="summarize") >= done["progress"]["tokens_total"] > 0
    )
    assert moved("docproc_tokens_generated_total", task="summarize") >= result["usage"]["output_tokens"]
    assert moved("docproc_prefill_tokens_per_second_count") >= 1
    if document["pages"]:
        assert moved("docproc_ingested_pages_total", content_type="application/pdf") >= document["pages"]
    assert moved("docproc_ingestion_failures_total", code=empty.json()["detail"]["code"]) >= 1
    # State read at scrape time from the database and Redis.
    assert value(after, "docproc_jobs", status="succeeded", task="summarize") >= 1
    assert ("docproc_queue_depth", (("queue", "jobs"),)) in after
    assert ("docproc_queue_depth", (("queue", "batch"),)) in after
    age = value(after, "docproc_worker_heartbeat_age_seconds")
    assert not math.isnan(age) and 0 <= age < 60
    assert value(after, "docproc_workers_alive") >= 1
    # This API process's HTTP metrics (prometheus-fastapi-instrumentator).
    assert moved("http_requests_total", handler="/v1/jobs", method="POST", status="2xx") >= 1
    assert any(name == "http_request_duration_seconds_bucket" for name, _ in after)

"""Batches end to end: HTTP API, a real worker on Redis, the real default model, SQLite and PostgreSQL."""

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Service, database_for, service_env

LONG_TEXT = Path("/usr/share/common-licenses/GPL-3")
NOTE = b"The cooperative installed solar panels on forty roofs and a shared battery in the village hall."
CHEAP = {"max_words": 10, "max_input_tokens": 64}
FINISHED = {"completed", "failed", "cancelled"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, default_model: Path
) -> Iterator[Service]:
    """An API with two keys (`service.keys`); a test starts the worker once it has queued its items."""
    tmp_path = tmp_path_factory.mktemp(f"batches-{request.param}")
    keys = [f"key-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}"]
    with database_for(request, tmp_path) as database_url:
        env = service_env(
            tmp_path / "data", database_url, DOCPROC_API_KEYS=",".join(keys), DOCPROC_CHUNK_TOKENS="256"
        )
        running = Service(env, tmp_path)
        running.keys = keys
        running.start_api()
        yield running
        running.stop()


def start_worker_once(service: Service) -> None:
    if len(service.processes) == 1:  # the API alone
        service.start_worker()


def wait_batch(client: httpx.Client, batch_id: str, until: set[str], timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while (batch := client.get(f"/v1/batches/{batch_id}").json())["status"] not in until:
        assert time.monotonic() < deadline, batch
        time.sleep(0.3)
    return batch


def results(client: httpx.Client, batch_id: str) -> dict[str, dict]:
    response = client.get(f"/v1/batches/{batch_id}/results")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    by_id = {line["custom_id"]: line for line in lines}
    assert len(by_id) == len(lines)
    return by_id


def test_batch_runs_beside_single_jobs(service: Service) -> None:
    with service.client(service.keys[0]) as client:
        note = client.post("/v1/documents", files={"file": ("note.txt", NOTE)}).json()
        lines = [
            {"custom_id": "first", "document_id": note["id"], "options": CHEAP},
            "{not json",
            {"custom_id": "first", "document_id": note["id"]},
            {"custom_id": "missing", "document_id": "doc_nope"},
            {"custom_id": "bad-options", "document_id": note["id"], "options": {"max_words": 1}},
            {"custom_id": "second", "document_id": note["id"], "task": "summarize", "options": CHEAP},
        ]
        jsonl = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
        from_file = client.post("/v1/batches", files={"file": ("requests.jsonl", jsonl.encode())})
        assert from_file.status_code == 201, from_file.text
        batch = from_file.json()
        assert batch["status"] == "in_progress" and batch["object"] == "batch"
        assert batch["request_counts"] == {"total": 6, "completed": 0, "failed": 4, "cancelled": 0}
        assert [(e["line"], e["code"]) for e in batch["errors"]] == [
            (2, "invalid_json"),
            (3, "duplicate_custom_id"),
            (4, "not_found"),
            (5, "invalid_options"),
        ]
        assert batch["errors"][1]["custom_id"] == "first"  # the duplicate names the id it repeats
        # Results are there (partially) before anything ran; refused lines are in them too, in input order.
        partial = results(client, batch["id"])
        assert list(partial) == ["first", "line-2", "line-3", "missing", "bad-options", "second"]
        job = client.get(f"/v1/jobs/{partial['first']['job_id']}").json()
        assert (job["batch_id"], job["custom_id"]) == (batch["id"], "first")
        assert partial["first"]["status"] == "queued" and partial["first"]["result"] is None
        assert partial["missing"]["error"]["code"] == "not_found" and partial["line-2"]["job_id"] is None

        # Many items on the batch queue, then one single job: the worker is started with all of them queued.
        many = client.post("/v1/batches", json={"document_ids": [note["id"]] * 8, "options": CHEAP}).json()
        assert many["request_counts"]["total"] == 8
        single = client.post("/v1/jobs", json={"document_id": note["id"], "options": CHEAP}).json()
        start_worker_once(service)
        single = service.wait_job(client, single["id"], {"succeeded", "failed"})
        assert single["status"] == "succeeded", single

        done = [wait_batch(client, b["id"], FINISHED) for b in (batch, many)]
        assert [b["status"] for b in done] == ["completed", "completed"]
        assert done[0]["request_counts"] == {"total": 6, "completed": 2, "failed": 4, "cancelled": 0}
        assert done[1]["request_counts"] == {"total": 8, "completed": 8, "failed": 0, "cancelled": 0}
        for b in done:
            assert b["created_at"] <= b["in_progress_at"] <= b["finalizing_at"] <= b["completed_at"]
            assert b["cancelled_at"] is None and b["failed_at"] is None

        items = results(client, many["id"])
        assert list(items) == [note["id"]] + [f"item-{n}" for n in range(2, 9)]
        for item in items.values():
            assert (
                item["status"] == "succeeded" and item["error"] is None and item["document_id"] == note["id"]
            )
            assert item["result"]["summary"] and item["result"]["job_id"] == item["job_id"]
        # The single job did not wait for the batch: it went ahead of all but a couple of the queued items.
        item_ends = [client.get(f"/v1/jobs/{i['job_id']}").json()["finished_at"] for i in items.values()]
        assert sum(end < single["finished_at"] for end in item_ends) <= 3, (single, item_ends)
        assert results(client, batch["id"])["second"]["result"]["summary"]

        listed = client.get("/v1/batches", params={"limit": 1}).json()
        assert (
            listed["total"] == 2
            and listed["limit"] == 1
            and [b["id"] for b in listed["data"]] == [many["id"]]
        )
        assert client.get("/v1/batches", params={"offset": 1}).json()["data"][0]["id"] == batch["id"]

    with service.client(service.keys[1]) as stranger:
        assert stranger.get(f"/v1/batches/{many['id']}").status_code == 404
        assert stranger.get(f"/v1/batches/{many['id']}/results").status_code == 404
        assert stranger.post(f"/v1/batches/{many['id']}/cancel").status_code == 404
        assert stranger.get("/v1/batches").json()["total"] == 0
        refused = stranger.post("/v1/batches", json={"document_ids": [note["id"]]}).json()
        assert refused["status"] == "failed" and refused["errors"][0]["code"] == "not_found"
        assert stranger.post("/v1/batches", json={"document_ids": []}).status_code == 422
        assert stranger.post("/v1/batches", files={"file": ("empty.jsonl", b"\n")}).status_code == 422


def test_cancel_a_batch(service: Service) -> None:
    """One item is running when the batch is cancelled, the others wait on the queue."""
    start_worker_once(service)
    with service.client(service.keys[0]) as client:
        document = client.post("/v1/documents", files={"file": ("gpl.txt", LONG_TEXT.read_bytes())}).json()
        options = {"max_words": 20, "max_input_tokens": 2048, "method": "abstractive"}  # chunk by chunk
        batch = client.post(
            "/v1/batches", json={"document_ids": [document["id"]] * 3, "options": options}
        ).json()
        first_item = next(iter(results(client, batch["id"]).values()))["job_id"]
        deadline = time.monotonic() + 300
        while client.get(f"/v1/jobs/{first_item}").json()["progress"]["tokens_done"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.2)

        cancelling = client.post(f"/v1/batches/{batch['id']}/cancel").json()
        assert cancelling["status"] == "cancelling" and cancelling["cancelling_at"]
        assert cancelling["request_counts"] == {"total": 3, "completed": 0, "failed": 0, "cancelled": 2}
        cancelled = wait_batch(client, batch["id"], FINISHED, timeout=120)
        assert cancelled["status"] == "cancelled", cancelled
        assert cancelled["request_counts"] == {"total": 3, "completed": 0, "failed": 0, "cancelled": 3}
        assert cancelled["cancelled_at"] >= cancelled["cancelling_at"] and cancelled["completed_at"] is None

        items = results(client, batch["id"])
        assert [item["status"] for item in items.values()] == ["cancelled"] * 3
        stopped = client.get(f"/v1/jobs/{first_item}").json()
        assert 0 < stopped["progress"]["tokens_done"] < stopped["progress"]["tokens_total"]
        # Cancelling again changes nothing.
        assert client.post(f"/v1/batches/{batch['id']}/cancel").json()["status"] == "cancelled"


def test_deleting_a_document_keeps_finished_history(service: Service) -> None:
    start_worker_once(service)
    with service.client(service.keys[0]) as client:
        text = b"The ridge got two small wind turbines in spring; they feed the village battery at night."
        document = client.post("/v1/documents", files={"file": ("wind.txt", text)}).json()
        batch = client.post(
            "/v1/batches", json={"document_ids": [document["id"]] * 2, "options": CHEAP}
        ).json()
        finished = wait_batch(client, batch["id"], FINISHED)
        assert finished["status"] == "completed", finished
        before = results(client, batch["id"])

        assert client.delete(f"/v1/documents/{document['id']}").status_code == 204
        assert client.get(f"/v1/documents/{document['id']}").status_code == 404
        assert client.get(f"/v1/batches/{batch['id']}").json() == finished
        after = results(client, batch["id"])
        assert list(after) == list(before)
        for custom_id, line in after.items():
            assert line["document_id"] is None and line["result"] == before[custom_id]["result"]
            job = client.get(f"/v1/jobs/{line['job_id']}").json()
            assert job["status"] == "succeeded" and job["document_id"] is None
            assert client.get(f"/v1/jobs/{line['job_id']}/result").status_code == 200

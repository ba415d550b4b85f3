"""Idempotency-Key on submits, against a real server on PostgreSQL: duplicates get the first response."""

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import SAMPLE_PDF, Service, fresh_postgres_database
from tests.docproc.api.conftest import start_api

CONCURRENT = 16


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Iterator[Service]:
    # A database of its own: the jobs it leaves queued are no other test's worker's to run.
    with fresh_postgres_database("docproc_idempotency") as database_url:
        service = start_api(database_url, tmp_path_factory.mktemp("idempotency"))
        yield service
        service.stop()


def upload(client: httpx.Client, key: str, content: bytes = SAMPLE_PDF.read_bytes()) -> httpx.Response:
    # httpx draws a new multipart boundary for every request: the same upload is still the same request.
    return client.post(
        "/v1/documents", files={"file": ("report.pdf", content)}, headers={"Idempotency-Key": key}
    )


def test_concurrent_identical_submits_make_one_job(api: Service) -> None:
    key = f"submit-{uuid.uuid4()}"
    with api.client(api.keys[0]) as client:
        document = upload(client, f"upload-{uuid.uuid4()}").json()
        body = {"document_id": document["id"], "options": {"max_words": 40}}
        jobs_before = client.get("/v1/jobs").json()["total"]

        def submit(_: int) -> httpx.Response:
            return client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})

        with ThreadPoolExecutor(CONCURRENT) as pool:
            responses = list(pool.map(submit, range(CONCURRENT)))
        assert {r.status_code for r in responses} == {201}, [
            r.text for r in responses if r.status_code != 201
        ]
        assert len({r.json()["id"] for r in responses}) == 1
        assert len({r.content for r in responses}) == 1  # the first response, byte for byte
        assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == CONCURRENT - 1
        assert client.get("/v1/jobs").json()["total"] == jobs_before + 1

        # The same content in another spelling is the same request; other content is a conflict.
        reordered = client.post(
            "/v1/jobs",
            content=f'{{"options": {{"max_words": 40}}, "document_id": "{document["id"]}"}}',
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
        )
        assert reordered.status_code == 201 and reordered.json()["id"] == responses[0].json()["id"]
        other = client.post(
            "/v1/jobs", json=body | {"options": {"max_words": 41}}, headers={"Idempotency-Key": key}
        )
        assert other.status_code == 409
        assert other.json()["detail"]["code"] == "idempotency_conflict"
        assert client.get("/v1/jobs").json()["total"] == jobs_before + 1

    # Keys belong to their API key: another key's same Idempotency-Key is another request.
    with api.client(api.keys[1]) as client:
        refused = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
        assert refused.status_code == 404  # not this key's document: nothing is replayed across keys


def test_an_upload_is_replayed_and_a_refusal_is_not_kept(api: Service) -> None:
    key = f"upload-{uuid.uuid4()}"
    with api.client(api.keys[0]) as client:
        content = f"Notes {uuid.uuid4()} on the cooperative's battery.".encode()
        first, again = upload(client, key, content), upload(client, key, content)
        assert first.status_code == again.status_code == 201  # the first answer, not "200: already uploaded"
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
        other_file = client.post(
            "/v1/documents", files={"file": ("notes.txt", b"Other notes.")}, headers={"Idempotency-Key": key}
        )
        assert other_file.status_code == 409 and other_file.json()["detail"]["code"] == "idempotency_conflict"

        bad = client.post("/v1/jobs", json={"document_id": "nope"}, headers={"Idempotency-Key": "x" * 256})
        assert bad.status_code == 422 and bad.json()["detail"]["code"] == "invalid_idempotency_key"
        # A 4xx answer is kept too: the same request with the same key gets it again without running.
        missing = {"document_id": f"doc_{uuid.uuid4().hex}"}
        refusals = [
            client.post("/v1/jobs", json=missing, headers={"Idempotency-Key": key + "-job"}) for _ in range(2)
        ]
        assert [r.status_code for r in refusals] == [404, 404]
        assert refusals[1].headers["idempotent-replayed"] == "true"

        batch_key = f"batch-{uuid.uuid4()}"
        batches = [
            client.post(
                "/v1/batches",
                json={"document_ids": [first.json()["id"]]},
                headers={"Idempotency-Key": batch_key},
            )
            for _ in range(2)
        ]
        assert [b.status_code for b in batches] == [201, 201]
        assert batches[0].json()["id"] == batches[1].json()["id"]

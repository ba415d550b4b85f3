"""Per-key quotas against a real server: uploads per minute and queued+running jobs (no worker runs them)."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Service, fresh_postgres_database
from tests.docproc.api.conftest import start_api

UPLOADS_PER_MINUTE = 3
ACTIVE_JOBS = 2


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Iterator[Service]:
    # A database of its own: the jobs it leaves queued are no other test's worker's to run.
    with fresh_postgres_database("docproc_quotas") as database_url:
        service = start_api(
            database_url,
            tmp_path_factory.mktemp("quotas"),
            DOCPROC_MAX_UPLOADS_PER_MINUTE=str(UPLOADS_PER_MINUTE),
            DOCPROC_MAX_ACTIVE_JOBS_PER_KEY=str(ACTIVE_JOBS),
        )
        yield service
        service.stop()


def notes() -> dict[str, tuple[str, bytes]]:
    return {"file": ("notes.txt", f"Notes {uuid.uuid4()} on the cooperative's battery.".encode())}


def test_uploads_per_minute_and_active_jobs_per_key(api: Service) -> None:
    with api.client(api.keys[0]) as client, api.client(api.keys[1]) as other:
        uploads = [client.post("/v1/documents", files=notes()) for _ in range(UPLOADS_PER_MINUTE + 1)]
        # Three fit in the minute, or two when the minute turned between them; never four.
        refused = (
            uploads[-1] if uploads[-1].status_code == 429 else client.post("/v1/documents", files=notes())
        )
        assert [u.status_code for u in uploads[:2]] == [201, 201]
        assert refused.status_code == 429, refused.text
        assert refused.json()["detail"]["code"] == "too_many_uploads"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert other.post("/v1/documents", files=notes()).status_code == 201  # each key has its own count

        document_id = uploads[0].json()["id"]
        jobs = [client.post("/v1/jobs", json={"document_id": document_id}) for _ in range(ACTIVE_JOBS + 1)]
        assert [j.status_code for j in jobs] == [201] * ACTIVE_JOBS + [429]
        assert jobs[-1].json()["detail"]["code"] == "too_many_active_jobs"
        assert int(jobs[-1].headers["retry-after"]) >= 1
        # A finished (here: cancelled) job frees its place.
        assert client.post(f"/v1/jobs/{jobs[0].json()['id']}/cancel").json()["status"] == "cancelled"
        assert client.post("/v1/jobs", json={"document_id": document_id}).status_code == 201

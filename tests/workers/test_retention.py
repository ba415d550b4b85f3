"""Retention: the workers' sweep deletes what expired with every file it owns, and nothing else."""

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from docproc.storage import blob_path
from tests.conftest import Service


def notes() -> dict[str, tuple[str, bytes]]:
    return {"file": ("notes.txt", f"Notes {uuid.uuid4()}. The cooperative's battery holds 2 MWh.".encode())}


def test_the_sweep_deletes_expired_documents_jobs_and_batches_with_their_files(
    running_service: Service,
) -> None:
    with running_service.client(running_service.keys[1]) as client:
        document, kept = (client.post("/v1/documents", files=notes()).json() for _ in range(2))
        created = datetime.fromisoformat(document["created_at"])
        assert abs(datetime.fromisoformat(document["expires_at"]) - created - timedelta(days=1)) < timedelta(
            seconds=5
        )
        job = client.post(
            "/v1/jobs", json={"document_id": document["id"], "options": {"method": "extractive"}}
        )
        assert job.json()["expires_at"] is not None
        assert (
            running_service.wait_job(client, job.json()["id"], {"succeeded", "failed"})["status"]
            == "succeeded"
        )
        batch = client.post(
            "/v1/batches", json={"document_ids": [document["id"]], "options": {"method": "extractive"}}
        )
        assert batch.json()["expires_at"] is not None
        batch_id = batch.json()["id"]
        deadline = time.monotonic() + 300
        while client.get(f"/v1/batches/{batch_id}").json()["status"] != "completed":
            assert time.monotonic() < deadline, "the batch did not complete"
            time.sleep(0.3)
        batch_job_id = (
            client.get(f"/v1/batches/{batch_id}/results").text.split('"job_id": "')[1].split('"')[0]
        )

    data_dir = Path(running_service.env["DOCPROC_DATA_DIR"])
    blob = blob_path(data_dir / "blobs", document["sha256"])
    kept_blob = blob_path(data_dir / "blobs", kept["sha256"])
    # What a streaming engine leaves: the document's read state and a job's checkpoint.
    owned_files = [
        data_dir / "states" / "documents" / document["id"] / "read.safetensors",
        data_dir / "states" / "jobs" / job.json()["id"] / "partials.json",
        data_dir / "states" / "jobs" / batch_job_id / "partials.json",
    ]
    for path in owned_files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"state")
    assert blob.exists() and kept_blob.exists()

    libpq_url = running_service.env["DOCPROC_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq_url, autocommit=True) as connection:
        past = datetime.now(UTC) - timedelta(seconds=1)
        for table, row_id in (
            ("documents", document["id"]),
            ("jobs", job.json()["id"]),
            ("batches", batch_id),
        ):
            connection.execute(f"UPDATE {table} SET expires_at = %s WHERE id = %s", (past, row_id))
    subprocess.run(
        [sys.executable, "-c", "from workers.tasks import sweep; sweep()"],
        env=running_service.env,
        check=True,
    )

    with running_service.client(running_service.keys[1]) as client:
        for path in (
            f"/v1/documents/{document['id']}",
            f"/v1/jobs/{job.json()['id']}",
            f"/v1/batches/{batch_id}",
        ):
            assert client.get(path).status_code == 404, path
        assert client.get(f"/v1/jobs/{batch_job_id}").status_code == 404
        assert client.get(f"/v1/documents/{kept['id']}").status_code == 200
    assert not blob.exists() and kept_blob.exists()
    for path in owned_files:
        assert not path.parent.exists(), path

"""A worker killed mid-job leaves the job to another worker, which resumes from the job's checkpoint."""

import re
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select

from docproc.models import DocumentState
from model.testing import local_training_text, make_random_checkpoint
from tests.conftest import Service, service_env

LONG_TEXT = Path("/usr/share/common-licenses/GPL-3")


def test_killed_worker_job_is_finished_by_another(database_url: str, tmp_path: Path) -> None:
    env = service_env(tmp_path / "data", database_url, DOCPROC_CHUNK_TOKENS="256", DOCPROC_JOB_LEASE_S="6")
    service = Service(env, tmp_path)
    service.start_api()
    first = service.start_worker()
    try:
        with service.client() as client:
            document = client.post(
                "/v1/documents", files={"file": ("gpl.txt", LONG_TEXT.read_bytes())}
            ).json()
            options = {"max_words": 40, "max_input_tokens": 1800, "method": "abstractive"}  # chunk by chunk
            job = client.post("/v1/jobs", json={"document_id": document["id"], "options": options}).json()

            deadline = time.monotonic() + 300
            while (view := client.get(f"/v1/jobs/{job['id']}").json())["progress"]["tokens_done"] < 512:
                assert view["status"] in ("queued", "running") and time.monotonic() < deadline, view
                time.sleep(0.2)
            done_at_kill = view["progress"]["tokens_done"]
            service.kill(first)
            checkpoint = tmp_path / "data" / "states" / "jobs" / job["id"] / "partials.json"
            assert checkpoint.exists()

            service.start_worker()
            finished = service.wait_job(client, job["id"], {"succeeded", "failed", "cancelled"})
            assert finished["status"] == "succeeded", finished
            assert finished["attempts"] == 2
            assert finished["progress"]["tokens_done"] == finished["progress"]["tokens_total"] > done_at_kill
            assert client.get(f"/v1/jobs/{job['id']}/result").json()["summary"]
            assert not checkpoint.exists()
    finally:
        service.stop()


def test_killed_worker_resumes_a_streamed_read_from_its_checkpoint(database_url: str, tmp_path: Path) -> None:
    """With a Qwen3-Next checkpoint the document is read in one pass; a new worker resumes the read."""
    checkpoint = make_random_checkpoint(tmp_path / "qwen3-next-tiny")
    document = tmp_path / "licenses.txt"
    document.write_text(local_training_text())
    settings = {"DOCPROC_CHUNK_TOKENS": "512", "DOCPROC_CHECKPOINT_EVERY_TOKENS": "8192"}
    env = service_env(
        tmp_path / "data", database_url, DOCPROC_MODEL=str(checkpoint), DOCPROC_JOB_LEASE_S="6", **settings
    )
    service = Service(env, tmp_path)
    service.start_api()
    first = service.start_worker()
    options = {"max_words": 12, "seed": 7}
    try:
        with service.client() as client:
            uploaded = client.post(
                "/v1/documents", files={"file": ("licenses.txt", document.read_bytes())}
            ).json()
            job = client.post("/v1/jobs", json={"document_id": uploaded["id"], "options": options}).json()
            deadline = time.monotonic() + 300
            while (view := client.get(f"/v1/jobs/{job['id']}").json())["progress"]["tokens_done"] < 20000:
                assert view["status"] in ("queued", "running") and time.monotonic() < deadline, view
                time.sleep(0.1)
            service.kill(first)
            assert view["progress"]["tokens_done"] < view["progress"]["tokens_total"]

            second = service.start_worker()
            finished = service.wait_job(client, job["id"], {"succeeded", "failed", "cancelled"})
            assert finished["status"] == "succeeded", finished
            assert finished["attempts"] == 2
            summary = client.get(f"/v1/jobs/{job['id']}/result").json()["summary"]
            assert_state_kept_then_deleted(client, database_url, tmp_path / "data", uploaded["id"], finished)
    finally:
        service.stop()
    resumed_at = re.search(r"resuming the read at token (\d+)", service.log_of(second))
    assert resumed_at and int(resumed_at.group(1)) % 8192 == 0 and int(resumed_at.group(1)) >= 8192

    # The same job, uninterrupted, in this process: the same summary.
    from docproc.engine.hybrid import HybridEngine
    from docproc.ingestion import extract
    from docproc.pipeline import ProgressReporter, SummarizeOptions, Workspace, summarize

    expected = summarize(
        HybridEngine(checkpoint, name=checkpoint.stem),
        extract(document).pages,
        SummarizeOptions(**options),
        ProgressReporter(),
        Workspace(tmp_path / "fresh" / "job", "document"),
        chunk_tokens=512,
        checkpoint_every_tokens=8192,
    )
    assert summary == expected.text


def assert_state_kept_then_deleted(
    client: httpx.Client, database_url: str, data_dir: Path, document_id: str, job: dict
) -> None:
    """The read left the document's state in the store: shown by the document route, deleted with it."""
    files = list((data_dir / "states" / "documents" / document_id).glob("*.safetensors"))
    assert len(files) == 1
    tokens, size = job["progress"]["tokens_total"], files[0].stat().st_size
    assert client.get(f"/v1/documents/{document_id}").json()["state"] == {
        "kept": True,
        "tokens": tokens,
        "bytes": size,
    }
    assert client.delete(f"/v1/documents/{document_id}").status_code == 204
    assert not files[0].parent.exists()
    with create_engine(database_url).connect() as connection:
        kept = select(func.count()).select_from(DocumentState).where(DocumentState.document_id == document_id)
        assert connection.scalar(kept) == 0

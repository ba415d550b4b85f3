"""A worker killed mid-job leaves the job to another worker, which resumes from the job's checkpoint."""

import time
from pathlib import Path

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
            options = {"max_words": 40, "max_input_tokens": 1800}
            job = client.post("/v1/jobs", json={"document_id": document["id"], "options": options}).json()

            deadline = time.monotonic() + 300
            while (view := client.get(f"/v1/jobs/{job['id']}").json())["progress"]["tokens_done"] < 512:
                assert view["status"] in ("queued", "running") and time.monotonic() < deadline, view
                time.sleep(0.2)
            done_at_kill = view["progress"]["tokens_done"]
            service.kill(first)
            checkpoint = tmp_path / "data" / "states" / "jobs" / f"{job['id']}.json"
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

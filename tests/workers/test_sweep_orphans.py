"""The worker's periodic sweep removes what interrupted uploads left in the blob store, and only that."""

import hashlib
import os
import time
from pathlib import Path

from docproc.db import migrate
from tests.conftest import Service, service_env

# Older than the orphan grace period (an hour by default).
LONG_AGO = time.time() - 2 * 3600


def blob(blob_dir: Path, content: bytes) -> Path:
    sha256 = hashlib.sha256(content).hexdigest()
    path = blob_dir / sha256[:2] / sha256
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_sweep_removes_old_orphan_blobs_and_temp_files(database_url: str, tmp_path: Path) -> None:
    migrate(database_url)
    blob_dir = tmp_path / "data" / "blobs"
    orphan = blob(blob_dir, os.urandom(64))
    temp = blob_dir / "upload-interrupted"
    temp.write_bytes(b"half an upload")
    for path in (orphan, temp):
        os.utime(path, (LONG_AGO, LONG_AGO))
    young_orphan = blob(blob_dir, os.urandom(64))
    # The sweep runs every job_lease_s / 2.
    service = Service(service_env(tmp_path / "data", database_url, DOCPROC_JOB_LEASE_S="2"), tmp_path)
    worker = service.start_worker()
    try:
        deadline = time.monotonic() + 120
        while orphan.exists() or temp.exists():
            assert time.monotonic() < deadline and worker.poll() is None, service.log_of(worker)
            time.sleep(0.2)
        assert young_orphan.exists()
    finally:
        service.stop()

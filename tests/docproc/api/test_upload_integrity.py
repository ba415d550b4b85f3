"""Blob store and documents table agree: under simultaneous uploads, a killed API, a failing database."""

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import Service, service_env

GPL = Path("/usr/share/common-licenses/GPL-3").read_bytes()
# Counting the tokens of this takes seconds: time to kill the API, or its database connection, meanwhile.
SLOW_TO_EXTRACT = GPL * 100
# Older than the orphan grace period (an hour by default).
LONG_AGO = time.time() - 2 * 3600


def files_in(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


def wait_for_file_of_size(directory: Path, size: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for path in files_in(directory):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_size == size:
                    return
        time.sleep(0.05)
    raise TimeoutError(f"no file of {size} bytes in {directory}")


def upload(service: Service, content: bytes, name: str = "notes.txt") -> httpx.Response:
    with service.client(service.keys[0]) as client:
        return client.post("/v1/documents", files={"file": (name, content)})


def upload_cut_short(service: Service, content: bytes) -> None:
    with contextlib.suppress(httpx.TransportError):
        upload(service, content)


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[Service]:
    """An API server (not yet started) with a key of its own, so that its documents are its own."""
    key = f"key-{uuid.uuid4().hex}"
    service = Service(service_env(tmp_path / "data", database_url, DOCPROC_API_KEYS=key), tmp_path)
    service.keys = [key]
    yield service
    service.stop()


def test_simultaneous_uploads_of_one_file_make_one_document(api: Service, tmp_path: Path) -> None:
    content = GPL * 4
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda _: upload(api, content), range(16)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 15 + [201], [response.text for response in responses]
    assert len({response.json()["id"] for response in responses}) == 1
    with api.client(api.keys[0]) as client:
        assert client.get("/v1/documents").json()["total"] == 1
    sha256 = responses[0].json()["sha256"]
    blob_dir = tmp_path / "data" / "blobs"
    assert files_in(blob_dir) == [blob_dir / sha256[:2] / sha256]


def test_api_killed_mid_upload_leaves_nothing_after_restart(service: Service, tmp_path: Path) -> None:
    blob_dir = tmp_path / "data" / "blobs"
    service.start_api()
    kept = upload(service, f"A document that stays: {uuid.uuid4()}".encode())
    assert kept.status_code == 201, kept.text
    with ThreadPoolExecutor(1) as pool:
        cut_short = pool.submit(upload_cut_short, service, SLOW_TO_EXTRACT)
        wait_for_file_of_size(blob_dir, len(SLOW_TO_EXTRACT))
        Service.kill(service.processes[0])
        cut_short.result()
    left_behind = [path for path in files_in(blob_dir) if path.stat().st_size == len(SLOW_TO_EXTRACT)]
    assert left_behind
    for path in files_in(blob_dir):
        os.utime(path, (LONG_AGO, LONG_AGO))
    # A file within the grace period may be an upload in flight (of another API process): it is kept.
    in_flight = blob_dir / "upload-in-flight"
    in_flight.write_bytes(b"arriving")

    service.start_api()
    sha256 = kept.json()["sha256"]
    assert files_in(blob_dir) == sorted([blob_dir / sha256[:2] / sha256, in_flight])
    assert upload(service, f"A document that stays: {uuid.uuid4()}".encode()).status_code == 201


def test_database_lost_mid_upload_leaves_no_blob(postgres_database: str, tmp_path: Path) -> None:
    key = f"key-{uuid.uuid4().hex}"
    service = Service(service_env(tmp_path / "data", postgres_database, DOCPROC_API_KEYS=key), tmp_path)
    service.keys = [key]
    service.start_api()
    admin_url, database = postgres_database.replace("+psycopg", "").rsplit("/", 1)
    try:
        with (
            ThreadPoolExecutor(1) as pool,
            psycopg.connect(f"{admin_url}/{database}", autocommit=True) as admin,
        ):
            response = pool.submit(upload, service, SLOW_TO_EXTRACT)
            # The upload holds a transaction open while it counts tokens: its connection is cut then.
            deadline = time.monotonic() + 120
            while not admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND state = 'idle in transaction'"
            ).fetchall():
                assert time.monotonic() < deadline, "the upload never reached the database"
                time.sleep(0.05)
            assert response.result().status_code == 500
        assert files_in(tmp_path / "data" / "blobs") == []
        with service.client(key) as client:
            assert client.get("/v1/documents").json()["total"] == 0
        assert (
            upload(service, b"The service works on after losing its database connection.").status_code == 201
        )
    finally:
        service.stop()

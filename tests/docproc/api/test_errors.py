"""No request makes the server fail, and every error has the one envelope and echoes nothing large."""

import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from tests.conftest import Service
from tests.docproc.api.conftest import start_api


def upload_text(client: httpx.Client) -> dict:
    """A small text document of its own (unique content, so never deduplicated)."""
    text = f"Notes {uuid.uuid4().hex} about the cooperative's solar panels.\n".encode() * 20
    response = client.post("/v1/documents", files={"file": ("notes.txt", text)})
    assert response.status_code == 201, response.text
    return response.json()


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text[:500]
    detail = response.json()["detail"]
    assert detail["code"] == code and isinstance(detail["message"], str)
    assert set(detail) <= {"code", "message", "errors"}
    return detail


@pytest.mark.parametrize("path", ["/v1/documents", "/v1/jobs", "/v1/batches"])
def test_listing_numbers_are_bounded(module_api: Service, path: str) -> None:
    with module_api.client(module_api.keys[0]) as client:
        for params in ({"offset": 2**63}, {"offset": 10**30}, {"limit": 10**30}, {"offset": -1}):
            detail = assert_envelope(client.get(path, params=params), 422, "invalid_request")
            (error,) = detail["errors"]
            assert error["loc"] == ["query", next(iter(params))] and "input" not in error
        assert client.get(path, params={"offset": 2**31 - 1}).json()["data"] == []


def test_seed_is_bounded(module_api: Service) -> None:
    with module_api.client(module_api.keys[0]) as client:
        document = upload_text(client)
        for seed in (10**30, -1):
            body = {"document_id": document["id"], "options": {"seed": seed}}
            detail = assert_envelope(client.post("/v1/jobs", json=body), 422, "invalid_options")
            assert detail["errors"][0]["loc"] == ["seed"]


def test_deeply_nested_jsonl_line_is_refused(module_api: Service) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with module_api.client(module_api.keys[0]) as client:
        response = client.post("/v1/batches", files={"file": ("batch.jsonl", deep + b"\n")})
        assert response.status_code == 201, response.text[:500]
        (error,) = response.json()["errors"]
        assert error["code"] == "invalid_json" and "nested too deeply" in error["message"]


def test_nul_bytes_are_refused_or_match_nothing(module_api: Service) -> None:
    """PostgreSQL refuses NUL in text: an id with one cannot exist, a file name with one is refused."""
    with module_api.client(module_api.keys[0]) as client:
        document = upload_text(client)
        for path in ("/v1/documents/doc_%00", "/v1/jobs/job_%00", "/v1/batches/batch_%00"):
            assert_envelope(client.get(path), 404, "not_found")
        assert_envelope(client.post("/v1/jobs/job_%00/cancel"), 404, "not_found")
        assert_envelope(client.post("/v1/jobs", json={"document_id": "doc_\x00"}), 404, "not_found")
        assert client.get("/v1/jobs", params={"document_id": "\x00"}).json()["total"] == 0

        batch = client.post("/v1/batches", json={"document_ids": [document["id"], "\x00"]})
        assert batch.status_code == 201, batch.text
        assert [e["code"] for e in batch.json()["errors"]] == ["not_found"]

        jsonl = (
            b'{"custom_id": "a\\u0000", "document_id": "%s"}\n' % document["id"].encode()
            + b'{"custom_id": "b", "document_id": "doc_\\u0000"}\n'
        )
        batch = client.post("/v1/batches", files={"file": ("batch.jsonl", jsonl)})
        assert batch.status_code == 201, batch.text
        errors = batch.json()["errors"]
        assert [(e["line"], e["code"], e["custom_id"]) for e in errors] == [
            (1, "invalid_line", None),
            (2, "not_found", "b"),
        ]

        # Built by hand: HTTP clients percent-encode control characters in multipart file names.
        body = (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a\x00.txt"\r\n\r\n'
            b"Plain notes about the cooperative.\r\n--b--\r\n"
        )
        upload = client.post(
            "/v1/documents", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
        assert_envelope(upload, 422, "invalid_filename")


def test_framework_errors_use_the_envelope(module_api: Service) -> None:
    with module_api.client(module_api.keys[0]) as client:
        detail = assert_envelope(client.post("/v1/jobs", json={"task": "summarize"}), 422, "invalid_request")
        assert detail["errors"] == [
            {"loc": ["body", "document_id"], "type": "missing", "msg": "Field required"}
        ]
        assert_envelope(client.post("/v1/jobs", content=b"{not json"), 422, "invalid_request")
        assert_envelope(client.get("/v1/nowhere"), 404, "not_found")
        assert_envelope(client.get("/nowhere"), 404, "not_found")
        not_allowed = client.delete("/v1/jobs")
        assert_envelope(not_allowed, 405, "method_not_allowed")
        assert "POST" in not_allowed.headers["allow"]


def test_errors_do_not_echo_large_input(module_api: Service) -> None:
    huge = "x" * 1_500_000  # under the upload limit of the test server
    with module_api.client(module_api.keys[0]) as client:
        document = upload_text(client)
        cases = [
            (client.post("/v1/jobs", json={"document_id": huge}), 404, "not_found"),
            (
                client.post("/v1/jobs", json={"document_id": document["id"], "task": huge}),
                422,
                "invalid_request",
            ),
            (
                client.post("/v1/jobs", json={"document_id": document["id"], "options": {huge: 1}}),
                422,
                "invalid_options",
            ),
            (
                client.post(
                    "/v1/jobs", json={"document_id": document["id"], "options": {"instructions": huge}}
                ),
                422,
                "invalid_options",
            ),
            (client.post("/v1/batches", json={"document_ids": [huge]}), 201, None),
            (client.post("/v1/batches", json={"document_ids": huge}), 422, "invalid_request"),
        ]
        for response, status, code in cases:
            if code is not None:
                assert_envelope(response, status, code)
            assert response.status_code == status and len(response.content) < 4000, response.content[:300]
        # A long id in the URL (httpx sends up to 64 KiB): refused by the header limit, or not found.
        by_url = client.get(f"/v1/documents/{'x' * 60_000}")
        assert by_url.status_code in (400, 404, 414, 431) and len(by_url.content) < 4000


def test_unexpected_failure_is_a_logged_500_with_the_envelope(module_api: Service) -> None:
    """A broken database (a table gone) is not the client's fault: 500, the envelope, connection closed."""
    engine = sqlalchemy.create_engine(module_api.env["DOCPROC_DATABASE_URL"])
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("ALTER TABLE batches RENAME TO batches_away"))
    try:
        with module_api.client(module_api.keys[0]) as client:
            response = client.get("/v1/batches")
            detail = assert_envelope(response, 500, "internal_error")
            assert "batches" not in detail["message"]
            assert response.headers["connection"] == "close"
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("ALTER TABLE batches_away RENAME TO batches"))
        engine.dispose()
    log = next(path for path in module_api.log_dir.glob("api-*.log")).read_text()
    assert "GET /v1/batches failed" in log


def test_unreachable_queue_is_a_503_that_names_no_internals(tmp_path: Path, default_model: Path) -> None:
    socket_path = tmp_path / "no-broker.sock"
    service = start_api(
        f"sqlite:///{tmp_path / 'docproc.db'}", tmp_path, DOCPROC_BROKER_URL=f"redis+socket://{socket_path}"
    )
    try:
        with service.client(service.keys[0]) as client:
            document = upload_text(client)
            for response in (
                client.post("/v1/jobs", json={"document_id": document["id"]}),
                client.post("/v1/batches", json={"document_ids": [document["id"]]}),
            ):
                assert_envelope(response, 503, "queue_unavailable")
                assert str(tmp_path) not in response.text and "sock" not in response.text
            job = client.get("/v1/jobs").json()["data"][0]
            assert job["status"] == "failed" and str(tmp_path) not in job["error"]["message"]
    finally:
        service.stop()
    assert str(socket_path) in next(tmp_path.glob("api-*.log")).read_text()  # the operator learns why

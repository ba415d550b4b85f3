"""The key is checked before any work, and slow or oversized requests cannot hold the server."""

import json
import socket
import time

import httpx

from tests.conftest import Service

BODY_TIMEOUT_S = 3
API_ENV = {"DOCPROC_REQUEST_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S), "DOCPROC_MAX_HEADER_BYTES": "8192"}
# A generous bound for a loaded machine: far below "never answers", independent of the CPU's speed.
ANSWER_WITHIN_S = 30


def raw_request(service: Service, head: str) -> tuple[int, dict[str, str], bytes, float]:
    """Send a request's head (and no body), read the answer until the server closes the connection."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", service.port), timeout=ANSWER_WITHIN_S) as sock:
        sock.sendall(head.encode("latin-1"))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    header_block, _, body = rest.partition(b"\r\n\r\n")
    fields = (line.decode().split(": ", 1) for line in header_block.split(b"\r\n") if line)
    headers = {name.lower(): value for name, value in fields}
    return int(status_line.split()[1]), headers, body, time.monotonic() - started


def upload_head(authorization: str | None, content_length: int) -> str:
    lines = [
        "POST /v1/documents HTTP/1.1",
        "Host: localhost",
        "Content-Type: multipart/form-data; boundary=b",
        f"Content-Length: {content_length}",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return "\r\n".join(lines) + "\r\n\r\n"


def test_key_is_checked_before_the_body_is_read(module_api: Service) -> None:
    # A body announced but never sent: without a valid key the answer comes at once, and the connection ends.
    for authorization in (None, "Bearer wrong-key", "Basic " + module_api.keys[0]):
        status, headers, body, _ = raw_request(module_api, upload_head(authorization, 1_000_000))
        assert status == 401 and json.loads(body)["detail"]["code"] == "unauthorized"
        assert headers["www-authenticate"] == "Bearer" and headers["connection"] == "close"


def test_non_ascii_key_is_refused(module_api: Service) -> None:
    with httpx.Client(base_url=module_api.url) as client:
        for key in ("Bearer cl\xe9".encode("latin-1"), "Bearer clé".encode(), b"Bearer \xff\xfe"):
            for path in ("/v1/documents", "/v1/jobs", "/v1/batches/batch_0"):
                response = client.get(path, headers={"Authorization": key})
                assert response.status_code == 401, response.text
                assert response.json()["detail"]["code"] == "unauthorized"


def test_keys_still_own_what_they_create(module_api: Service) -> None:
    with module_api.client(module_api.keys[0]) as alice, module_api.client(module_api.keys[1]) as bob:
        created = alice.post("/v1/documents", files={"file": ("a.txt", b"Notes about owners.\n" * 20)})
        assert created.status_code in (200, 201), created.text
        assert alice.get(f"/v1/documents/{created.json()['id']}").status_code == 200
        assert bob.get(f"/v1/documents/{created.json()['id']}").status_code == 404


def test_stalled_body_is_answered_408(module_api: Service) -> None:
    head = upload_head(f"Bearer {module_api.keys[0]}", 100_000)
    status, headers, body, elapsed = raw_request(module_api, head)
    assert status == 408 and json.loads(body)["detail"]["code"] == "request_timeout"
    assert headers["connection"] == "close"
    assert BODY_TIMEOUT_S <= elapsed < ANSWER_WITHIN_S


def test_oversized_headers_are_refused(module_api: Service) -> None:
    head = f"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: {'x' * 20_000}\r\n\r\n"
    status, headers, _, _ = raw_request(module_api, head)
    assert status in (400, 431) and headers["connection"] == "close"
    # The server is unharmed.
    assert httpx.get(f"{module_api.url}/healthz").status_code == 200

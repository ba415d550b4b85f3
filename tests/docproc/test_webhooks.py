"""Webhooks end to end: a real receiver on loopback, the live API and worker, signatures checked with
standardwebhooks; and the URL checks that keep webhooks off private networks."""

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from docproc import db, webhooks
from docproc.errors import ServiceError
from docproc.models import WebhookAttempt, WebhookDelivery, WebhookStatus, utcnow
from docproc.settings import get_settings
from tests.conftest import WEBHOOK_SECRET, Service


class Receiver:
    """An HTTP server on loopback that records every request and answers with `status`."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes, float]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append((dict(self.headers.items()), body, time.monotonic()))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        """Each request's body, after checking its signature as a receiver would."""
        return [Webhook(WEBHOOK_SECRET).verify(body, headers) for headers, body, _ in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver(200)
    yield started
    started.server.shutdown()


def wait_for(condition, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


def upload(client, text: bytes) -> str:  # type: ignore[no-untyped-def]
    return client.post("/v1/documents", files={"file": ("notes.txt", text)}).json()["id"]


def test_a_job_end_is_posted_signed_once(live_service: Service, receiver: Receiver) -> None:
    with live_service.client() as client:
        document_id = upload(client, b"The cooperative installed 40 solar roofs in 2024.")
        body = {"document_id": document_id, "options": {"method": "extractive"}, "webhook_url": receiver.url}
        job = client.post("/v1/jobs", json=body).json()
        assert job["webhook"] == {"status": "pending", "attempts": 0, "last_error": None}
        done = wait_for(
            lambda: (j := client.get(f"/v1/jobs/{job['id']}").json())["webhook"]["status"] != "pending" and j
        )
    assert done["status"] == "succeeded"
    assert done["webhook"] == {"status": "delivered", "attempts": 1, "last_error": None}
    (event,) = receiver.events()
    assert event["type"] == "job.succeeded"
    assert event["data"] == {key: value for key, value in done.items() if key != "webhook"}
    headers = receiver.requests[0][0]
    assert headers["webhook-id"].startswith("msg_") and headers["content-type"] == "application/json"


def test_a_failing_receiver_gets_retries_with_backoff_then_is_given_up(live_service: Service) -> None:
    failing = Receiver(500)
    try:
        with live_service.client() as client:
            document_id = upload(client, b"A second note: 12 batteries were added in March.")
            body = {
                "document_id": document_id,
                "options": {"method": "extractive"},
                "webhook_url": failing.url,
            }
            job = client.post("/v1/jobs", json=body).json()
            done = wait_for(
                lambda: (
                    (j := client.get(f"/v1/jobs/{job['id']}").json())["webhook"]["status"] == "failed" and j
                )
            )
    finally:
        failing.server.shutdown()
    # Retried for DOCPROC_WEBHOOK_RETRY_FOR_S (3 s), waits doubling from 0.2 s up to 0.8 s: about 5 attempts.
    attempts = len(failing.requests)
    assert 3 <= attempts <= 8, attempts
    assert done["webhook"] == {"status": "failed", "attempts": attempts, "last_error": "HTTP 500"}
    events = failing.events()  # every attempt signed, the same message each time
    assert {headers["webhook-id"] for headers, _, _ in failing.requests} == {
        failing.requests[0][0]["webhook-id"]
    }
    assert all(event == events[0] for event in events)
    gaps = [
        later[2] - earlier[2] for earlier, later in zip(failing.requests, failing.requests[1:], strict=False)
    ]
    assert gaps[0] >= 0.15 and gaps[-1] > gaps[0], gaps


def test_a_batch_end_is_posted_once(live_service: Service, receiver: Receiver) -> None:
    with live_service.client() as client:
        ids = [upload(client, f"Note {n}: the site produced {n * 7} MWh.".encode()) for n in range(3)]
        body = {"document_ids": ids, "options": {"method": "extractive"}, "webhook_url": receiver.url}
        batch = client.post("/v1/batches", json=body).json()
        done = wait_for(
            lambda: (
                (b := client.get(f"/v1/batches/{batch['id']}").json())["webhook"]["status"] != "pending" and b
            )
        )
        # The items have no webhook of their own.
        items = client.get("/v1/jobs", params={"limit": 200}).json()["data"]
        assert all(job["webhook"] is None for job in items if job["batch_id"] == batch["id"])
    assert done["status"] == "completed" and done["webhook"]["status"] == "delivered"
    (event,) = receiver.events()
    assert event["type"] == "batch.completed" and event["data"]["request_counts"]["completed"] == 3


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.org/hook", "invalid_webhook_url"),
        ("http:///hook", "invalid_webhook_url"),
        ("http://127.0.0.1:9000/hook", "webhook_url_not_allowed"),
        ("http://localhost/hook", "webhook_url_not_allowed"),
        ("http://[::1]/hook", "webhook_url_not_allowed"),
        ("http://169.254.169.254/latest/meta-data", "webhook_url_not_allowed"),
        ("http://10.1.2.3/hook", "webhook_url_not_allowed"),
        ("http://[::ffff:192.168.0.1]/hook", "webhook_url_not_allowed"),
        ("http://no-such-host.invalid/hook", "invalid_webhook_url"),
    ],
)
def test_private_and_malformed_targets_are_refused(
    url: str, code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCPROC_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.delenv("DOCPROC_WEBHOOK_ALLOW_PRIVATE", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(ServiceError) as refused:
            webhooks.check_url(url)
    finally:
        get_settings.cache_clear()
    assert (refused.value.status, refused.value.code) == (422, code)


def test_the_api_refuses_a_bad_target_with_its_code(live_service: Service) -> None:
    with live_service.client() as client:
        document_id = upload(client, b"Refusals leave nothing behind.")
        before = client.get("/v1/jobs").json()["total"]
        answer = client.post(
            "/v1/jobs", json={"document_id": document_id, "webhook_url": "file:///etc/passwd"}
        )
        assert answer.status_code == 422
        assert answer.json()["detail"]["code"] == "invalid_webhook_url"
        assert client.get("/v1/jobs").json()["total"] == before


@pytest.fixture
def local_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's settings and sessions on a fresh SQLite file, with webhooks on."""
    monkeypatch.setenv("DOCPROC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DOCPROC_DATABASE_URL", f"sqlite:///{tmp_path / 'docproc.db'}")
    monkeypatch.setenv("DOCPROC_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("DOCPROC_WEBHOOK_ALLOW_PRIVATE", "1")
    caches = (get_settings, db.get_engine, db._session_factory)
    for cached in caches:
        cached.cache_clear()
    db.migrate()
    yield
    db.get_engine().dispose()
    for cached in caches:
        cached.cache_clear()


def test_a_delivery_whose_task_was_lost_is_sent_by_the_sweep(
    local_database: None, receiver: Receiver
) -> None:
    """A worker that died holding a delivery's task (or a broker that lost it) leaves the delivery pending in
    the database, its next attempt long past: the sweep takes it once, and the attempt delivers it."""
    long_ago = utcnow() - timedelta(hours=2)
    with db.session_scope() as session:
        lost = WebhookDelivery(url=receiver.url, payload='{"type":"job.succeeded"}', next_attempt_at=long_ago)
        in_flight = WebhookDelivery(
            url=receiver.url,
            payload="{}",
            next_attempt_at=long_ago,
            claimed_until=utcnow() + timedelta(minutes=1),
        )
        session.add_all([lost, in_flight])
    assert webhooks.take_overdue(grace_s=60) == [lost.id]
    assert webhooks.take_overdue(grace_s=60) == []  # another sweeper, or the next round: sent once
    assert webhooks.attempt(in_flight.id) is None and not receiver.requests  # held by a live attempt
    assert webhooks.attempt(lost.id) is None
    assert webhooks.attempt(lost.id) is None  # a duplicate task finds it delivered
    assert [event["type"] for event in receiver.events()] == ["job.succeeded"]
    with db.session_scope() as session:
        delivered = session.get_one(WebhookDelivery, lost.id)
        assert (delivered.status, delivered.attempts) == (WebhookStatus.delivered, 1)
        (attempt,) = session.scalars(select(WebhookAttempt))
        assert (attempt.delivery_id, attempt.number, attempt.status_code, attempt.error) == (
            lost.id,
            1,
            200,
            None,
        )

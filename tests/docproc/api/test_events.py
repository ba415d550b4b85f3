"""Live progress over Server-Sent Events from the live uvicorn: progress while tokens advance, the final
status event, resuming with Last-Event-ID, owner checks."""

from pathlib import Path

import httpx
from httpx_sse import connect_sse

from tests.conftest import Service

# A few dozen chunks of DOCPROC_CHUNK_TOKENS (64): progress in many steps, in seconds on the tiny model.
TEXT = Path("/usr/share/common-licenses/GPL-3").read_bytes()[:4000]


def read_events(client: httpx.Client, path: str, last_event_id: str | None = None, stop_after: int = 0):  # type: ignore[no-untyped-def]
    """(id, event, data) of each event, until the stream ends or `stop_after` events were read."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events = []
    with connect_sse(client, "GET", path, headers=headers) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for event in source.iter_sse():
            if not event.data:  # a heartbeat: httpx-sse makes an event of the comment line
                continue
            events.append((int(event.id), event.event, event.json()))
            if len(events) == stop_after:
                break
    return events


def test_job_progress_then_the_final_status_and_a_resume(live_service: Service) -> None:
    with live_service.client() as client:
        document = client.post("/v1/documents", files={"file": ("gpl.txt", TEXT)}).json()
        body = {"document_id": document["id"], "options": {"method": "abstractive", "max_words": 20}}
        job = client.post("/v1/jobs", json=body).json()
        path = f"/v1/jobs/{job['id']}/events"

        first = read_events(client, path, stop_after=2)  # then the connection drops
        rest = read_events(client, path, last_event_id=str(first[-1][0]))
        final_view = client.get(f"/v1/jobs/{job['id']}").json()
        after_end = read_events(client, path, last_event_id=str(rest[-1][0]))

    events = first + rest
    ids = [event_id for event_id, _, _ in events]
    assert ids == list(range(1, len(ids) + 1))  # increasing across the reconnection too
    names = [name for _, name, _ in events]
    assert names[-1] == "status" and set(names[:-1]) == {"progress"}
    done = [view["progress"]["tokens_done"] for _, _, view in events]
    # Tokens advanced in steps (partial summaries go DOCPROC_GENERATION_BATCH_SIZE at a time): none, some, all
    assert done == sorted(done) and len(set(done)) >= 3, done
    assert all(view["id"] == job["id"] for _, _, view in events)
    assert events[-1][2] == final_view and final_view["status"] == "succeeded"
    # A client that reconnects after the end gets the final event again, with the next id, and the end.
    assert after_end == [(ids[-1] + 1, "status", final_view)]


def test_batch_events_end_with_the_batch_as_get_returns_it(live_service: Service) -> None:
    with live_service.client() as client:
        ids = [
            client.post(
                "/v1/documents", files={"file": (f"{n}.txt", f"Site {n} made {n} MWh.".encode())}
            ).json()["id"]
            for n in range(2)
        ]
        batch = client.post(
            "/v1/batches", json={"document_ids": ids, "options": {"method": "extractive"}}
        ).json()
        events = read_events(client, f"/v1/batches/{batch['id']}/events")
        final_view = client.get(f"/v1/batches/{batch['id']}").json()
    assert events[-1] == (len(events), "status", final_view)
    assert final_view["status"] == "completed"
    assert all(name == "progress" for _, name, _ in events[:-1])


def test_events_of_an_unknown_or_foreign_job_are_404(live_service: Service) -> None:
    with live_service.client() as client:
        for path in ("/v1/jobs/job_" + "0" * 32 + "/events", "/v1/batches/batch_" + "0" * 32 + "/events"):
            answer = client.get(path)
            assert answer.status_code == 404 and answer.json()["detail"]["code"] == "not_found"

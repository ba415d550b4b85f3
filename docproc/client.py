"""A Python client for the docproc REST API (sync, on httpx).

    with Client("http://127.0.0.1:8000", api_key="...") as client:
        document = client.upload("report.pdf")
        job = client.submit(document["id"], "summarize", {"max_words": 100})
        job = client.wait(job["id"], on_progress=print)  # over the job's event stream
        print(client.result(job["id"])["summary"])

Every method returns the server's JSON as it is (see the README's REST API tables). An error answer raises
`ApiError` with the server's status, code and message. `task` and `options` are passed through as given, so
new tasks need no new client.
"""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

from docproc.errors import ServiceError

# Events of a stream that ends a job's or batch's wait.
FINAL_EVENT = "status"
# A dropped event stream is reopened (with Last-Event-ID) at most this many times without an event between.
MAX_RECONNECTS = 5

Json = dict[str, Any]


class ApiError(ServiceError):
    """An error answer from the server: its HTTP status, its code (`not_found`, `invalid_request`, ...) and
    its message."""


class Client:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # An event stream's read waits for the next event or heartbeat; the server sends one well within this.
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(503, "server_unreachable", f"{self.http.base_url} did not answer: {exc}.") from exc
        _raise_for_error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # Documents

    def upload(self, file: str | Path, password: str | None = None) -> Json:
        path = Path(file)
        with path.open("rb") as source:
            data = {"password": password} if password is not None else None
            return self._json("POST", "/v1/documents", files={"file": (path.name, source)}, data=data)

    def document(self, document_id: str) -> Json:
        return self._json("GET", f"/v1/documents/{document_id}")

    def documents(self, limit: int = 50, offset: int = 0) -> Json:
        return self._json("GET", "/v1/documents", params={"limit": limit, "offset": offset})

    def delete_document(self, document_id: str) -> None:
        self._request("DELETE", f"/v1/documents/{document_id}")

    # Jobs

    def submit(
        self,
        document_id: str,
        task: str = "summarize",
        options: Json | None = None,
        webhook_url: str | None = None,
    ) -> Json:
        body: Json = {"document_id": document_id, "task": task, "options": options or {}}
        if webhook_url is not None:
            body["webhook_url"] = webhook_url
        return self._json("POST", "/v1/jobs", json=body)

    def job(self, job_id: str) -> Json:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def jobs(
        self, status: str | None = None, document_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> Json:
        params = {"status": status, "document_id": document_id, "limit": limit, "offset": offset}
        return self._json("GET", "/v1/jobs", params={k: v for k, v in params.items() if v is not None})

    def result(self, job_id: str) -> Json:
        return self._json("GET", f"/v1/jobs/{job_id}/result")

    def cancel(self, job_id: str) -> Json:
        return self._json("POST", f"/v1/jobs/{job_id}/cancel")

    def job_events(self, job_id: str) -> Iterator[tuple[str, Json]]:
        """The job's live events, (`progress` or `status`, the job), until the final `status` one."""
        return self._events(f"/v1/jobs/{job_id}/events")

    def wait(self, job_id: str, on_progress: Callable[[Json], None] | None = None) -> Json:
        """Follow the job's event stream until it has ended; returns the job as it ended."""
        return self._wait(self.job_events(job_id), on_progress)

    # Batches

    def create_batch(
        self,
        document_ids: list[str],
        task: str = "summarize",
        options: Json | None = None,
        webhook_url: str | None = None,
    ) -> Json:
        body: Json = {"document_ids": document_ids, "task": task, "options": options or {}}
        if webhook_url is not None:
            body["webhook_url"] = webhook_url
        return self._json("POST", "/v1/batches", json=body)

    def create_batch_from_jsonl(self, lines: list[Json], webhook_url: str | None = None) -> Json:
        """A batch of `{custom_id, document_id, task?, options?}` requests, sent as a JSONL file."""
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        data = {"webhook_url": webhook_url} if webhook_url is not None else None
        return self._json("POST", "/v1/batches", files={"file": ("batch.jsonl", content)}, data=data)

    def batch(self, batch_id: str) -> Json:
        return self._json("GET", f"/v1/batches/{batch_id}")

    def batches(self, limit: int = 50, offset: int = 0) -> Json:
        return self._json("GET", "/v1/batches", params={"limit": limit, "offset": offset})

    def cancel_batch(self, batch_id: str) -> Json:
        return self._json("POST", f"/v1/batches/{batch_id}/cancel")

    def batch_results(self, batch_id: str) -> Iterator[bytes]:
        """The results file's lines (JSON, each ending in a newline), as the server streams them."""
        with self.http.stream("GET", f"/v1/batches/{batch_id}/results") as response:
            if response.is_error:
                response.read()
                _raise_for_error(response)
            for line in response.iter_lines():
                yield line.encode() + b"\n"

    def batch_events(self, batch_id: str) -> Iterator[tuple[str, Json]]:
        """The batch's live events, (`progress` or `status`, the batch), until the final `status` one."""
        return self._events(f"/v1/batches/{batch_id}/events")

    def wait_batch(self, batch_id: str, on_progress: Callable[[Json], None] | None = None) -> Json:
        """Follow the batch's event stream until it has ended; returns the batch as it ended."""
        return self._wait(self.batch_events(batch_id), on_progress)

    # Event streams

    def _events(self, path: str) -> Iterator[tuple[str, Json]]:
        """Server-Sent Events up to the final one; a dropped connection is reopened with Last-Event-ID."""
        last_id: str | None = None
        breaks = 0
        while breaks <= MAX_RECONNECTS:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with connect_sse(self.http, "GET", path, headers=headers) as source:
                    if source.response.is_error:
                        source.response.read()
                        _raise_for_error(source.response)
                    for event in source.iter_sse():
                        if not event.data:  # a heartbeat (httpx-sse makes one of the comment line)
                            continue
                        last_id, breaks = event.id or last_id, 0
                        yield event.event, event.json()
                        if event.event == FINAL_EVENT:
                            return
            except (httpx.TransportError, SSEError):
                pass  # dropped (a proxy, a restarting server): reopened
            breaks += 1
        raise ApiError(503, "server_unreachable", f"The event stream {path} kept breaking off.")

    @staticmethod
    def _wait(events: Iterator[tuple[str, Json]], on_progress: Callable[[Json], None] | None) -> Json:
        """The last event's object: the stream ends with the final one (or raises)."""
        view: Json = {}
        for _, view in events:
            if on_progress is not None:
                on_progress(view)
        return view


def _raise_for_error(response: httpx.Response) -> None:
    if not response.is_error:
        return
    try:
        detail = response.json()["detail"]
        code, message = detail["code"], detail["message"]
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", f"HTTP {response.status_code}: {response.text[:200]}"
    raise ApiError(response.status_code, code, message, headers=dict(response.headers))

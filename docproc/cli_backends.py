"""Where the CLI's client-side commands do their work: in this process on the database and queue
(`Embedded`, the default), or through a docproc server's REST API (`Remote`, with `--server URL`).

Both answer with the REST API's JSON shapes, so the commands print the same either way. Imports of the service
side stay inside `Embedded`: `Remote` needs only docproc.client (httpx).
"""

import contextlib
import ctypes
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from docproc.client import Client
from docproc.settings import get_settings

Json = dict[str, Any]
Progress = Callable[[Json], None]
FINISHED_JOB = ("succeeded", "failed", "cancelled")
FINISHED_BATCH = ("completed", "failed", "cancelled")
# The embedded mode reads the database this often while it waits.
POLL_S = 0.5


class Backend(ABC):
    """The operations of the client-side commands; every id not found, every refusal raises ServiceError."""

    @abstractmethod
    def upload(self, file: Path, password: str | None = None) -> Json: ...

    @abstractmethod
    def submit(self, document_id: str, task: str, options: Json) -> Json: ...

    @abstractmethod
    def job(self, job_id: str) -> Json:
        """The job, with its `result` once it succeeded."""

    @abstractmethod
    def wait(self, job_id: str, on_progress: Progress) -> Json:
        """Follow the job until it has ended; returns it as `job` does."""

    @abstractmethod
    def cancel(self, job_id: str) -> Json: ...

    @abstractmethod
    def jobs(self, status: str | None, document_id: str | None, limit: int) -> tuple[list[Json], int]: ...

    @abstractmethod
    def result(self, job_id: str) -> Json: ...

    @abstractmethod
    def documents(self, limit: int) -> tuple[list[Json], int]: ...

    @abstractmethod
    def delete_document(self, document_id: str) -> None: ...

    @abstractmethod
    def create_batch(self, items: list[Json]) -> Json:
        """A batch of `{custom_id, document_id, task, options}` requests, queued."""

    @abstractmethod
    def batch(self, batch_id: str) -> Json: ...

    @abstractmethod
    def wait_batch(self, batch_id: str, on_progress: Progress) -> Json: ...

    @abstractmethod
    def batches(self, limit: int) -> tuple[list[Json], int]: ...

    @abstractmethod
    def cancel_batch(self, batch_id: str) -> Json: ...

    @abstractmethod
    def batch_results(self, batch_id: str) -> Iterator[bytes]: ...

    def prepare(self) -> None:  # noqa: B027 (a hook: only the embedded mode has something to do)
        """Before a command submits work."""

    def worker(self, requested: bool | None) -> AbstractContextManager[object]:
        """A worker for the command's duration, if it needs one of its own."""
        return contextlib.nullcontext()

    def left_running(self) -> str:
        """What becomes of a job the command leaves running (for the Ctrl-C question)."""
        return "a worker goes on with it"


class Remote(Backend):
    def __init__(self, server: str, api_key: str | None) -> None:
        self.client = Client(server, api_key)

    def upload(self, file: Path, password: str | None = None) -> Json:
        return self.client.upload(file, password)

    def submit(self, document_id: str, task: str, options: Json) -> Json:
        return self.client.submit(document_id, task, options)

    def _with_result(self, job: Json) -> Json:
        return job | {"result": self.client.result(job["id"])} if job["status"] == "succeeded" else job

    def job(self, job_id: str) -> Json:
        return self._with_result(self.client.job(job_id))

    def wait(self, job_id: str, on_progress: Progress) -> Json:
        return self._with_result(self.client.wait(job_id, on_progress))

    def cancel(self, job_id: str) -> Json:
        return self.client.cancel(job_id)

    def jobs(self, status: str | None, document_id: str | None, limit: int) -> tuple[list[Json], int]:
        page = self.client.jobs(status, document_id, limit)
        return page["data"], page["total"]

    def result(self, job_id: str) -> Json:
        return self.client.result(job_id)

    def documents(self, limit: int) -> tuple[list[Json], int]:
        page = self.client.documents(limit)
        return page["data"], page["total"]

    def delete_document(self, document_id: str) -> None:
        self.client.delete_document(document_id)

    def create_batch(self, items: list[Json]) -> Json:
        return self.client.create_batch_from_jsonl(items)

    def batch(self, batch_id: str) -> Json:
        return self.client.batch(batch_id)

    def wait_batch(self, batch_id: str, on_progress: Progress) -> Json:
        return self.client.wait_batch(batch_id, on_progress)

    def batches(self, limit: int) -> tuple[list[Json], int]:
        page = self.client.batches(limit)
        return page["data"], page["total"]

    def cancel_batch(self, batch_id: str) -> Json:
        return self.client.cancel_batch(batch_id)

    def batch_results(self, batch_id: str) -> Iterator[bytes]:
        self.client.batch(batch_id)  # not found: an error rather than an empty file
        return self.client.batch_results(batch_id)


class Embedded(Backend):
    """The service in this process: the database and the queue of this machine's settings."""

    def __init__(self) -> None:
        self.own_worker = False

    def prepare(self) -> None:
        from docproc.db import migrate

        migrate()

    def left_running(self) -> str:
        return "the next worker resumes it" if self.own_worker else super().left_running()

    def worker(self, requested: bool | None) -> AbstractContextManager[object]:
        self.own_worker = requested if requested is not None else get_settings().broker_url is None
        return worker_process() if self.own_worker else contextlib.nullcontext()

    def upload(self, file: Path, password: str | None = None) -> Json:
        from docproc import service
        from docproc.api.schemas import DocumentOut
        from docproc.db import session_scope

        with session_scope() as session, file.open("rb") as source:
            document, _ = service.add_document(session, None, file.name, source, password)
            return DocumentOut.model_validate(document).model_dump(mode="json")

    def submit(self, document_id: str, task: str, options: Json) -> Json:
        from docproc import service, webhooks
        from docproc.api.schemas import JobOut
        from docproc.db import session_scope
        from workers.celery_app import enqueue_job

        with session_scope() as session:
            job = service.create_job(session, None, document_id, task, options, webhooks.resolve_url(None))
            session.commit()
            view = JobOut.model_validate(job).model_dump(mode="json")
        enqueue_job(view["id"])
        return view

    def job(self, job_id: str) -> Json:
        from docproc import service
        from docproc.api.schemas import JobOut, ResultOut
        from docproc.db import session_scope

        with session_scope() as session:
            job = service.get_job(session, None, job_id)
            view = JobOut.model_validate(job).model_dump(mode="json")
            if job.result is not None:
                view["result"] = ResultOut.model_validate(job.result).model_dump(mode="json")
            return view

    def wait(self, job_id: str, on_progress: Progress) -> Json:
        return _poll(lambda: self.job(job_id), FINISHED_JOB, on_progress)

    def cancel(self, job_id: str) -> Json:
        from docproc import service
        from docproc.api.schemas import JobOut
        from docproc.db import session_scope

        with session_scope() as session:
            return JobOut.model_validate(service.cancel_job(session, None, job_id)).model_dump(mode="json")

    def jobs(self, status: str | None, document_id: str | None, limit: int) -> tuple[list[Json], int]:
        from docproc import service
        from docproc.api.schemas import JobOut
        from docproc.db import session_scope
        from docproc.models import JobStatus

        with session_scope() as session:
            rows, total = service.list_jobs(
                session, None, limit, 0, document_id, JobStatus(status) if status else None
            )
            return [JobOut.model_validate(job).model_dump(mode="json") for job in rows], total

    def result(self, job_id: str) -> Json:
        from docproc import service
        from docproc.api.schemas import ResultOut
        from docproc.db import session_scope

        with session_scope() as session:
            return ResultOut.model_validate(service.get_result(session, None, job_id)).model_dump(mode="json")

    def documents(self, limit: int) -> tuple[list[Json], int]:
        from docproc import service
        from docproc.api.schemas import DocumentOut
        from docproc.db import session_scope

        with session_scope() as session:
            rows, total = service.list_documents(session, None, limit, 0)
            return [DocumentOut.model_validate(d).model_dump(mode="json") for d in rows], total

    def delete_document(self, document_id: str) -> None:
        from docproc import service
        from docproc.db import session_scope

        with session_scope() as session:
            service.delete_document(session, None, document_id)

    def create_batch(self, items: list[Json]) -> Json:
        from docproc import batches, webhooks
        from docproc.db import session_scope
        from workers.celery_app import BATCH_QUEUE, enqueue_job

        specs = [
            batches.ItemSpec(number, item["custom_id"], item["document_id"], item["task"], item["options"])
            for number, item in enumerate(items, start=1)
        ]
        with session_scope() as session:
            created = batches.create_batch(session, None, specs, webhooks.resolve_url(None))
            batches.enqueue_items(session, created, lambda job_id: enqueue_job(job_id, BATCH_QUEUE))
            return self._batch_view(session, created)

    @staticmethod
    def _batch_view(session: Any, batch: Any) -> Json:
        from docproc import batches
        from docproc.api.schemas import BatchOut

        return BatchOut.of(batch, batches.states(session, [batch])[batch.id]).model_dump(mode="json")

    def batch(self, batch_id: str) -> Json:
        from docproc import batches
        from docproc.db import session_scope

        with session_scope() as session:
            return self._batch_view(session, batches.get_batch(session, None, batch_id))

    def wait_batch(self, batch_id: str, on_progress: Progress) -> Json:
        return _poll(lambda: self.batch(batch_id), FINISHED_BATCH, on_progress)

    def batches(self, limit: int) -> tuple[list[Json], int]:
        from docproc import batches
        from docproc.api.schemas import BatchOut
        from docproc.db import session_scope

        with session_scope() as session:
            rows, total = batches.list_batches(session, None, limit, 0)
            states = batches.states(session, rows)
            return [BatchOut.of(row, states[row.id]).model_dump(mode="json") for row in rows], total

    def cancel_batch(self, batch_id: str) -> Json:
        from docproc import batches
        from docproc.db import session_scope

        with session_scope() as session:
            batch = batches.cancel_batch(session, None, batch_id)
            session.commit()
            return self._batch_view(session, batch)

    def batch_results(self, batch_id: str) -> Iterator[bytes]:
        from docproc import batches

        self.batch(batch_id)  # not found: an error rather than an empty file
        return batches.result_lines(batch_id)


def _die_with_parent() -> None:
    # Linux: the kernel kills the worker if this process dies without stopping it (SIGKILL, a crash). Its
    # job's lease then expires and the next worker resumes it.
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def worker_process() -> Iterator[subprocess.Popen[bytes]]:
    """A worker in a child process for the duration of a command; stopped (warm, then killed) at its end."""
    log = (get_settings().data_dir / "worker.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "docproc.cli", "worker", "--loglevel", "warning"],
        stdout=log,
        stderr=log,
        # Its own process group: a terminal's Ctrl-C reaches this command, which decides what the worker does.
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(get_settings().stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _poll(read: Callable[[], Json], finished: tuple[str, ...], on_progress: Progress) -> Json:
    """Read an object every POLL_S until its status is one of `finished`."""
    while True:
        view = read()
        on_progress(view)
        if view["status"] in finished:
            return view
        time.sleep(POLL_S)

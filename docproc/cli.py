"""The `docproc` command: run the API and workers, summarize files, inspect jobs."""

import contextlib
import ctypes
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from docproc.models import JobStatus
from docproc.settings import get_settings

if TYPE_CHECKING:
    from docproc.api.schemas import BatchOut
    from docproc.batches import BatchState

console = Console(stderr=True)
# Without a terminal, progress is a plain line on stderr at most this often (and whenever the status changes).
PLAIN_PROGRESS_EVERY_S = 10.0
POLL_S = 0.5
# docproc.pipeline.Method, spelled out: importing the pipeline takes more than a second.
METHOD_OPTION = click.option(
    "--method",
    type=click.Choice(["auto", "extract_compress", "extractive", "abstractive"]),
    default="auto",
    show_default=True,
    help="How to summarize: auto picks extract_compress for small models, abstractive for others; "
    "extractive uses the document's own key sentences, no model.",
)


class ServiceGroup(click.Group):
    """Every command's ServiceError (an unknown job id, a refused file) ends in a one-line message and exit
    status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        from docproc.errors import ServiceError

        try:
            return super().invoke(ctx)
        except ServiceError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from exc


@click.group(cls=ServiceGroup)
@click.version_option(package_name="docproc", prog_name="docproc")
def main() -> None:
    """docproc: long-context document summarization."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; raised in the main thread so that cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    def interrupt(signum: int, _: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Progress:
    """Progress on stderr: a bar with an ETA on a terminal, plain lines otherwise, or nothing."""

    def __init__(self, unit: str, enabled: bool) -> None:
        self.unit = unit
        self.enabled = enabled
        self.bar: Progress | None = None
        self.started = time.monotonic()
        self.first: tuple[float, int] | None = None  # when progress was first seen moving, and from where
        self.last_line: tuple[float, str] = (0.0, "")

    def __enter__(self) -> "_Progress":
        if self.enabled and console.is_terminal:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self.bar = Progress(*columns, console=console, transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("queued", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)

    def update(self, status: str, done: int, total: int | None) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=f"{status} ({self.unit})", completed=done, total=total)
        elif self.enabled:
            self._line(status, done, total)

    def _line(self, status: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if self.first is None and done > 0:
            self.first = (now, done)
        last_time, last_status = self.last_line
        if status == last_status and now - last_time < PLAIN_PROGRESS_EVERY_S:
            return
        self.last_line = (now, status)
        line = f"{status}: {done}/{total or '?'} {self.unit}, {now - self.started:.0f}s elapsed"
        if self.first is not None and total and done > self.first[1]:
            rate = (done - self.first[1]) / (now - self.first[0])
            line += f", about {(total - done) / rate:.0f}s left"
        click.echo(line, err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--with-worker", is_flag=True, help="Also run a worker process (handy with the embedded queue)."
)
def serve(host: str, port: int, with_worker: bool) -> None:
    """Run the REST API (OpenAPI docs at /docs)."""
    import uvicorn

    from docproc.db import migrate

    migrate()
    # uvicorn stops on SIGINT/SIGTERM, then raises the signal again: caught here, it stops the worker too.
    with _signals_raise():
        try:
            with _worker_process() if with_worker else contextlib.nullcontext():
                uvicorn.run(
                    "docproc.api.app:create_app",
                    factory=True,
                    host=host,
                    port=port,
                    # h11, not httptools: it bounds the request line and headers (httptools reads any size).
                    http="h11",
                    h11_max_incomplete_event_size=get_settings().max_header_bytes,
                )
        except Interrupted as stop:
            sys.exit(128 + stop.signum)


@main.command()
@click.option(
    "--concurrency", type=int, default=None, help="Worker processes (default DOCPROC_WORKER_CONCURRENCY)."
)
@click.option("--queues", default="jobs,batch", show_default=True)
@click.option("--loglevel", default="info", show_default=True)
@click.option("--hostname", default=None, help="Celery node name (default celery@HOST).")
def worker(concurrency: int | None, queues: str, loglevel: str, hostname: str | None) -> None:
    """Run workers: each a process with one model, loaded once, running one job at a time."""
    processes = concurrency or get_settings().worker_concurrency
    if processes == 1:
        from workers.celery_app import app

        # The solo pool runs jobs in this process: forking a process that has loaded torch can leave the
        # child's OpenMP thread pool hung, so concurrency means several such processes instead.
        name = ["--hostname", hostname] if hostname else []
        app.worker_main(["worker", "-Q", queues, "--pool", "solo", "--loglevel", loglevel, *name])
        return
    command = [sys.executable, "-m", "docproc.cli", "worker", "--concurrency", "1", "--queues", queues]
    children = [
        subprocess.Popen([*command, "--loglevel", loglevel, "--hostname", f"worker{i}@%h"])
        for i in range(processes)
    ]

    def forward(signum: int, _: object) -> None:
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    sys.exit(max(child.wait() for child in children))


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to the latest."""
    from docproc.db import migrate

    migrate()
    console.print("database is up to date")


def _die_with_parent() -> None:
    # Linux: the kernel kills the worker if this process dies without stopping it (SIGKILL, a crash). Its
    # job's lease then expires and the next worker resumes it.
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def _worker_process() -> Iterator[subprocess.Popen[bytes]]:
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


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--password", default=None, help="Password of an encrypted PDF.")
@click.option("--max-words", type=int, default=150, show_default=True)
@click.option("--instructions", default=None, help="Extra instructions for the summary.")
@METHOD_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--worker/--no-worker",
    default=None,
    help="Start a worker for this command (default: only with the embedded queue).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar or progress lines.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the result (and errors).")
def summarize(
    file: Path,
    password: str | None,
    max_words: int,
    instructions: str | None,
    method: str,
    as_json: bool,
    worker: bool | None,
    no_progress: bool,
    quiet: bool,
) -> None:
    """Upload FILE, summarize it, wait with a progress bar and print the summary.

    Ctrl-C asks whether to cancel the job or leave it running (without a terminal: cancels it); SIGTERM
    cancels it. Either way the command exits non-zero and stops the worker it started.
    """
    options = {"max_words": max_words, "method": method} | (
        {"instructions": instructions} if instructions else {}
    )
    _run_task(str(file), password, "summarize", options, as_json, worker, no_progress, quiet)


def _task_command(function: Callable[..., None]) -> Callable[..., None]:
    """The options `ask` and `extract` share with `summarize`."""
    for option in reversed(
        [
            click.option("--password", default=None, help="Password of an encrypted PDF."),
            click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
            click.option(
                "--worker/--no-worker",
                default=None,
                help="Start a worker for this command (default: only with the embedded queue).",
            ),
            click.option("--no-progress", is_flag=True, help="No progress bar or progress lines."),
            click.option("--quiet", "-q", is_flag=True, help="Print only the result (and errors)."),
        ]
    ):
        function = option(function)
    return function


@main.command()
@click.argument("source", metavar="FILE_OR_DOCUMENT_ID")
@click.argument("question")
@click.option("--max-words", type=int, default=80, show_default=True)
@_task_command
def ask(
    source: str,
    question: str,
    max_words: int,
    password: str | None,
    as_json: bool,
    worker: bool | None,
    no_progress: bool,
    quiet: bool,
) -> None:
    """Ask a question of a file (uploaded first) or of an uploaded document; print the answer and the quotes
    it rests on, each with its page. A second question on the same document skips reading it again where
    the engine keeps its state."""
    options = {"question": question, "max_words": max_words}
    _run_task(source, password, "ask", options, as_json, worker, no_progress, quiet)


@main.command()
@click.argument("source", metavar="FILE_OR_DOCUMENT_ID")
@click.option(
    "--schema",
    "schema_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON Schema file: an object of properties (objects, arrays, strings, numbers, booleans, enums).",
)
@click.option("--instructions", default=None, help="What to extract, in words.")
@_task_command
def extract(
    source: str,
    schema_file: Path,
    instructions: str | None,
    password: str | None,
    as_json: bool,
    worker: bool | None,
    no_progress: bool,
    quiet: bool,
) -> None:
    """Extract data following a JSON Schema from a file (uploaded first) or an uploaded document; print the
    data as JSON (valid against the schema) and the quotes it rests on."""
    from docproc.errors import ServiceError

    try:
        schema = json.loads(schema_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ServiceError(422, "invalid_schema", f"{schema_file.name} is not JSON: {exc}.") from exc
    options = {"schema": schema} | ({"instructions": instructions} if instructions else {})
    _run_task(source, password, "extract", options, as_json, worker, no_progress, quiet)


def _run_task(
    source: str,
    password: str | None,
    task: str,
    options: dict,
    as_json: bool,
    worker: bool | None,
    no_progress: bool,
    quiet: bool,
) -> None:
    """Upload the file (or take the uploaded document of that id), submit the job, wait, print the result."""
    from docproc import service
    from docproc.db import migrate, session_scope
    from workers.celery_app import enqueue_job

    migrate()
    service.validated_options(task, options)  # before the upload: a refused job leaves nothing behind
    with _signals_raise():
        try:
            with session_scope() as session:
                if Path(source).is_file():
                    with Path(source).open("rb") as file:
                        document, _ = service.add_document(session, None, Path(source).name, file, password)
                else:
                    document = service.get_document(session, None, source)
                job = service.create_job(session, None, document.id, task, options)
            enqueue_job(job.id)
            if not quiet:
                console.print(f"job {job.id} submitted ({document.tokens} tokens)", highlight=False)
            start_worker = worker if worker is not None else get_settings().broker_url is None
            with _worker_process() if start_worker else contextlib.nullcontext():
                try:
                    finished = _wait(job.id, not (quiet or no_progress))
                except Interrupted as stop:
                    _stop_job(job.id, stop.signum, own_worker=start_worker)
                    raise
        except Interrupted as stop:
            sys.exit(128 + stop.signum)
    _print_result(finished, as_json)
    if finished["status"] != "succeeded":
        sys.exit(1)


def _stop_job(job_id: str, signum: int, own_worker: bool) -> None:
    """Cancel the job (SIGTERM, no terminal, or the user's answer to Ctrl-C) and wait until it has stopped."""
    from docproc import service
    from docproc.db import session_scope

    later = "the next worker resumes it" if own_worker else "a worker goes on with it"
    if signum == signal.SIGINT and sys.stdin.isatty():
        leave = not click.confirm(f"\nCancel job {job_id}? (no: leave it running, {later})", default=True)
        if leave:
            console.print(f"job {job_id} left running ({later}): docproc status {job_id}", highlight=False)
            return
    with session_scope() as session:
        service.cancel_job(session, None, job_id)
    console.print(f"cancelling job {job_id}", highlight=False)
    deadline = time.monotonic() + get_settings().stop_timeout_s
    while (status := _job_view(job_id)["status"]) not in ("succeeded", "failed", "cancelled"):
        if time.monotonic() > deadline:
            console.print(f"job {job_id} is still {status}; it stops at its next chunk", highlight=False)
            return
        time.sleep(POLL_S)
    console.print(f"job {job_id} {status}", highlight=False)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("results.jsonl"), show_default=True
)
@click.option("--max-words", type=int, default=150, show_default=True)
@METHOD_OPTION
@click.option(
    "--worker/--no-worker",
    default=None,
    help="Start a worker for this command (default: only with the embedded queue).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar or progress lines.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the final count.")
def batch(
    paths: tuple[Path, ...],
    out: Path,
    max_words: int,
    method: str,
    worker: bool | None,
    no_progress: bool,
    quiet: bool,
) -> None:
    """Summarize FILES (or every file under a DIR) as one batch; write one JSON line per file to --out."""
    from docproc import batches, service
    from docproc.db import migrate, session_scope
    from workers.celery_app import BATCH_QUEUE, enqueue_job

    migrate()
    items: list[batches.ItemSpec] = []
    unreadable: list[bytes] = []
    with session_scope() as session:
        for number, file in enumerate(_files(paths), start=1):
            try:
                with file.open("rb") as source:
                    document, _ = service.add_document(session, None, file.name, source)
            except service.ServiceError as exc:
                console.print(f"[yellow]{file}: {exc.message}")
                error = {"code": exc.code, "message": exc.message}
                unreadable.append(batches.result_line(str(file), None, None, "failed", None, error))
                continue
            items.append(
                batches.ItemSpec(
                    number, str(file), document.id, "summarize", {"max_words": max_words, "method": method}
                )
            )
        if not items:
            raise click.ClickException("No file could be read.")
        created = batches.create_batch(session, None, items)
        batches.enqueue_items(session, created, lambda job_id: enqueue_job(job_id, BATCH_QUEUE))
        batch_id = created.id
    if not quiet:
        console.print(f"batch {batch_id} submitted ({len(items)} files)", highlight=False)
    start_worker = worker if worker is not None else get_settings().broker_url is None
    with _worker_process() if start_worker else contextlib.nullcontext():
        state = _wait_batch(batch_id, not (quiet or no_progress))
    with out.open("wb") as results:
        results.writelines(unreadable)
        results.writelines(batches.result_lines(batch_id))
    console.print(
        f"batch {batch_id} {state.status}: {state.completed} summarized, "
        f"{state.failed + len(unreadable)} failed, {state.cancelled} cancelled; results in {out}"
    )
    if state.completed < state.total or unreadable:
        sys.exit(1)


def _files(paths: tuple[Path, ...]) -> list[Path]:
    """The files named, and those under the directories named (hidden ones left out), in order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = (p for p in sorted(path.rglob("*")) if p.is_file())
            files.extend(
                p for p in inside if not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            files.append(path)
    return files


def _wait_batch(batch_id: str, show_progress: bool) -> "BatchState":
    from docproc import batches
    from docproc.db import session_scope

    with _Progress("files", show_progress) as progress:
        while True:
            with session_scope() as session:
                batch = batches.get_batch(session, None, batch_id)
                state = batches.states(session, [batch])[batch_id]
            finished = state.completed + state.failed + state.cancelled
            progress.update(state.status, finished, state.total)
            if state.status in ("completed", "failed", "cancelled"):
                return state
            time.sleep(POLL_S)


def _job_view(job_id: str) -> dict:
    from docproc import service
    from docproc.api.schemas import JobOut, ResultOut
    from docproc.db import session_scope

    with session_scope() as session:
        job = service.get_job(session, None, job_id)
        view = JobOut.of(job).model_dump(mode="json")
        if job.result is not None:
            view["result"] = ResultOut.of(job.result).model_dump(mode="json")
        return view


def _wait(job_id: str, show_progress: bool) -> dict:
    with _Progress("tokens", show_progress) as progress:
        while True:
            view = _job_view(job_id)
            tokens = view["progress"]
            progress.update(view["status"], tokens["tokens_done"], tokens["tokens_total"] or None)
            if view["status"] in ("succeeded", "failed", "cancelled"):
                return view
            time.sleep(POLL_S)


def _print_result(view: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(view, indent=2))
    elif view["status"] == "succeeded":
        click.echo(_result_text(view["result"]))
    else:
        error = view.get("error") or {}
        console.print(f"job {view['id']} {view['status']}: {error.get('message', '')}")


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def status(job_id: str, as_json: bool) -> None:
    """Show a job's status and progress (and its summary once done)."""
    view = _job_view(job_id)
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    progress = view["progress"]
    click.echo(f"{view['id']}  {view['status']}  {progress['tokens_done']}/{progress['tokens_total']} tokens")
    if view.get("result"):
        click.echo(_result_text(view["result"]))
    if view.get("error"):
        click.echo(f"error: {view['error']['code']}: {view['error']['message']}")


@main.command()
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Cancel a job: queued jobs stop at once, running ones within about a second."""
    from docproc import service
    from docproc.db import session_scope

    with session_scope() as session:
        job = service.cancel_job(session, None, job_id)
        click.echo(f"{job.id}  {job.status.value}{'  (stopping)' if job.cancel_requested else ''}")


def _result_text(result: dict) -> str:
    """A result for people: the summary; the answer; or the data as JSON; then the quotes, by page."""
    if result["task"] == "summarize":
        return result["summary"]
    main_text = result["answer"] if result["task"] == "ask" else json.dumps(result["data"], indent=2)
    quotes = [f'  p. {citation["page"]}: "{citation["quote"]}"' for citation in result["citations"] or []]
    return "\n".join([main_text, *(["Sources:", *quotes] if quotes else [])])


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


@main.group(invoke_without_command=True)
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def documents(context: click.Context, limit: int, as_json: bool) -> None:
    """List the latest documents (or delete one: `docproc documents delete ID`)."""
    if context.invoked_subcommand is not None:
        return
    from docproc import service
    from docproc.api.schemas import DocumentOut
    from docproc.db import session_scope

    with session_scope() as session:
        rows, total = service.list_documents(session, None, limit, 0)
        if as_json:
            _echo_json([DocumentOut.of(d).model_dump(mode="json") for d in rows])
            return
        for d in rows:
            click.echo(f"{d.id}  {d.page_count:>5} pages  {d.tokens:>8} tokens  {d.filename}")
        click.echo(f"({len(rows)} of {total})")


@documents.command("delete")
@click.argument("document_id")
def documents_delete(document_id: str) -> None:
    """Delete a document: its file and pages; its jobs and results stay (see README)."""
    from docproc import service
    from docproc.db import session_scope

    with session_scope() as session:
        service.delete_document(session, None, document_id)
    click.echo(f"{document_id} deleted")


@main.command()
@click.option("--status", "status_", type=click.Choice([s.value for s in JobStatus]), default=None)
@click.option("--document", "document_id", default=None, help="Only this document's jobs.")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def jobs(status_: str | None, document_id: str | None, limit: int, as_json: bool) -> None:
    """List the latest jobs, optionally by status or document."""
    from docproc import service
    from docproc.api.schemas import JobOut
    from docproc.db import session_scope

    with session_scope() as session:
        rows, total = service.list_jobs(
            session, None, limit, 0, document_id, JobStatus(status_) if status_ else None
        )
        views = [JobOut.of(job) for job in rows]
    if as_json:
        _echo_json([view.model_dump(mode="json") for view in views])
        return
    for view in views:
        progress = f"{view.progress.tokens_done}/{view.progress.tokens_total}"
        click.echo(f"{view.id}  {view.status.value:<9}  {progress:>15} tokens  {view.document_id or '-'}")
    click.echo(f"({len(views)} of {total})")


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def result(job_id: str, as_json: bool) -> None:
    """Print a succeeded job's summary, answer or data (exits non-zero while there is none)."""
    from docproc import service
    from docproc.api.schemas import ResultOut
    from docproc.db import session_scope

    with session_scope() as session:
        view = ResultOut.of(service.get_result(session, None, job_id))
    if as_json:
        _echo_json(view.model_dump(mode="json"))
    else:
        click.echo(_result_text(view.model_dump(mode="json")))


@main.group(invoke_without_command=True)
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def batches(context: click.Context, limit: int, as_json: bool) -> None:
    """List the latest batches (and see `status`, `results`, `cancel`)."""
    if context.invoked_subcommand is not None:
        return
    from docproc import batches as batch_service
    from docproc.api.schemas import BatchOut
    from docproc.db import session_scope

    with session_scope() as session:
        rows, total = batch_service.list_batches(session, None, limit, 0)
        states = batch_service.states(session, rows)
        views = [BatchOut.of(row, states[row.id]) for row in rows]
    if as_json:
        _echo_json([view.model_dump(mode="json") for view in views])
        return
    for view in views:
        click.echo(f"{view.id}  {view.status:<11}  {_counts(view)}")
    click.echo(f"({len(views)} of {total})")


def _counts(view: "BatchOut") -> str:
    counts = view.request_counts
    return (
        f"{counts.total} requests: {counts.completed} completed, {counts.failed} failed, "
        f"{counts.cancelled} cancelled"
    )


def _batch_view(batch_id: str, cancel: bool = False) -> "BatchOut":
    from docproc import batches as batch_service
    from docproc.api.schemas import BatchOut
    from docproc.db import session_scope

    with session_scope() as session:
        if cancel:
            batch = batch_service.cancel_batch(session, None, batch_id)
            session.commit()
        else:
            batch = batch_service.get_batch(session, None, batch_id)
        return BatchOut.of(batch, batch_service.states(session, [batch])[batch.id])


def _print_batch(view: "BatchOut", as_json: bool) -> None:
    if as_json:
        _echo_json(view.model_dump(mode="json"))
    else:
        click.echo(f"{view.id}  {view.status}  {_counts(view)}")


@batches.command("status")
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True)
def batches_status(batch_id: str, as_json: bool) -> None:
    """A batch's status and request counts."""
    _print_batch(_batch_view(batch_id), as_json)


@batches.command("results")
@click.argument("batch_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Default: stdout.")
def batches_results(batch_id: str, out: Path | None) -> None:
    """The results as JSON lines, one per request in input order (partial while the batch runs)."""
    from docproc import batches as batch_service

    _batch_view(batch_id)  # not found: an error rather than an empty file
    with click.open_file(str(out) if out else "-", "wb") as sink:
        sink.writelines(batch_service.result_lines(batch_id))


@batches.command("cancel")
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True)
def batches_cancel(batch_id: str, as_json: bool) -> None:
    """Cancel a batch: items not started at once, running ones at their next chunk."""
    _print_batch(_batch_view(batch_id, cancel=True), as_json)


if __name__ == "__main__":
    main()

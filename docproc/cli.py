"""The `docproc` command: run the API and workers, summarize files, inspect jobs."""

import contextlib
import functools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, get_args

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
from docproc.task_options import AnswerMethod, Method

if TYPE_CHECKING:
    from docproc.cli_backends import Backend, Json

console = Console(stderr=True)
# Without a terminal, progress is a plain line on stderr at most this often (and whenever the status changes).
PLAIN_PROGRESS_EVERY_S = 10.0
POLL_S = 0.5
METHOD_OPTION = click.option(
    "--method",
    type=click.Choice(get_args(Method)),
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


def server_options(command: Callable[..., None]) -> Callable[..., None]:
    """--server and --api-key: a command with a server goes through its REST API instead of this machine's
    database and queue; it gets the backend as `backend`."""

    @click.option(
        "--server",
        envvar="DOCPROC_SERVER",
        default=None,
        help="A docproc server's URL (env DOCPROC_SERVER); default: this machine's database and queue.",
    )
    @click.option(
        "--api-key",
        envvar="DOCPROC_API_KEY",
        default=None,
        help="The server's API key (env DOCPROC_API_KEY).",
    )
    @functools.wraps(command)
    def with_backend(*args: Any, server: str | None, api_key: str | None, **kwargs: Any) -> None:
        from docproc.cli_backends import Embedded, Remote

        command(*args, backend=Remote(server, api_key) if server else Embedded(), **kwargs)

    return with_backend


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

    from docproc.cli_backends import Embedded
    from docproc.db import migrate

    migrate()
    # uvicorn stops on SIGINT/SIGTERM, then raises the signal again: caught here, it stops the worker too.
    with _signals_raise():
        try:
            with Embedded().worker(with_worker):
                uvicorn.run(
                    "docproc.api.app:create_app",
                    factory=True,
                    host=host,
                    port=port,
                    # h11, not httptools: it bounds the request line and headers (httptools reads any size).
                    http="h11",
                    h11_max_incomplete_event_size=get_settings().max_header_bytes,
                    workers=get_settings().api_processes,
                )
        except Interrupted as stop:
            sys.exit(128 + stop.signum)


@main.command()
@click.option(
    "--concurrency", type=int, default=None, help="Worker processes (default DOCPROC_WORKER_CONCURRENCY)."
)
@click.option("--queues", default="jobs,batch,webhooks", show_default=True)
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
    help="Start a worker for this command (default: only with the embedded queue; never with --server).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar or progress lines.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the result (and errors).")
@server_options
def summarize(
    backend: "Backend",
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
    _run_task(backend, str(file), password, "summarize", options, as_json, worker, no_progress, quiet)


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
            server_options,
        ]
    ):
        function = option(function)
    return function


@main.command()
@click.argument("source", metavar="FILE_OR_DOCUMENT_ID")
@click.argument("question")
@click.option("--max-words", type=int, default=80, show_default=True)
@click.option(
    "--method",
    type=click.Choice(get_args(AnswerMethod)),
    default="auto",
    show_default=True,
    help="auto answers extractively with small models (the document's best-matching sentence), else "
    "abstractively (in the model's words).",
)
@_task_command
def ask(
    backend: "Backend",
    source: str,
    question: str,
    max_words: int,
    method: str,
    password: str | None,
    as_json: bool,
    worker: bool | None,
    no_progress: bool,
    quiet: bool,
) -> None:
    """Ask a question of a file (uploaded first) or of an uploaded document; print the answer and the quotes
    it rests on, each with its page. A second question on the same document skips reading it again where
    the engine keeps its state."""
    options = {"question": question, "max_words": max_words, "method": method}
    _run_task(backend, source, password, "ask", options, as_json, worker, no_progress, quiet)


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
    backend: "Backend",
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
    _run_task(backend, source, password, "extract", options, as_json, worker, no_progress, quiet)


def _run_task(
    backend: "Backend",
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
    from docproc.task_options import validated_options

    validated_options(task, options)  # before the upload: a refused job leaves nothing behind
    backend.prepare()
    with _signals_raise():
        try:
            if Path(source).is_file():
                document = backend.upload(Path(source), password)
                document_id, size = document["id"], f" ({document['tokens']} tokens)"
            else:
                document_id, size = source, ""
            job = backend.submit(document_id, task, options)
            if not quiet:
                console.print(f"job {job['id']} submitted{size}", highlight=False)
            with backend.worker(worker):
                try:
                    finished = _wait(backend, job["id"], not (quiet or no_progress))
                except Interrupted as stop:
                    _stop_job(backend, job["id"], stop.signum)
                    raise
        except Interrupted as stop:
            sys.exit(128 + stop.signum)
    _print_result(finished, as_json)
    if finished["status"] != "succeeded":
        sys.exit(1)


def _stop_job(backend: "Backend", job_id: str, signum: int) -> None:
    """Cancel the job (SIGTERM, no terminal, or the user's answer to Ctrl-C) and wait until it has stopped."""
    later = backend.left_running()
    if signum == signal.SIGINT and sys.stdin.isatty():
        leave = not click.confirm(f"\nCancel job {job_id}? (no: leave it running, {later})", default=True)
        if leave:
            console.print(f"job {job_id} left running ({later}): docproc status {job_id}", highlight=False)
            return
    backend.cancel(job_id)
    console.print(f"cancelling job {job_id}", highlight=False)
    deadline = time.monotonic() + get_settings().stop_timeout_s
    while (status := backend.job(job_id)["status"]) not in ("succeeded", "failed", "cancelled"):
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
    help="Start a worker for this command (default: only with the embedded queue; never with --server).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar or progress lines.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the final count.")
@server_options
def batch(
    backend: "Backend",
    paths: tuple[Path, ...],
    out: Path,
    max_words: int,
    method: str,
    worker: bool | None,
    no_progress: bool,
    quiet: bool,
) -> None:
    """Summarize FILES (or every file under a DIR) as one batch; write one JSON line per file to --out."""
    from docproc.errors import ServiceError

    backend.prepare()
    items: list[Json] = []
    unreadable: list[bytes] = []
    for file in _files(paths):
        try:
            document = backend.upload(file)
        except ServiceError as exc:
            console.print(f"[yellow]{file}: {exc.message}")
            error = {"code": exc.code, "message": exc.message}
            line = {"custom_id": str(file), "job_id": None, "document_id": None, "status": "failed"}
            line |= {"result": None, "error": error}
            unreadable.append(json.dumps(line, ensure_ascii=False).encode() + b"\n")
            continue
        options = {"max_words": max_words, "method": method}
        items.append(
            {"custom_id": str(file), "document_id": document["id"], "task": "summarize", "options": options}
        )
    if not items:
        raise click.ClickException("No file could be read.")
    batch_id = backend.create_batch(items)["id"]
    if not quiet:
        console.print(f"batch {batch_id} submitted ({len(items)} files)", highlight=False)
    with backend.worker(worker), _Progress("files", not (quiet or no_progress)) as progress:
        ended = backend.wait_batch(
            batch_id, lambda view: progress.update(view["status"], _finished(view), _total(view))
        )
    with out.open("wb") as results:
        results.writelines(unreadable)
        results.writelines(backend.batch_results(batch_id))
    counts = ended["request_counts"]
    console.print(
        f"batch {batch_id} {ended['status']}: {counts['completed']} summarized, "
        f"{counts['failed'] + len(unreadable)} failed, {counts['cancelled']} cancelled; results in {out}"
    )
    if counts["completed"] < counts["total"] or unreadable:
        sys.exit(1)


def _finished(batch_view: "Json") -> int:
    counts = batch_view["request_counts"]
    return counts["completed"] + counts["failed"] + counts["cancelled"]


def _total(batch_view: "Json") -> int:
    return batch_view["request_counts"]["total"]


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


def _wait(backend: "Backend", job_id: str, show_progress: bool) -> "Json":
    with _Progress("tokens", show_progress) as progress:

        def update(view: "Json") -> None:
            tokens = view["progress"]
            progress.update(view["status"], tokens["tokens_done"], tokens["tokens_total"] or None)

        return backend.wait(job_id, update)


def _print_result(view: "Json", as_json: bool) -> None:
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
@server_options
def status(backend: "Backend", job_id: str, as_json: bool) -> None:
    """Show a job's status and progress (and its summary once done)."""
    view = backend.job(job_id)
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
@server_options
def cancel(backend: "Backend", job_id: str) -> None:
    """Cancel a job: queued jobs stop at once, running ones within about a second."""
    view = backend.cancel(job_id)
    click.echo(f"{view['id']}  {view['status']}{'  (stopping)' if view['status'] == 'running' else ''}")


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
@server_options
@click.pass_context
def documents(context: click.Context, backend: "Backend", limit: int, as_json: bool) -> None:
    """List the latest documents (or delete one: `docproc documents delete ID`)."""
    if context.invoked_subcommand is not None:
        return
    rows, total = backend.documents(limit)
    if as_json:
        _echo_json(rows)
        return
    for d in rows:
        click.echo(f"{d['id']}  {d['pages']:>5} pages  {d['tokens']:>8} tokens  {d['filename']}")
    click.echo(f"({len(rows)} of {total})")


@documents.command("delete")
@click.argument("document_id")
@server_options
def documents_delete(backend: "Backend", document_id: str) -> None:
    """Delete a document: its file and pages; its jobs and results stay (see README)."""
    backend.delete_document(document_id)
    click.echo(f"{document_id} deleted")


@main.command()
@click.option("--status", "status_", type=click.Choice([s.value for s in JobStatus]), default=None)
@click.option("--document", "document_id", default=None, help="Only this document's jobs.")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@server_options
def jobs(backend: "Backend", status_: str | None, document_id: str | None, limit: int, as_json: bool) -> None:
    """List the latest jobs, optionally by status or document."""
    views, total = backend.jobs(status_, document_id, limit)
    if as_json:
        _echo_json(views)
        return
    for view in views:
        progress = f"{view['progress']['tokens_done']}/{view['progress']['tokens_total']}"
        click.echo(f"{view['id']}  {view['status']:<9}  {progress:>15} tokens  {view['document_id'] or '-'}")
    click.echo(f"({len(views)} of {total})")


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@server_options
def result(backend: "Backend", job_id: str, as_json: bool) -> None:
    """Print a succeeded job's summary, answer or data (exits non-zero while there is none)."""
    view = backend.result(job_id)
    if as_json:
        _echo_json(view)
    else:
        click.echo(_result_text(view))


@main.group(invoke_without_command=True)
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@server_options
@click.pass_context
def batches(context: click.Context, backend: "Backend", limit: int, as_json: bool) -> None:
    """List the latest batches (and see `status`, `results`, `cancel`)."""
    if context.invoked_subcommand is not None:
        return
    views, total = backend.batches(limit)
    if as_json:
        _echo_json(views)
        return
    for view in views:
        click.echo(f"{view['id']}  {view['status']:<11}  {_counts(view)}")
    click.echo(f"({len(views)} of {total})")


def _counts(view: "Json") -> str:
    counts = view["request_counts"]
    return (
        f"{counts['total']} requests: {counts['completed']} completed, {counts['failed']} failed, "
        f"{counts['cancelled']} cancelled"
    )


def _print_batch(view: "Json", as_json: bool) -> None:
    if as_json:
        _echo_json(view)
    else:
        click.echo(f"{view['id']}  {view['status']}  {_counts(view)}")


@batches.command("status")
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True)
@server_options
def batches_status(backend: "Backend", batch_id: str, as_json: bool) -> None:
    """A batch's status and request counts."""
    _print_batch(backend.batch(batch_id), as_json)


@batches.command("results")
@click.argument("batch_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Default: stdout.")
@server_options
def batches_results(backend: "Backend", batch_id: str, out: Path | None) -> None:
    """The results as JSON lines, one per request in input order (partial while the batch runs)."""
    lines = backend.batch_results(batch_id)
    with click.open_file(str(out) if out else "-", "wb") as sink:
        sink.writelines(lines)


@batches.command("cancel")
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True)
@server_options
def batches_cancel(backend: "Backend", batch_id: str, as_json: bool) -> None:
    """Cancel a batch: items not started at once, running ones at their next chunk."""
    _print_batch(backend.cancel_batch(batch_id), as_json)


_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@main.command("plan")
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A qwen3_next checkpoint directory (only its config.json is read).",
)
@click.option("--tokens", required=True, type=click.IntRange(min=1), help="Document length to plan for.")
@click.option(
    "--devices",
    default=None,
    help="Comma-separated devices, e.g. cuda:0,cuda:1 (default: DOCPROC_DEVICES, else DOCPROC_DEVICE).",
)
@click.option(
    "--dtype",
    type=click.Choice(sorted(_DTYPE_BYTES)),
    default=None,
    help="Compute dtype (default: float32 on CPU, bfloat16 elsewhere, as the hybrid engine loads).",
)
@click.option(
    "--kv-dtype",
    type=click.Choice(sorted(_DTYPE_BYTES)),
    default=None,
    help="KV cache dtype (default: --dtype).",
)
@click.option("--chunk-tokens", type=click.IntRange(min=1), default=4096, show_default=True)
@click.option(
    "--memory-gib",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Usable memory per device (default: the device's own where visible, the host's RAM for cpu).",
)
def plan_command(
    model_dir: Path,
    tokens: int,
    devices: str | None,
    dtype: str | None,
    kv_dtype: str | None,
    chunk_tokens: int,
    memory_gib: float | None,
) -> None:
    """Memory per device for reading a document of TOKENS tokens with a hybrid checkpoint: weights, KV cache,
    linear-attention state and working memory, and whether it fits."""
    import json

    from rich.table import Table

    from model.plan import device_capacity, plan
    from model.qwen3_next import ModelArgs

    settings = get_settings()
    names = [d.strip() for d in devices.split(",") if d.strip()] if devices else settings.devices
    names = names or [settings.device]
    config_path = model_dir / "config.json"
    if not config_path.exists():
        raise click.ClickException(f"{model_dir}: no config.json")
    try:
        config = json.loads(config_path.read_text())
        args = ModelArgs.from_hf(config)
        dtype = dtype or ("float32" if all(n == "cpu" for n in names) else "bfloat16")
        capacities = [int(memory_gib * 2**30) if memory_gib else device_capacity(n) for n in names]
        plans = plan(
            args,
            tokens,
            names,
            dtype_bytes=_DTYPE_BYTES[dtype],
            kv_dtype_bytes=_DTYPE_BYTES[kv_dtype or dtype],
            chunk_size=chunk_tokens,
            capacities=capacities,
            mtp_layers=int(config.get("mtp_num_hidden_layers", 0)),
        )
    except (ValueError, RuntimeError) as exc:  # a config we do not read, a bad device name, too many devices
        raise click.ClickException(str(exc)) from exc
    table = Table(title=f"{model_dir.name}: {tokens:,} tokens, {dtype} (KV {kv_dtype or dtype})")
    for column in ("device", "layers", "weights", "KV cache", "linear state", "working", "total", "capacity"):
        table.add_column(column, justify="left" if column in ("device", "layers") else "right")
    table.add_column("fits")

    def gib(value: int | None) -> str:
        return "?" if value is None else f"{value / 2**30:.2f} GiB"

    for row in plans:
        table.add_row(
            row.device,
            f"{row.layers[0]}-{row.layers[1]}",
            gib(row.weights),
            gib(row.kv_cache),
            gib(row.linear_state),
            gib(row.working),
            gib(row.total),
            gib(row.capacity),
            {True: "yes", False: "NO", None: "?"}[row.fits],
        )
    Console(width=140).print(table)
    if any(row.fits is False for row in plans):
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""The `docproc` command: run the API and workers, summarize files, inspect jobs."""

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from docproc.settings import get_settings

if TYPE_CHECKING:
    from docproc.batches import BatchState

console = Console(stderr=True)


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
def main() -> None:
    """docproc: long-context document summarization."""


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
    settings = get_settings()
    with _worker_process() if with_worker else contextlib.nullcontext():
        uvicorn.run(
            "docproc.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            # h11, not httptools: it bounds the request line and headers (httptools reads any size).
            http="h11",
            h11_max_incomplete_event_size=settings.max_header_bytes,
        )


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


@contextlib.contextmanager
def _worker_process() -> Iterator[subprocess.Popen[bytes]]:
    """A worker in a child process for the duration of a command."""
    log = (get_settings().data_dir / "worker.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "docproc.cli", "worker", "--loglevel", "warning"], stdout=log, stderr=log
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--password", default=None, help="Password of an encrypted PDF.")
@click.option("--max-words", type=int, default=150, show_default=True)
@click.option("--instructions", default=None, help="Extra instructions for the summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--worker/--no-worker",
    default=None,
    help="Start a worker for this command (default: only with the embedded queue).",
)
def summarize(
    file: Path,
    password: str | None,
    max_words: int,
    instructions: str | None,
    as_json: bool,
    worker: bool | None,
) -> None:
    """Upload FILE, summarize it, wait with a progress bar and print the summary."""
    from docproc import service
    from docproc.db import migrate, session_scope
    from workers.celery_app import enqueue_job

    migrate()
    options = {"max_words": max_words} | ({"instructions": instructions} if instructions else {})
    with session_scope() as session, file.open("rb") as source:
        document, _ = service.add_document(session, None, file.name, source, password)
        job = service.create_job(session, None, document.id, "summarize", options)
    enqueue_job(job.id)
    start_worker = worker if worker is not None else get_settings().broker_url is None
    with _worker_process() if start_worker else contextlib.nullcontext():
        finished = _wait(job.id)
    _print_result(finished, as_json)
    if finished["status"] != "succeeded":
        sys.exit(1)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("results.jsonl"), show_default=True
)
@click.option("--max-words", type=int, default=150, show_default=True)
@click.option(
    "--worker/--no-worker",
    default=None,
    help="Start a worker for this command (default: only with the embedded queue).",
)
def batch(paths: tuple[Path, ...], out: Path, max_words: int, worker: bool | None) -> None:
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
                batches.ItemSpec(number, str(file), document.id, "summarize", {"max_words": max_words})
            )
        if not items:
            raise click.ClickException("No file could be read.")
        created = batches.create_batch(session, None, items)
        batches.enqueue_items(session, created, lambda job_id: enqueue_job(job_id, BATCH_QUEUE))
        batch_id = created.id
    start_worker = worker if worker is not None else get_settings().broker_url is None
    with _worker_process() if start_worker else contextlib.nullcontext():
        state = _wait_batch(batch_id)
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


def _wait_batch(batch_id: str) -> "BatchState":
    from docproc import batches
    from docproc.db import session_scope

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("queued", total=None)
        while True:
            with session_scope() as session:
                batch = batches.get_batch(session, None, batch_id)
                state = batches.states(session, [batch])[batch_id]
            finished = state.completed + state.failed + state.cancelled
            bar.update(task, description=f"{state.status} (files)", completed=finished, total=state.total)
            if state.status in ("completed", "failed", "cancelled"):
                return state
            time.sleep(0.5)


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


def _wait(job_id: str) -> dict:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("queued", total=None)
        while True:
            view = _job_view(job_id)
            progress = view["progress"]
            bar.update(
                task,
                description=f"{view['status']} (tokens)",
                completed=progress["tokens_done"],
                total=progress["tokens_total"] or None,
            )
            if view["status"] in ("succeeded", "failed", "cancelled"):
                return view
            time.sleep(0.5)


def _print_result(view: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(view, indent=2))
    elif view["status"] == "succeeded":
        click.echo(view["result"]["summary"])
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
        click.echo(view["result"]["summary"])
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


@main.command()
@click.option("--limit", default=20, show_default=True)
def documents(limit: int) -> None:
    """List the latest documents."""
    from docproc import service
    from docproc.db import session_scope

    with session_scope() as session:
        rows, total = service.list_documents(session, None, limit, 0)
        for d in rows:
            click.echo(f"{d.id}  {d.page_count:>5} pages  {d.tokens:>8} tokens  {d.filename}")
        click.echo(f"({len(rows)} of {total})")


if __name__ == "__main__":
    main()

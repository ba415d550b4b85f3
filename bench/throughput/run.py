"""Bulk throughput: pages per minute and generated tokens per second, one at a time ("before") and batched
("after"), in the same run on the same machine, with the default model (SmolLM2-135M-Instruct).

(a) the corpus's longest PDF (117 pages), summarized abstractively (hierarchically: partial summaries of
    chunks, then together): before with DOCPROC_GENERATION_BATCH_SIZE=1, after with --batch-size.
(b) a batch of short documents of the corpus, as a worker runs it (docproc.jobs.run_job for each item in turn,
    as the Celery messages come; leases, progress and results in a real database): before one item at a
    time, after with DOCPROC_BATCH_ITEMS_TOGETHER=--batch-size.
(c) (b) with the remote engine against a loopback OpenAI-compatible server that batches concurrent requests
    (bench/throughput/server.py, up to --batch-size): before DOCPROC_REMOTE_CONCURRENCY=1 and one item at a
    time, after --batch-size of each.

Outputs are greedy; the table says how many of them are the same text before and after. Written to
bench/throughput/results.md as well.

    python -m bench.throughput.run                              # a few minutes on two cores
    python -m bench.throughput.run --pages 117 --documents 40 --threads 8
"""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import CORPUS, MODELS_DIR, REPO, free_port

# Short documents: text PDFs of at most this many pages, with at least this many words.
SHORT_MAX_PAGES, SHORT_MIN_WORDS = 6, 40
MAX_WORDS = 60


@dataclass(frozen=True)
class Measure:
    case: str
    variant: str
    pages: int
    seconds: float
    output_tokens: int
    texts: list[str]

    @property
    def pages_per_minute(self) -> float:
        return self.pages / self.seconds * 60

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds


def configure(data_dir: Path, database_url: str | None, broker_url: str, **settings: object) -> None:
    """The service's settings for what runs next in this process (docproc reads them through get_settings)."""
    from docproc.settings import get_settings

    os.environ.update(
        DOCPROC_DATA_DIR=str(data_dir),
        DOCPROC_MODELS_DIR=str(MODELS_DIR),
        DOCPROC_BROKER_URL=broker_url,
        **{f"DOCPROC_{key.upper()}": str(value) for key, value in settings.items()},
    )
    if database_url:
        os.environ["DOCPROC_DATABASE_URL"] = database_url
    get_settings.cache_clear()


def warm_up() -> None:
    """Load what the first measured run would otherwise pay for: the model and its first forward, nltk."""
    from docproc.engine import get_engine
    from docproc.extractive import split_sentences
    from docproc.ingestion import Page

    get_engine().generate([{"role": "user", "content": "Hello."}], max_new_tokens=4)
    split_sentences([Page(1, "One sentence. Another one.")])


def long_document(corpus: Path, pages: int, batch_size: int, chunk_tokens: int) -> Iterator[Measure]:
    from docproc.engine import get_engine
    from docproc.ingestion import extract
    from docproc.pipeline import ProgressReporter, SummarizeOptions, Workspace, summarize

    listed = json.loads((corpus / "files.json").read_text())["data"]
    longest = max(
        (entry for entry in listed if (corpus / entry["path"]).exists()), key=lambda e: e["pages"] or 0
    )
    document = extract(corpus / longest["path"]).pages[:pages]
    warm_up()
    engine = get_engine()
    options = SummarizeOptions(max_words=MAX_WORDS, method="abstractive", temperature=0)
    for variant, size in (("before", 1), ("after", batch_size)):
        engine.batch_size = size
        with tempfile.TemporaryDirectory() as job_dir:
            started = time.monotonic()
            summary = summarize(
                engine,
                document,
                options,
                ProgressReporter(),
                Workspace(Path(job_dir), "long"),
                chunk_tokens,
                1,
            )
            seconds = time.monotonic() - started
        yield Measure("(a) long PDF", variant, len(document), seconds, summary.output_tokens, [summary.text])


def short_documents(corpus: Path, count: int) -> list[Path]:
    """Text PDFs of the corpus with a few pages, cycled to `count`."""
    from docproc.ingestion import extract

    listed = json.loads((corpus / "files.json").read_text())["data"]
    found: list[Path] = []
    for entry in listed:
        if entry["encrypted"] or not entry["pages"] or entry["pages"] > SHORT_MAX_PAGES:
            continue
        with contextlib.suppress(Exception):  # a PDF without a text layer (images only), say
            if (
                sum(len(page.text.split()) for page in extract(corpus / entry["path"]).pages)
                >= SHORT_MIN_WORDS
            ):
                found.append(corpus / entry["path"])
    return [found[n % len(found)] for n in range(count)]


def run_batch(case: str, variant: str, paths: list[Path], options: dict[str, object]) -> Measure:
    """The documents as one batch, each item run as a solo-pool worker runs its message."""
    from docproc import batches, service
    from docproc.db import migrate, session_scope
    from docproc.engine import get_engine
    from docproc.jobs import run_job
    from docproc.models import Job, JobStatus

    migrate()
    with session_scope() as session:
        documents = []
        for path in paths:
            with path.open("rb") as source:
                documents.append(service.add_document(session, None, path.name, source)[0])
        specs = [
            batches.ItemSpec(n, f"item-{n}", document.id, "summarize", options)
            for n, document in enumerate(documents, start=1)
        ]
        pages = sum(document.page_count for document in documents)
        batch = batches.create_batch(session, None, specs)
        queued: list[str] = []
        batches.enqueue_items(session, batch, queued.append)
    warm_up()
    started = time.monotonic()
    for job_id in queued:
        run_job(job_id, get_engine)
    seconds = time.monotonic() - started
    with session_scope() as session:
        jobs = [session.get_one(Job, job_id) for job_id in queued]
        assert all(job.status is JobStatus.succeeded for job in jobs), [
            (job.id, job.error_message) for job in jobs
        ]
        results = {job.id: job.result for job in jobs if job.result is not None}
    texts = [results[job_id].summary or "" for job_id in queued]
    output_tokens = sum(results[job_id].output_tokens or 0 for job_id in queued)
    return Measure(case, variant, pages, seconds, output_tokens, texts)


@contextlib.contextmanager
def batching_server(model: Path, batch_size: int, threads: int) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "bench.throughput.server", "--model", str(model), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--max-batch", str(batch_size), "--threads", str(threads)], cwd=REPO
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/models").status_code == 200:
                    break
            assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def table(measures: list[Measure], threads: int, batch_size: int) -> str:
    lines = [
        f"Torch threads: {threads} (bench process and server); batch size / concurrency after: {batch_size}; "
        f"CPU cores: {os.cpu_count()}.",
        "",
        "| case | variant | pages | seconds | pages/min | tokens/s | speed-up | same text as before |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    before: dict[str, Measure] = {}
    for m in measures:
        base = before.setdefault(m.case, m)
        same = sum(a == b for a, b in zip(base.texts, m.texts, strict=True))
        lines.append(
            f"| {m.case} | {m.variant} | {m.pages} | {m.seconds:.1f} | {m.pages_per_minute:.1f} | "
            f"{m.tokens_per_s:.1f} | {base.seconds / m.seconds:.2f}× | {same}/{len(m.texts)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", type=Path, default=CORPUS, help="the PDF corpus (files.json and the PDFs)"
    )
    parser.add_argument("--pages", type=int, default=12, help="(a): the long PDF's first pages (117 in all)")
    parser.add_argument("--chunk-tokens", type=int, default=512, help="(a): tokens per chunk")
    parser.add_argument("--documents", type=int, default=20, help="(b), (c): items of the batch")
    parser.add_argument("--batch-size", type=int, default=16, help="after: generations / items together")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--cases", default="abc", help="which of a, b, c to run")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/0", help="Redis for the metrics")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.md"))
    args = parser.parse_args()

    import torch

    from docproc.engine import get_engine, resolve_model

    torch.set_num_threads(args.threads)
    # A stopped run (timeout, kill) still stops its server: SystemExit runs the `finally` blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    measures: list[Measure] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        setup: Callable[..., None] = lambda **settings: configure(  # noqa: E731
            data, args.database_url, args.broker_url, **settings
        )
        setup()
        model = resolve_model("smollm2")
        if "a" in args.cases:
            measures += long_document(args.corpus, args.pages, args.batch_size, args.chunk_tokens)
        paths = short_documents(args.corpus, args.documents) if {"b", "c"} & set(args.cases) else []
        # The method given: "auto" would extract, then compress on the local model but not on a remote one.
        greedy = {"max_words": MAX_WORDS, "temperature": 0, "method": "extract_compress"}
        for case, remote in (("b", False), ("c", True)):
            if case not in args.cases:
                continue
            with (
                batching_server(model, args.batch_size, args.threads)
                if remote
                else contextlib.nullcontext() as url
            ):
                for variant, size in (("before", 1), ("after", args.batch_size)):
                    get_engine.cache_clear()
                    setup(
                        model=url or "smollm2",
                        remote_tokenizer=model,
                        generation_batch_size=size,
                        remote_concurrency=size,
                        batch_items_together=size,
                    )
                    name = f"({case}) {len(paths)} short PDFs" + (", remote" if remote else "")
                    measures.append(run_batch(name, variant, paths, greedy))
                    print(table(measures, args.threads, args.batch_size), flush=True)
    report = table(measures, args.threads, args.batch_size)
    print(report)
    args.out.write_text(f"# Throughput (bench/throughput/run.py)\n\n{report}\n")


if __name__ == "__main__":
    main()

"""Load test: submit many jobs over HTTP to a live API with several worker processes; check none is lost or
run twice.

Everything it needs it starts itself: a Redis server of its own on a free port (db 3; started like CI's, with
nothing kept on disk), a fresh PostgreSQL database on this machine's server, the API and the workers. Jobs are
real summaries by the transformers engine, on a tiny random-weight Llama with the default model's tokenizer
(so that a thousand jobs end in minutes on a CPU; the text it writes is noise, the work is not).

    python bench/load/load_test.py --jobs 1000 --workers 3
    python bench/load/load_test.py --jobs 1000 --workers 3 --restart-redis   # Redis restarted mid-way

--restart-redis shuts Redis down without saving (`redis-cli shutdown nosave`) once half the jobs are
submitted and starts it again: every queued message is lost, and the workers' sweeper must notice (the
broker-epoch key is gone) and queue the database's queued jobs again. Submissions refused while Redis is down
(503) are retried by the client, as a client should.

Reported: jobs/s (submit of the first to finish of the last), p50/p99 submit latency, and from the database:
jobs not succeeded (lost), jobs run more than once (attempts > 1), results per job.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

REPO = Path(__file__).resolve().parents[2]
NOTE = (
    b"The cooperative installed solar panels on forty roofs and a shared battery in the village hall. "
    b"Output rose by fourteen percent over the plan; the board proposes two wind turbines next spring."
)
CHEAP_OPTIONS = {"max_words": 10, "max_input_tokens": 32, "temperature": 0}
REDIS_DB = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_model(folder: Path, models_dir: Path) -> Path:
    """A 2-layer, 64-wide Llama with random weights and the default model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    os.environ["DOCPROC_MODELS_DIR"] = str(models_dir)
    from docproc.engine import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2"))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class Redis:
    """A redis-server of our own, started like CI's (no RDB, no AOF): a restart loses everything."""

    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = subprocess.Popen(command, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        for _ in range(100):
            if (
                subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout
                == b"PONG\n"
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def shutdown_nosave(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True)
        assert self.process is not None
        self.process.wait(10)


@dataclass
class Submissions:
    latencies: list[float] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)
    refused: int = 0  # 503 or connection errors, retried
    lock: threading.Lock = field(default_factory=threading.Lock)


def submit(client: httpx.Client, document_id: str, record: Submissions) -> None:
    while True:
        started = time.perf_counter()
        try:
            response = client.post("/v1/jobs", json={"document_id": document_id, "options": CHEAP_OPTIONS})
        except httpx.TransportError:
            response = None
        elapsed = time.perf_counter() - started
        if response is not None and response.status_code == 201:
            with record.lock:
                record.latencies.append(elapsed)
                record.job_ids.append(response.json()["id"])
            return
        if response is not None and response.status_code != 503:
            raise RuntimeError(f"unexpected answer {response.status_code}: {response.text}")
        with record.lock:
            record.refused += 1
        time.sleep(0.5)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run(args: argparse.Namespace) -> str:
    work = Path(tempfile.mkdtemp(prefix="docproc-load-"))
    print(f"work dir {work}", flush=True)
    model = tiny_model(work / "tiny-llama", args.models_dir)
    redis = Redis(free_port(), work / "redis.log")
    redis.start()
    database = f"docproc_load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    database_url = (
        args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{database}"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPROC_")} | {
        "DOCPROC_DATA_DIR": str(work / "data"),
        "DOCPROC_DATABASE_URL": database_url,
        "DOCPROC_BROKER_URL": f"redis://127.0.0.1:{redis.port}/{REDIS_DB}",
        "DOCPROC_MODEL": str(model),
        "DOCPROC_JOB_LEASE_S": "10",  # the sweeper runs every 5 s
        "OMP_NUM_THREADS": "1",  # one thread per worker process: the workers share the cores
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, *command: str) -> None:
        log = (work / f"{name}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "docproc.cli", *command],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    try:
        spawn("api", "serve", "--port", str(port))
        for number in range(args.workers):
            spawn(f"worker-{number}", "worker", "--concurrency", "1", "--loglevel", "info")
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base_url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.3)
        with httpx.Client(base_url=base_url, timeout=60) as client:
            document_id = client.post("/v1/documents", files={"file": ("note.txt", NOTE)}).json()["id"]
        time.sleep(5)  # let the workers load the model, so that the run measures jobs

        record = Submissions()
        local = threading.local()

        def one(number: int) -> None:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=base_url, timeout=60)
            if args.restart_redis and number == args.jobs // 2:
                redis.shutdown_nosave()
                print(f"redis shut down (nosave) after {len(record.job_ids)} jobs accepted", flush=True)
                time.sleep(1.0)
                redis.start()
                print("redis started again, empty", flush=True)
            submit(local.client, document_id, record)

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(one, range(args.jobs)))
        submitted_s = time.perf_counter() - started
        print(f"{len(record.job_ids)} jobs accepted in {submitted_s:.1f} s; waiting for them", flush=True)

        with psycopg.connect(args.postgres.rsplit("/", 1)[0] + f"/{database}", autocommit=True) as db:
            deadline = time.monotonic() + args.timeout
            while True:
                unfinished = db.execute(
                    "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
                ).fetchone()[0]
                if unfinished == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            elapsed_s = time.perf_counter() - started
            by_status = dict(db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())
            accepted = set(record.job_ids)
            succeeded = {
                row[0] for row in db.execute("SELECT id FROM jobs WHERE status = 'succeeded'").fetchall()
            }
            run_twice = db.execute("SELECT count(*) FROM jobs WHERE attempts > 1").fetchone()[0]
            # Jobs the API could not queue while Redis was down: failed at once, the client told (503).
            refused_jobs = db.execute(
                "SELECT count(*) FROM jobs WHERE error_code = 'queue_unavailable' AND attempts = 0"
            ).fetchone()[0]
            result_counts = db.execute(
                "SELECT count(r.job_id) FROM jobs j LEFT JOIN results r ON r.job_id = j.id "
                "WHERE j.status = 'succeeded' GROUP BY j.id"
            ).fetchall()
            first_start, last_finish = db.execute(
                "SELECT min(started_at), max(finished_at) FROM jobs"
            ).fetchone()
        lost = len(accepted - succeeded)
        not_one_result = sum(1 for (count,) in result_counts if count != 1)
        refused_duplicates = sum(
            (work / f"worker-{n}.log").read_text().count("not claimed") for n in range(args.workers)
        )
        resent = sum(
            (work / f"worker-{n}.log").read_text().count("broker has no epoch") for n in range(args.workers)
        )
        latencies_ms = [latency * 1000 for latency in record.latencies]
        lines = [
            f"### {args.jobs} jobs, {args.workers} workers, {args.clients} clients"
            + (", Redis restarted (nosave) mid-way" if args.restart_redis else ""),
            "",
            "| measure | value |",
            "|---|---|",
            f"| jobs accepted (201) | {len(accepted)} |",
            f"| jobs/s (first submit to last finish) | {len(succeeded) / elapsed_s:.1f} |",
            f"| jobs/s (workers busy: first start to last finish) | "
            f"{len(succeeded) / (last_finish - first_start).total_seconds():.1f} |",
            f"| submit throughput | {len(accepted) / submitted_s:.0f} jobs/s |",
            f"| submit latency p50 / p99 / max | {percentile(latencies_ms, 50):.1f} / "
            f"{percentile(latencies_ms, 99):.1f} / {max(latencies_ms):.1f} ms |",
            f"| submissions refused (503 while Redis was down), retried | {record.refused} "
            f"({refused_jobs} failed as queue_unavailable) |",
            f"| job statuses | {', '.join(f'{k}: {v}' for k, v in sorted(by_status.items()))} |",
            f"| **lost** (accepted, not succeeded) | **{lost}** |",
            f"| **run twice** (attempts > 1) | **{run_twice}** |",
            f"| succeeded jobs without exactly one result | {not_one_result} |",
            f"| duplicate deliveries refused by the claim | {refused_duplicates} |",
            f"| sweeps that re-sent queued jobs after a broker restart | {resent} |",
            "",
        ]
        return "\n".join(lines)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        redis.shutdown_nosave()
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3, help="worker processes (docproc worker)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP submitters")
    parser.add_argument("--restart-redis", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the jobs to finish")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("DOCPROC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path.home() / ".cache" / "docproc-tests" / "models",
        help="where the default model is converted (for its tokenizer)",
    )
    parser.add_argument("--out", type=Path, help="append the report (Markdown) to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()
    report = run(args)
    print(report)
    if args.out:
        with args.out.open("a") as out:
            out.write(report + "\n")


if __name__ == "__main__":
    main()

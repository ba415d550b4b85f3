"""Submit latency: POST /v1/jobs p50/p99 at several concurrencies, idle workers, PostgreSQL and Redis.

Both variants run side by side in one invocation and are measured in turns (before, after, before, ...,
`--rounds` times per level), so that they share the machine's conditions: `before` is the API of a git
revision (default `main`, unpacked with `git archive`), `after` this checkout's. Each variant gets its own
Redis (like CI's: nothing on disk), a fresh PostgreSQL database, the API and one worker
that is up but idle (it listens on the batch queue only, and the lost-job sweep is pushed out of the run),
so that what is measured is the submit path. Every client keeps one connection, as a client library does.

    python bench/load/submit_latency.py --clients 1,16,50 --requests 800
    python bench/load/submit_latency.py --api-processes 2      # the API as several uvicorn processes
"""

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test import NOTE, REPO, Redis, free_port, percentile  # noqa: E402

REDIS_DB = 5


def api_cpu_s(api: psutil.Process) -> float:
    """CPU seconds of the API, its uvicorn processes included: unlike latency, hardly moved by other load."""
    processes = [api, *api.children(recursive=True)]
    return sum(sum(p.cpu_times()[:2]) for p in processes if p.is_running())


def measure(base_url: str, document_id: str, clients: int, requests: int) -> list[float]:
    """Latencies (ms) of `requests` submits from `clients` concurrent clients."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = max(1, requests // clients)

    def client_loop(_: int) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            body = {"document_id": document_id, "options": {"max_words": 10}}
            own: list[float] = []
            for _ in range(per_client):
                started = time.perf_counter()
                response = client.post("/v1/jobs", json=body)
                own.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 201, response.text
            with lock:
                latencies.extend(own)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    return latencies


@contextlib.contextmanager
def variant(
    name: str, source: Path, args: argparse.Namespace, work: Path
) -> Iterator[tuple[str, str, psutil.Process]]:
    """A running API (and idle worker) of `source`: yields its URL, a document id to submit jobs for and the
    API's process."""
    redis = Redis(free_port(), work / f"{name}-redis.log")
    redis.start()
    database = f"docproc_latency_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPROC_")} | {
        "DOCPROC_DATA_DIR": str(work / f"{name}-data"),
        "DOCPROC_DATABASE_URL": args.postgres.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+psycopg://"
        )
        + f"/{database}",
        "DOCPROC_BROKER_URL": f"redis://127.0.0.1:{redis.port}/{REDIS_DB}",
        "DOCPROC_MODELS_DIR": str(args.models_dir),
        "DOCPROC_QUEUE_RESEND_GRACE_S": "86400",
        "DOCPROC_API_PROCESSES": str(args.api_processes),  # read by `after` only (a new setting)
        "PYTHONPATH": str(source),
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(log_name: str, *command: str) -> None:
        processes.append(
            subprocess.Popen(
                [sys.executable, *command],
                env=env,
                cwd=source,
                stdout=(work / f"{name}-{log_name}.log").open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    try:
        spawn("migrate", "-m", "docproc.cli", "db", "upgrade")
        processes[-1].wait()
        spawn("api", "-m", "docproc.cli", "serve", "--port", str(port))
        spawn("worker", "-m", "docproc.cli", "worker", "--concurrency", "1", "--queues", "batch")
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base_url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"the API did not start; see {work}"
                time.sleep(0.3)
        with httpx.Client(base_url=base_url, timeout=60) as client:
            document_id = client.post("/v1/documents", files={"file": ("note.txt", NOTE)}).json()["id"]
        measure(base_url, document_id, 4, 100)  # warm-up: connections, pools, caches
        yield base_url, document_id, psutil.Process(processes[1].pid)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
        redis.shutdown_nosave()
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", default="1,16,50", help="concurrency levels, comma-separated")
    parser.add_argument("--requests", type=int, default=800, help="submits per level (at least 4 per client)")
    parser.add_argument("--baseline", default="main", help="git revision measured as `before`")
    parser.add_argument("--api-processes", type=int, default=1, help="uvicorn processes of the `after` API")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("DOCPROC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument(
        "--models-dir", type=Path, default=Path.home() / ".cache" / "docproc-tests" / "models"
    )
    parser.add_argument("--rounds", type=int, default=4, help="turns per level, alternating the variants")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()
    args.clients = [int(n) for n in args.clients.split(",")]
    work = Path(tempfile.mkdtemp(prefix="docproc-latency-"))
    baseline = work / "baseline"
    baseline.mkdir()
    archive = subprocess.run(
        ["git", "archive", args.baseline], cwd=REPO, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
    latencies: dict[tuple[str, int], list[float]] = defaultdict(list)
    cpu_ms: dict[tuple[str, int], float] = defaultdict(float)
    try:
        with contextlib.ExitStack() as stack:
            running = {
                "before": stack.enter_context(variant("before", baseline, args, work)),
                "after": stack.enter_context(variant("after", REPO, args, work)),
            }
            for clients in args.clients:
                for _ in range(args.rounds):
                    for name, (base_url, document_id, api) in running.items():
                        requests = max(args.requests // args.rounds, clients * 4)
                        cpu_before = api_cpu_s(api)
                        latencies[name, clients] += measure(base_url, document_id, clients, requests)
                        cpu_ms[name, clients] += (api_cpu_s(api) - cpu_before) * 1000
                for name in running:
                    values = latencies[name, clients]
                    p50, p99 = percentile(values, 50), percentile(values, 99)
                    print(f"{name}: {clients} clients: p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    after_label = f"after ({args.api_processes} API processes)" if args.api_processes > 1 else "after"
    print(
        f"\n| clients | before ({args.baseline}) p50 / p99 ms | {after_label} p50 / p99 ms "
        "| API CPU ms per submit, before / after | submits each |"
    )
    print("|---:|---:|---:|---:|---:|")
    for clients in args.clients:
        b, a = latencies["before", clients], latencies["after", clients]
        cpu_b, cpu_a = cpu_ms["before", clients] / len(b), cpu_ms["after", clients] / len(a)
        print(
            f"| {clients} | {percentile(b, 50):.1f} / {percentile(b, 99):.1f} "
            f"| {percentile(a, 50):.1f} / {percentile(a, 99):.1f} | {cpu_b:.2f} / {cpu_a:.2f} | {len(a)} |"
        )


if __name__ == "__main__":
    main()

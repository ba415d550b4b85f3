"""What live progress streams cost the API process: CPU time with N open SSE streams on a queued job.

Each stream reads its job from the database every DOCPROC_EVENTS_POLL_S; this measures the API process's CPU
(user + system, all threads) over a window with 0, 10, 50 and 100 streams open, against the same server with
none, so the table shows the polling's price per stream.

    python bench/events/bench_streams.py [--database-url URL] [--broker-url redis://127.0.0.1:6379/3]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hold_stream(url: str, stop: threading.Event, opened: threading.Semaphore, live: list[str]) -> None:
    """Keep one event stream open (reading its pings) until `stop`; in `live` while it is open."""
    try:
        with httpx.Client(timeout=None) as client, client.stream("GET", url) as response:
            if response.status_code == 200:
                live.append(url)
            opened.release()
            for _ in response.iter_bytes():
                if stop.is_set():
                    break
    except httpx.HTTPError:  # the server stopped under it
        opened.release()
    if url in live:
        live.remove(url)


def measure(process: psutil.Process, window_s: float) -> float:
    """CPU seconds per second used by the process over the window."""
    before = process.cpu_times()
    time.sleep(window_s)
    after = process.cpu_times()
    return (after.user - before.user + after.system - before.system) / window_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--broker-url", default=None, help="Default: the embedded queue in a temp data dir.")
    parser.add_argument("--poll-s", type=float, default=0.5)
    parser.add_argument("--window-s", type=float, default=20.0)
    parser.add_argument("--streams", default="0,10,50,100")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bev-"))  # short: the embedded queue's socket path is limited
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPROC_")} | {
        "DOCPROC_DATA_DIR": str(data_dir),
        "DOCPROC_DATABASE_URL": args.database_url or f"sqlite:///{data_dir / 'docproc.db'}",
        "DOCPROC_EVENTS_POLL_S": str(args.poll_s),
        "DOCPROC_EVENTS_PING_S": "2",  # so that closed streams end soon between rounds
        "DOCPROC_MODELS_DIR": str(Path.home() / ".cache" / "docproc-tests" / "models"),
        "PYTHONPATH": str(REPO),
    }
    if args.broker_url:
        env["DOCPROC_BROKER_URL"] = args.broker_url
    server = subprocess.Popen(
        [sys.executable, "-m", "docproc.cli", "serve", "--port", str(port)],
        env=env,
        stdout=(data_dir / "api.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        with httpx.Client(base_url=base, timeout=60) as client:
            document = client.post("/v1/documents", files={"file": ("n.txt", b"A queued job's note.")}).json()
            job = client.post(
                "/v1/jobs", json={"document_id": document["id"]}
            ).json()  # no worker: stays queued
        process = psutil.Process(server.pid)
        rows = []
        for count in (int(n) for n in args.streams.split(",")):
            stop = threading.Event()
            opened = threading.Semaphore(0)
            live: list[str] = []
            threads = [
                threading.Thread(
                    target=hold_stream,
                    args=(f"{base}/v1/jobs/{job['id']}/events", stop, opened, live),
                    daemon=True,
                )
                for _ in range(count)
            ]
            for thread in threads:
                thread.start()
            for _ in threads:
                opened.acquire()
            time.sleep(2)  # every stream past its first read
            cpu = measure(process, args.window_s)
            rows.append((count, cpu))
            assert len(live) == count, f"{len(live)} of {count} streams open; see {data_dir / 'api.log'}"
            stop.set()  # each thread ends at its next ping
            for thread in threads:
                thread.join()
    finally:
        server.terminate()  # uvicorn waits for open streams to close: give it a while, then kill
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
    idle = rows[0][1]
    database = env["DOCPROC_DATABASE_URL"].split(":")[0]
    print(f"poll every {args.poll_s} s, {args.window_s:.0f} s windows, {database}")
    print("| open streams | SELECTs/s | API CPU (% of a core) | per stream (% of a core) |")
    print("|---:|---:|---:|---:|")
    for count, cpu in rows:
        per_stream = f"{100 * (cpu - idle) / count:.2f}" if count else "–"
        print(f"| {count} | {count / args.poll_s:.0f} | {100 * cpu:.1f} | {per_stream} |")


if __name__ == "__main__":
    main()

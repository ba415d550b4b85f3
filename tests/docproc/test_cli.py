"""README command 1: `docproc summarize` with the embedded defaults (SQLite file, embedded Redis, SmolLM2)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import MODELS_DIR, SAMPLE_PDF


def test_summarize_with_embedded_defaults(tmp_path: Path, default_model: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPROC_")}
    env |= {"DOCPROC_DATA_DIR": str(tmp_path / "data"), "DOCPROC_MODELS_DIR": str(MODELS_DIR)}
    command = [
        sys.executable,
        "-m",
        "docproc.cli",
        "summarize",
        str(SAMPLE_PDF),
        "--max-words",
        "50",
        "--json",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    view = json.loads(done.stdout)
    assert view["status"] == "succeeded"
    assert view["result"]["model"] == "SmolLM2-135M-Instruct"
    assert len(view["result"]["summary"].split()) > 10
    # Everything lived under the data dir: the SQLite database and the embedded Redis server's files.
    assert (tmp_path / "data" / "docproc.db").exists()
    assert list((tmp_path / "data").glob("queue.rdb*"))

    missing = subprocess.run(
        [sys.executable, "-m", "docproc.cli", "summarize", str(tmp_path / "data" / "docproc.db")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode != 0 and "unsupported_type" in missing.stderr


def test_service_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPROC_")}
    env |= {"DOCPROC_DATA_DIR": str(tmp_path / "data")}

    def docproc(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "docproc.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    assert docproc("db", "upgrade").returncode == 0
    for command in ("status", "cancel"):
        done = docproc(command, "job_unknown")
        assert done.returncode == 1
        assert done.stderr.strip() == "Error: not_found: No job with id 'job_unknown'.", done.stderr


def test_summarize_with_a_chosen_method(tmp_path: Path, default_model: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPROC_")}
    env |= {"DOCPROC_DATA_DIR": str(tmp_path / "data"), "DOCPROC_MODELS_DIR": str(MODELS_DIR)}
    command = [sys.executable, "-m", "docproc.cli", "summarize", str(SAMPLE_PDF), "--max-words", "40"]
    done = subprocess.run(
        [*command, "--method", "extractive", "--json"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)["result"]
    assert result["method"] == "extractive" and result["summary"], result

    unknown = subprocess.run(
        [*command, "--method", "guess"], env=env, capture_output=True, text=True, timeout=300
    )
    assert unknown.returncode == 2 and "--method" in unknown.stderr

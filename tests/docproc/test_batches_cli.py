"""`docproc batch DIR`: in-process uploads, a worker it starts itself, a progress bar, the results file."""

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, service_env


def test_batch_command_summarizes_a_directory(tmp_path: Path, default_model: Path) -> None:
    folder = tmp_path / "inbox"
    (folder / "notes").mkdir(parents=True)
    (folder / "a.txt").write_text("The village hall got a shared battery that stores the roofs' solar power.")
    (folder / "notes" / "b.md").write_text("# Wind\n\nTwo small turbines were added on the ridge in spring.")
    (folder / "empty.txt").write_bytes(b"")
    (folder / ".hidden.txt").write_text("never read")
    out = tmp_path / "results.jsonl"

    env = service_env(tmp_path / "data", f"sqlite:///{tmp_path / 'docproc.db'}", COLUMNS="200")
    command = [
        sys.executable,
        "-m",
        "docproc.cli",
        "batch",
        str(folder),
        "--out",
        str(out),
        "--max-words",
        "10",
        "--method",
        "abstractive",
    ]
    run = subprocess.run(
        [*command, "--worker"], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )

    assert run.returncode == 1, run.stderr  # one file could not be read
    lines = {Path(line["custom_id"]).name: line for line in map(json.loads, out.read_text().splitlines())}
    assert sorted(lines) == ["a.txt", "b.md", "empty.txt"]
    assert lines["empty.txt"]["status"] == "failed" and lines["empty.txt"]["error"]["code"] == "empty_file"
    for name in ("a.txt", "b.md"):
        assert lines[name]["status"] == "succeeded" and lines[name]["result"]["summary"], lines[name]
        assert lines[name]["result"]["method"] == "abstractive"  # --method, not auto's extract_compress
    assert "completed: 2 summarized, 1 failed, 0 cancelled" in run.stderr

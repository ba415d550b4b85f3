"""bench/kernels/bench_gated_delta_rule.py keeps working: its --smoke run (CPU, reference column)."""

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    script = REPO_ROOT / "bench" / "kernels" / "bench_gated_delta_rule.py"
    result = subprocess.run(
        [sys.executable, str(script), "--smoke", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith(("| chunk", "| decode"))]
    assert [row.split("|")[1:5] for row in rows] == [
        [" chunk ", " 256 ", " 1 ", " reference "],
        [" decode ", " 1 ", " 1 ", " reference "],
        [" decode ", " 1 ", " 2 ", " reference "],
    ]

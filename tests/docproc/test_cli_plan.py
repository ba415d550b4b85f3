"""`docproc plan`: the memory table per device for a checkpoint's config.json, and its refusals."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from docproc.cli import main
from tests.model.test_plan import FP8_80B, QWEN3_NEXT_80B


def plan(config: dict, directory: Path, *args: str) -> Result:
    """The command in this process (it imports torch: a subprocess would spend most of its time on that)."""
    (directory / "config.json").write_text(json.dumps(config))
    return CliRunner().invoke(main, ["plan", "--model", str(directory), *args])


def test_cli_prints_the_plan_per_device(tmp_path: Path) -> None:
    done = plan(FP8_80B, tmp_path, "--tokens", "1000000", "--devices", "cuda:0,cuda:1", "--memory-gib", "80")
    assert done.exit_code == 0, done.output
    rows = [line for line in done.stdout.splitlines() if "cuda:" in line]
    assert len(rows) == 2 and "0-23" in rows[0] and "24-47" in rows[1] and all("yes" in r for r in rows)
    assert "11.48 GiB" in rows[0]  # the KV cache of 6 attention layers at 1M tokens in bf16
    too_small = plan(FP8_80B, tmp_path, "--tokens", "1000000", "--devices", "cuda:0", "--memory-gib", "80")
    assert too_small.exit_code == 1 and "NO" in too_small.stdout


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"model_type": "llama"}, "unsupported model_type 'llama'"),
        (QWEN3_NEXT_80B, "at most one device per layer"),
    ],
)
def test_cli_refuses_what_it_cannot_plan(tmp_path: Path, config: dict, message: str) -> None:
    done = plan(config, tmp_path, "--tokens", "10", "--devices", ",".join(["cuda:0"] * 49))
    assert done.exit_code == 1 and message in done.output

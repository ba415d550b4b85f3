"""The CLI with --server: every command through the live server's REST API (docproc.client), nothing on this
machine's database or queue; the same output as the embedded mode."""

import json
from pathlib import Path

from tests.conftest import Service
from tests.docproc.conftest import run_cli


def test_cli_commands_through_a_server(live_service: Service, tmp_path: Path) -> None:
    # No database, queue or model here: only the server's address (and a data dir that must stay empty).
    env = {k: v for k, v in live_service.env.items() if not k.startswith("DOCPROC_")}
    env |= {"DOCPROC_DATA_DIR": str(tmp_path / "local"), "COLUMNS": "200"}
    note = tmp_path / "note.txt"
    note.write_text("The cooperative's 40 solar roofs made 1.2 GWh in 2024. Members voted for a battery.")

    done = run_cli(
        env, "summarize", str(note), "--server", live_service.url, "--method", "extractive", "--json"
    )
    view = json.loads(done.stdout)
    assert view["status"] == "succeeded" and view["result"]["method"] == "extractive"
    assert "40 solar roofs" in view["result"]["summary"]
    assert f"job {view['id']} submitted" in done.stderr
    # Progress lines (no terminal here) from the job's event stream, the final one included.
    assert "succeeded: " in done.stderr and " tokens, " in done.stderr

    env["DOCPROC_SERVER"] = live_service.url
    assert run_cli(env, "status", view["id"]).stdout.splitlines()[0].startswith(f"{view['id']}  succeeded")
    assert json.loads(run_cli(env, "result", view["id"], "--json").stdout) == view["result"]
    assert view["id"] in [job["id"] for job in json.loads(run_cli(env, "jobs", "--json").stdout)]
    assert view["document_id"] in run_cli(env, "documents").stdout
    missing = run_cli(env, "status", "job_" + "0" * 32, ok=False)
    assert missing.stderr.strip() == f"Error: not_found: No job with id 'job_{'0' * 32}'."

    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a.txt").write_text("Two small wind turbines were added on the ridge in spring.")
    (folder / "empty.txt").write_bytes(b"")
    out = tmp_path / "results.jsonl"
    made = run_cli(env, "batch", str(folder), "--out", str(out), "--method", "extractive", ok=False)
    assert "completed: 1 summarized, 1 failed, 0 cancelled" in made.stderr  # the empty file is refused
    lines = {Path(line["custom_id"]).name: line for line in map(json.loads, out.read_text().splitlines())}
    assert lines["a.txt"]["status"] == "succeeded" and lines["empty.txt"]["error"]["code"] == "empty_file"
    batch_id = made.stderr.split("batch ")[1].split()[0]
    assert json.loads(run_cli(env, "batches", "status", batch_id, "--json").stdout)["status"] == "completed"
    assert not (tmp_path / "local" / "docproc.db").exists()

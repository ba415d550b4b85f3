"""The CLI covers the API: jobs, result, documents delete, batches (list, status, results, cancel), --version,
--quiet; each end to end against a real database, Redis and worker."""

import json
from pathlib import Path

from tests.docproc.conftest import CliRun


def test_cli_commands_end_to_end(tmp_path: Path, docproc: CliRun) -> None:
    assert docproc("--version").stdout.startswith("docproc, version ")
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a.txt").write_text("The village hall got a shared battery that stores the roofs' solar power.")
    (folder / "b.txt").write_text("Two small wind turbines were added on the ridge in spring.")
    out = str(tmp_path / "out.jsonl")
    made = docproc("batch", str(folder), "--out", out, "--max-words", "10", "--worker")
    assert "batch batch_" in made.stderr and "submitted" in made.stderr

    [batch] = json.loads(docproc("batches", "--json").stdout)
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == 2
    assert batch["id"] in docproc("batches").stdout
    status = json.loads(docproc("batches", "status", batch["id"], "--json").stdout)
    assert status == batch
    lines = [json.loads(line) for line in docproc("batches", "results", batch["id"]).stdout.splitlines()]
    assert [Path(line["custom_id"]).name for line in lines] == ["a.txt", "b.txt"]  # input order
    # Cancelling a finished batch changes nothing.
    assert json.loads(docproc("batches", "cancel", batch["id"], "--json").stdout) == batch

    jobs = json.loads(docproc("jobs", "--status", "succeeded", "--json").stdout)
    assert sorted(job["id"] for job in jobs) == sorted(line["job_id"] for line in lines)
    assert {(job["batch_id"], Path(job["custom_id"]).name) for job in jobs} == {
        (batch["id"], "a.txt"),
        (batch["id"], "b.txt"),
    }
    assert json.loads(docproc("jobs", "--status", "queued", "--json").stdout) == []
    # A document's tokens are the tokens its job reads.
    tokens = {d["id"]: d["tokens"] for d in json.loads(docproc("documents", "--json").stdout)}
    assert {job["document_id"]: job["progress"]["tokens_total"] for job in jobs} == tokens
    first = lines[0]
    by_document = json.loads(docproc("jobs", "--document", first["document_id"], "--json").stdout)
    assert [job["id"] for job in by_document] == [first["job_id"]]
    assert first["job_id"] in docproc("jobs").stdout

    assert docproc("result", first["job_id"]).stdout.strip() == first["result"]["summary"]
    assert json.loads(docproc("result", first["job_id"], "--json").stdout) == first["result"]
    docproc("result", "job_nope", ok=False)

    docproc("documents", "delete", first["document_id"])
    remaining = json.loads(docproc("documents", "--json").stdout)
    assert [Path(d["filename"]).name for d in remaining] == ["b.txt"]
    docproc("documents", "delete", first["document_id"], ok=False)
    # History stays: the batch, its counts and the deleted document's result.
    assert json.loads(docproc("batches", "status", batch["id"], "--json").stdout) == batch
    assert docproc("result", first["job_id"]).stdout.strip() == first["result"]["summary"]

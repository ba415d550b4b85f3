"""`docproc ask` and `docproc extract`: end to end against a real database, Redis and worker, and their
errors (one line, exit status 1, nothing stored)."""

import json
from pathlib import Path

import jsonschema

from tests.docproc.conftest import CliRun

SCHEMA = {
    "type": "object",
    "properties": {
        "kind": {"enum": ["report", "letter"]},
        "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
    },
    "required": ["kind", "year"],
}


def test_extract_and_ask_from_the_command_line(tmp_path: Path, docproc: CliRun) -> None:
    report = tmp_path / "report.txt"
    report.write_text("Annual report 2024 of the Sunrise Cooperative. The plant produced 4200 kWh.")
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    view = json.loads(
        docproc("extract", str(report), "--schema", str(schema), "--json", "-q", "--worker").stdout
    )
    assert view["status"] == "succeeded" and view["result"]["task"] == "extract"
    jsonschema.validate(view["result"]["data"], SCHEMA)

    # A question on the uploaded document, by its id: no upload again.
    document_id = view["document_id"]
    answer = docproc(
        "ask", document_id, "How much did the plant produce?", "--max-words", "10", "-q", "--worker"
    )
    assert answer.stdout.strip()
    [document] = json.loads(docproc("documents", "--json").stdout)
    assert document["id"] == document_id


def test_errors_end_in_one_line_and_store_nothing(tmp_path: Path, docproc: CliRun) -> None:
    report = tmp_path / "report.txt"
    report.write_text("A short report.")
    not_json = tmp_path / "bad.json"
    not_json.write_text("{not json")
    unsupported = tmp_path / "pattern.json"
    unsupported.write_text(
        json.dumps({"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}})
    )

    failed = docproc("ask", "doc_" + "0" * 32, "Why?", "--no-worker", ok=False)
    assert failed.stderr.strip().splitlines()[-1].startswith("Error: not_found:")
    failed = docproc("extract", str(report), "--schema", str(not_json), "--no-worker", ok=False)
    assert "Error: invalid_schema: bad.json is not JSON" in failed.stderr
    failed = docproc("extract", str(report), "--schema", str(unsupported), "--no-worker", ok=False)
    assert "Error: invalid_options:" in failed.stderr and "pattern" in failed.stderr
    failed = docproc("ask", str(report), "", "--no-worker", ok=False)
    assert "Error: invalid_options:" in failed.stderr
    assert json.loads(docproc("jobs", "--json").stdout) == []
    assert json.loads(docproc("documents", "--json").stdout) == []

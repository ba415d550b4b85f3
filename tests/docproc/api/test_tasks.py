"""Ask and extract end to end: HTTP API, one real worker on Redis, the real default model (SmolLM2), SQLite.

One service for the module: the tests upload documents of their own and do not depend on each other's data.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest

from tests.conftest import REPO, Service, service_env

SCHEMAS = json.loads((REPO / "bench" / "grammar" / "schemas.json").read_text())
REPORT = (
    "Solar report 2024. The Sunrise Cooperative of Germany, chaired by Anna Berg with treasurer Tom Lee, "
    "produced 4200 kWh and earned 1250000 EUR in revenue. The annual report was published in March."
)
FILLER = "The committee reviewed the maintenance schedule of the cooperative and discussed routine matters. "
PLANTED_PAGE = 23


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Iterator[Service]:
    tmp_path = tmp_path_factory.mktemp("tasks")
    running = Service(service_env(tmp_path / "data", f"sqlite:///{tmp_path / 'docproc.db'}"), tmp_path)
    running.start_api()
    running.start_worker()
    yield running
    running.stop()


def upload(client: httpx.Client, name: str, text: str) -> str:
    response = client.post("/v1/documents", files={"file": (name, text.encode())})
    assert response.status_code in (200, 201), response.text  # 200: these bytes were uploaded before
    return response.json()["id"]


def result_of(service: Service, client: httpx.Client, job: httpx.Response) -> dict:
    assert job.status_code == 201, job.text
    done = service.wait_job(client, job.json()["id"], {"succeeded", "failed"}, timeout=600)
    assert done["status"] == "succeeded", done
    return client.get(f"/v1/jobs/{done['id']}/result").json()


@pytest.mark.parametrize("method", ["auto", "abstractive"])
def test_ask_finds_and_cites_a_fact_planted_in_a_long_document(service: Service, method: str) -> None:
    """SmolLM2 answers extractively by default (a sentence of the document), or in its own words."""
    # 40 pages (form feeds), about 24,000 tokens: three times SmolLM2's context, so it reads passages.
    pages = [FILLER * 30 for _ in range(40)]
    pages[PLANTED_PAGE - 1] = FILLER * 10 + "The secret vault code of the cooperative is 7431. " + FILLER * 10
    with service.client() as client:
        document_id = upload(client, "minutes.txt", "\f".join(pages))
        job = client.post(
            "/v1/jobs",
            json={
                "document_id": document_id,
                "task": "ask",
                "options": {
                    "question": "What is the secret vault code of the cooperative?",
                    "max_words": 20,
                    "max_citations": 1,
                    "method": method,
                },
            },
        )
        result = result_of(service, client, job)
    assert result["task"] == "ask" and result["summary"] is None and result["data"] is None
    assert result["method"] == ("extractive" if method == "auto" else "abstractive")
    assert "7431" in result["answer"], result
    assert PLANTED_PAGE in [citation["page"] for citation in result["citations"]], result
    assert all(citation["quote"] for citation in result["citations"])
    assert result["dropped_quotes"] >= 0 and result["usage"]["cached_tokens"] == 0
    assert [PLANTED_PAGE, PLANTED_PAGE] in result["source_pages"]


def test_extract_gives_valid_data_for_five_schemas(service: Service) -> None:
    with service.client() as client:
        document_id = upload(client, "report.txt", REPORT)
        # As one batch of five extract items: the batch path takes per-item tasks and options.
        lines = "\n".join(
            json.dumps(
                {
                    "custom_id": f"schema-{n}",
                    "document_id": document_id,
                    "task": "extract",
                    "options": {"schema": s, "max_citations": 1},
                }
            )
            for n, s in enumerate(SCHEMAS)
        )
        batch = client.post("/v1/batches", files={"file": ("in.jsonl", lines.encode())})
        assert batch.status_code == 201, batch.text
        for n, schema in enumerate(SCHEMAS):
            job_id = next(
                job["id"]
                for job in client.get("/v1/jobs", params={"document_id": document_id}).json()["data"]
                if job["custom_id"] == f"schema-{n}"
            )
            done = service.wait_job(client, job_id, {"succeeded", "failed"}, timeout=600)
            assert done["status"] == "succeeded", done
            result = client.get(f"/v1/jobs/{job_id}/result").json()
            jsonschema.validate(result["data"], schema)
            assert result["task"] == "extract" and result["answer"] is None
            for citation in result["citations"]:
                assert " ".join(citation["quote"].split()).lower() in REPORT.lower()


@pytest.mark.parametrize(
    ("task", "options", "reason"),
    [
        ("ask", {}, "question"),
        ("ask", {"question": "   "}, "empty"),
        ("ask", {"question": "x" * 4001}, "4000"),
        ("ask", {"question": "Why?", "method": "extract_compress"}, "method"),  # a summary method
        ("summarize", {"question": "Why?"}, "question"),
        ("extract", {"schema": {"type": "array", "items": {"type": "string"}}}, "object"),
        (
            "extract",
            {"schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": "x+"}}}},
            "pattern",
        ),
        ("extract", {"schema": {"type": "object", "properties": {"a": {"$ref": "#"}}}}, "$ref"),
        ("extract", {"schema": "not a schema"}, "schema"),
    ],
)
def test_bad_options_are_refused_and_nothing_is_stored(
    service: Service, task: str, options: dict, reason: str
) -> None:
    with service.client() as client:
        document_id = upload(
            client, f"bad-{task}-{reason}.txt", f"A short document about {task} and {reason}."
        )
        response = client.post(
            "/v1/jobs", json={"document_id": document_id, "task": task, "options": options}
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"]["code"] == "invalid_options"
        assert reason in json.dumps(response.json()["detail"])
        assert client.get("/v1/jobs", params={"document_id": document_id}).json()["total"] == 0


def test_too_deep_or_large_schema_and_unknown_task_are_refused(service: Service) -> None:
    deep: dict = {"type": "string"}
    for _ in range(7):
        deep = {"type": "object", "properties": {"a": deep}}
    large = {"type": "object", "properties": {f"field_{n}": {"type": "string"} for n in range(1000)}}
    with service.client() as client:
        document_id = upload(client, "bounds.txt", "A short document about bounds.")
        for schema, reason in ((deep, "deeper than 6"), (large, "larger than 16384")):
            response = client.post(
                "/v1/jobs",
                json={"document_id": document_id, "task": "extract", "options": {"schema": schema}},
            )
            assert response.status_code == 422 and reason in response.text, response.text
        response = client.post("/v1/jobs", json={"document_id": document_id, "task": "translate"})
        assert response.status_code == 422 and "task" in response.text
        assert client.get("/v1/jobs", params={"document_id": document_id}).json()["total"] == 0
        openapi = client.get("/openapi.json").json()
        tasks = openapi["components"]["schemas"]["JobIn"]["properties"]["task"]
        assert set(tasks["enum"]) == {"summarize", "ask", "extract"}

"""The OpenAPI document tells the truth: schemathesis drives the live server from it (valid and invalid
requests, authenticated) and finds no server error and no response outside the documented statuses and
shapes."""

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Service

EXAMPLES_PER_OPERATION = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_every_operation_documents_its_errors_and_the_bearer_scheme(module_api: Service) -> None:
    document = httpx.get(f"{module_api.url}/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["HTTPBearer"]["description"],
    }
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            assert operation["security"] == [{"HTTPBearer": []}], name
            headers = [p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"]
            assert "authorization" not in headers, name
            errors = {status: r for status, r in operation["responses"].items() if status >= "400"}
            assert "401" in errors, name
            for status, response in errors.items():
                assert response["content"]["application/json"]["schema"] == envelope, (name, status)
            if "{" in path:
                assert "404" in errors, name
            if "parameters" in operation or "requestBody" in operation:
                assert "422" in errors, name


def test_live_api_conforms_to_its_schema(module_api: Service) -> None:
    """Each operation, with valid then invalid requests (a few dozen each), authenticated with a real key."""
    schema = schemathesis.openapi.from_url(f"{module_api.url}/openapi.json")
    headers = {"Authorization": f"Bearer {module_api.keys[0]}"}
    failures: list[str] = []
    for operation in (result.ok() for result in schema.get_all_operations()):
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,  # the same requests on every run
                database=None,
            )
            def call(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                call()
            except Unsatisfiable:  # an operation without inputs has no invalid requests
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:  # one report for every operation, not only the first that fails
                failures.append(f"{operation.label} ({mode}): {exc}")
    assert not failures, "\n\n".join(failures)

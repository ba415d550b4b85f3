"""The OpenAPI document tells the truth: schemathesis drives the live server from it (valid and invalid
requests, authenticated) and finds no server error and no response outside the documented statuses and
shapes."""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Service

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


@pytest.fixture
def live_schema(module_api: Service) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{module_api.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("live_schema")


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same requests on every run
)
def test_live_api_conforms_to_its_schema(case: schemathesis.Case, module_api: Service) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {module_api.keys[0]}"}, checks=CHECKS)

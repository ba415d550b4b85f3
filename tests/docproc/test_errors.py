"""The OpenAI-shaped error envelope: the same error, the type OpenAI's SDKs expect, the field as `param`."""

from docproc.errors import ServiceError, openai_error_envelope


def test_openai_envelope_names_type_and_field() -> None:
    invalid = ServiceError(
        422, "invalid_request", "Bad.", errors=[{"loc": ["body", "tools"], "type": "x", "msg": "m"}]
    )
    assert openai_error_envelope(invalid) == {
        "error": {
            "message": "Bad.",
            "type": "invalid_request_error",
            "param": "tools",
            "code": "invalid_request",
        }
    }
    options = ServiceError(
        422, "invalid_options", "Bad.", errors=[{"loc": ["temperature"], "type": "x", "msg": "m"}]
    )
    assert openai_error_envelope(options)["error"]["param"] == "temperature"
    assert (
        openai_error_envelope(ServiceError(401, "unauthorized", "Key."))["error"]["type"]
        == "authentication_error"
    )
    assert openai_error_envelope(ServiceError(503, "busy", "Later."))["error"] == {
        "message": "Later.",
        "type": "server_error",
        "param": None,
        "code": "busy",
    }

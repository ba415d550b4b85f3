"""Task options: what a job may ask for, refused before anything is stored."""

import pytest
from pydantic import ValidationError

from docproc.task_options import AskOptions, ExtractOptions

OBJECT = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def nested(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels - 1):
        schema = {"type": "object", "properties": {"inner": schema}}
    return schema


def test_a_question_is_stripped_and_bounded() -> None:
    assert AskOptions(question="  Who?  ").question == "Who?"
    for question in ("", "   ", "x" * 4001):
        with pytest.raises(ValidationError):
            AskOptions(question=question)


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "array", "items": {"type": "string"}}, "must describe an object"),
        ({"type": "object", "properties": {}}, "at least one property"),
        (
            {"type": "object", "properties": {"a": {"type": "string", "format": "date"}}},
            "unsupported keywords format",
        ),
        (
            {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}]}}},
            "unsupported keywords anyOf",
        ),
        ({"type": "object", "properties": {"a": {"type": "date"}}}, "needs a type"),
        ({"type": "object", "properties": {"a": {"enum": []}}}, "non-empty list"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}, "required"),
        ({"type": "object", "properties": {"a": {"type": "array"}}}, "items is missing"),
        ({"type": "object", "properties": {"a": {"type": "string", "items": {}}}}, "without that type"),
        (nested(7), "deeper than 6"),
        ({"type": "object", "properties": {f"p{n}": {"type": "number"} for n in range(800)}}, "larger than"),
    ],
)
def test_unsupported_schemas_are_refused(schema: dict, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        ExtractOptions.model_validate({"schema": schema})


def test_supported_schemas_are_kept_as_given() -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"enum": ["a", "b"]},
            "items": {"type": "array", "items": OBJECT, "maxItems": 3},
            "flag": {"type": "boolean", "description": "whether"},
        },
        "required": ["kind"],
        "additionalProperties": False,
    }
    options = ExtractOptions.model_validate({"schema": nested(6) | {"type": "object"}})
    assert options.json_schema["type"] == "object"
    dumped = ExtractOptions.model_validate({"schema": schema}).model_dump(exclude_none=True)
    assert dumped["schema"] == schema and "json_schema" not in dumped
    with pytest.raises(ValidationError, match="question"):
        ExtractOptions.model_validate({"schema": schema, "question": "Why?"})

"""The chat task's request options, stop sequences and structured-output check."""

import pytest
from pydantic import ValidationError

from docproc.chat import ChatError, ChatOptions, ResponseFormat, _conforming_json, _cut_at_stop

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CITY = ResponseFormat.model_validate({"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}})


def test_document_ids_are_the_file_parts_in_order_each_once() -> None:
    def part(file_id: str) -> dict:
        return {"type": "file", "file": {"file_id": file_id}}

    options = ChatOptions.model_validate(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [part("doc_b"), {"type": "text", "text": "and"}, part("doc_a")]},
                {"role": "user", "content": [part("doc_b")]},
            ]
        }
    )
    assert options.document_ids == ["doc_b", "doc_a"]


def test_options_refuse_what_cannot_run() -> None:
    with pytest.raises(ValidationError, match="not a valid JSON schema"):
        ResponseFormat.model_validate(
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 3}}}
        )
    with pytest.raises(ValidationError, match="needs a json_schema"):
        ChatOptions.model_validate(
            {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}}
        )
    with pytest.raises(ValidationError):
        ChatOptions.model_validate({"messages": [{"role": "user", "content": "x"}], "stop": ["a"] * 5})


def test_the_answer_ends_before_the_first_stop_sequence() -> None:
    assert _cut_at_stop("The capital is Paris. It is big.", ["Paris", " is"]) == "The capital"
    assert _cut_at_stop("No stop here", ["\n\n"]) == "No stop here"


def test_json_answers_are_unfenced_and_checked_against_the_schema() -> None:
    assert _conforming_json('```json\n{"city": "Paris"}\n```', CITY) == '{"city": "Paris"}'
    with pytest.raises(ChatError) as mismatch:
        _conforming_json('{"town": "Paris"}', CITY)
    assert (mismatch.value.status, mismatch.value.code) == (422, "json_schema_mismatch")
    with pytest.raises(ChatError) as not_json:
        _conforming_json("The capital of France is Paris.", CITY)
    assert not_json.value.code == "json_output_invalid"
    json_object = ResponseFormat(type="json_object")
    with pytest.raises(ChatError, match="not a JSON object"):
        _conforming_json('"Paris"', json_object)
    assert _conforming_json('{"a": 1}', json_object) == '{"a": 1}'

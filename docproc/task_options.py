"""The options a client may pass with each task, validated before a job is stored.

The API validates jobs with these models, so this module imports neither torch nor model/ (the API process
never loads torch); the worker turns them into sampling and prompts (docproc.tasks).
"""

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from docproc.errors import ServiceError, describe, field_errors, shorten
from docproc.settings import get_settings

Model = TypeVar("Model", bound=BaseModel)

Method = Literal["auto", "extract_compress", "extractive", "abstractive"]
TaskName = Literal["summarize", "ask", "extract"]

MAX_QUESTION_CHARS = 4000
# JSON Schema keywords an extract schema may use: what the grammar and jsonschema both enforce the same way.
SCHEMA_KEYWORDS = frozenset(
    {"type", "properties", "required", "items", "enum", "minItems", "maxItems", "additionalProperties"}
    | {"minLength", "maxLength", "minimum", "maximum", "title", "description"}
)
SCHEMA_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean"})


class TaskOptions(BaseModel):
    """Options of every task. Unset sampling fields take the engine's preset (Qwen's, else greedy)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0, le=2**31 - 1)
    # Engines pass the seed to torch or to an OpenAI-compatible server: both take a 64-bit integer.
    seed: int = Field(0, ge=0, le=2**63 - 1)
    # Read at most this many tokens of the document (cheap runs, load tests).
    max_input_tokens: int | None = Field(None, ge=1, le=2**31 - 1)


class SummarizeOptions(TaskOptions):
    max_words: int = Field(150, ge=10, le=2000)
    instructions: str | None = Field(None, max_length=2000)
    # auto: extract_compress for models smaller than DOCPROC_COMPRESS_BELOW_PARAMETERS, else abstractive
    # (the streaming read for the hybrid engine, hierarchical for others). extractive: no model at all.
    method: Method = "auto"


class CitingOptions(TaskOptions):
    # Quotes the answer may cite (each checked on its page); 0: none.
    max_citations: int = Field(3, ge=0, le=10)


AnswerMethod = Literal["auto", "extractive", "abstractive"]


class AskOptions(CitingOptions):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    max_words: int = Field(80, ge=5, le=2000)
    # auto: extractive for models smaller than DOCPROC_COMPRESS_BELOW_PARAMETERS (which answer few questions
    # right in their own words: README, bench/ask/quality.py), else abstractive. extractive: the answer is
    # the document's sentence that best matches the question, cited on its page; no model runs.
    method: AnswerMethod = "auto"

    @field_validator("question")
    @classmethod
    def _not_blank(cls, question: str) -> str:
        if not question.strip():
            raise ValueError("the question is empty")
        return question.strip()


class ExtractOptions(CitingOptions):
    # `schema` shadows a BaseModel attribute in pydantic; the field is named json_schema and spelt schema.
    json_schema: dict[str, Any] = Field(alias="schema", description="A JSON Schema object; see README.")
    instructions: str | None = Field(None, max_length=2000)

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    @field_validator("json_schema")
    @classmethod
    def _supported(cls, schema: dict[str, Any]) -> dict[str, Any]:
        settings = get_settings()
        if len(json.dumps(schema)) > settings.extract_schema_max_bytes:
            raise ValueError(f"the schema is larger than {settings.extract_schema_max_bytes} bytes of JSON")
        if schema.get("type") != "object":
            raise ValueError('the schema must describe an object ("type": "object")')
        check_schema(schema, settings.extract_schema_max_depth)
        return schema


def check_schema(schema: object, max_depth: int, where: str = "schema", depth: int = 1) -> None:
    """Raise ValueError unless `schema` uses only the supported keywords and types, nested at most
    max_depth levels (objects and arrays each count one)."""
    if depth > max_depth:
        raise ValueError(f"{where} is nested deeper than {max_depth} levels")
    if not isinstance(schema, dict):
        raise ValueError(f"{where} is not a JSON object")
    unsupported = sorted(set(schema) - SCHEMA_KEYWORDS)
    if unsupported:
        raise ValueError(f"{where} uses unsupported keywords {', '.join(unsupported)[:200]}")
    kind = schema.get("type")
    for bound in ("minItems", "maxItems", "minLength", "maxLength"):
        if bound in schema and not (type(schema[bound]) is int and schema[bound] >= 0):
            raise ValueError(f"{where}.{bound} must be a non-negative integer")
    for bound in ("minimum", "maximum"):
        if bound in schema and type(schema[bound]) not in (int, float):
            raise ValueError(f"{where}.{bound} must be a number")
    if "enum" in schema:
        values = schema["enum"]
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}.enum must be a non-empty list")
        if not all(isinstance(value, str | int | float | bool) for value in values):
            raise ValueError(f"{where}.enum may hold only strings, numbers and booleans")
    elif kind not in SCHEMA_TYPES:
        raise ValueError(f"{where} needs a type, one of {', '.join(sorted(SCHEMA_TYPES))}, or an enum")
    if kind == "object":
        properties = schema.get("properties", {})
        if not isinstance(properties, dict) or not properties:
            raise ValueError(f"{where}.properties must name at least one property")
        required = schema.get("required", [])
        if not isinstance(required, list) or not set(required) <= set(properties):
            raise ValueError(f"{where}.required must list some of its properties")
        if not isinstance(schema.get("additionalProperties", False), bool):
            raise ValueError(f"{where}.additionalProperties must be true or false")
        for name, child in properties.items():
            check_schema(child, max_depth, f"{where}.{name}"[:120], depth + 1)
    elif kind == "array":
        if "items" not in schema:
            raise ValueError(f"{where}.items is missing")
        check_schema(schema["items"], max_depth, f"{where}[]", depth + 1)
    elif {"properties", "required", "items"} & set(schema):
        raise ValueError(f"{where} has object or array keywords without that type")


TASK_OPTIONS: dict[str, type[TaskOptions]] = {
    "summarize": SummarizeOptions,
    "ask": AskOptions,
    "extract": ExtractOptions,
}


def validated_options(task: str, options: dict) -> dict:
    """The task's options as stored: validated by the task's model (422 with a code otherwise)."""
    if task not in TASK_OPTIONS:
        raise ServiceError(
            422, "unknown_task", f"Unknown task {shorten(task)}; known: {', '.join(TASK_OPTIONS)}."
        )
    return validated(TASK_OPTIONS[task], options).model_dump(exclude_none=True)


def validated(model: type[Model], options: dict) -> Model:
    """Options validated by their model: 422 invalid_options, naming each bad field, otherwise."""
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        raise ServiceError(
            422, "invalid_options", f"Invalid options: {describe(errors)}.", errors=errors
        ) from exc

"""The `chat` task: answer a conversation, OpenAI's chat-completions way, with whole documents in the prompt.

A message's content is text or a list of parts; a part `{"type": "file", "file": {"file_id": DOCUMENT_ID}}`
stands for the whole document (its pages, each marked with its number). The worker entry point is `chat`:
messages and options, the referenced documents' pages, an engine → `ChatAnswer`. It knows nothing of jobs,
HTTP or the OpenAI wire format (docproc.openai_compat does).
"""

import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from docproc.engine import Engine, Generation
from docproc.errors import ServiceError, shorten
from docproc.ingestion import Page

if TYPE_CHECKING:
    from model.sampling import Sampling

# Stop sequences per request, as OpenAI allows.
MAX_STOP_SEQUENCES = 4
FinishReason = Literal["stop", "length"]
# A JSON answer the model wrapped in a Markdown code fence, as small models do.
_FENCED = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class FileRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A document's id (POST /v1/documents, or /openai/v1/files with purpose=user_data).
    file_id: str


class FilePart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["file"]
    file: FileRef


ContentPart = Annotated[TextPart | FilePart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]
    # Accepted as OpenAI allows it; the model does not see it.
    name: str | None = Field(None, max_length=256)


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    name: str = Field(max_length=64)
    description: str | None = None
    # Named `schema` on the wire; `schema` shadows a BaseModel attribute, hence the alias.
    json_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        import jsonschema

        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON schema: {exc.message[:128]}") from exc
        return schema


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class ChatOptions(BaseModel):
    """A chat job's options, as stored on the job."""

    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(min_length=1)
    # None: as many as the context leaves, at most DOCPROC_CHAT_MAX_TOKENS.
    max_tokens: int | None = Field(None, ge=1, le=2**31 - 1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stop: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, max_length=MAX_STOP_SEQUENCES
    )
    response_format: ResponseFormat | None = None

    @field_validator("response_format")
    @classmethod
    def _schema_given(cls, value: ResponseFormat | None) -> ResponseFormat | None:
        if value is not None and value.type == "json_schema" and value.json_schema is None:
            raise ValueError("type json_schema needs a json_schema object")
        return value

    @property
    def document_ids(self) -> list[str]:
        """The documents the messages reference, each once, in order."""
        ids = [
            part.file.file_id
            for message in self.messages
            if isinstance(message.content, list)
            for part in message.content
            if isinstance(part, FilePart)
        ]
        return list(dict.fromkeys(ids))

    def sampling(self, preset: "Sampling") -> "Sampling":
        chosen = {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}
        return replace(preset, **{key: value for key, value in chosen.items() if value is not None})


@dataclass(frozen=True)
class ChatAnswer:
    text: str
    input_tokens: int
    output_tokens: int
    # Prompt tokens served from kept state (a document read before) rather than read again.
    cached_tokens: int
    finish_reason: FinishReason


# The HTTP status of a chat request whose job failed with one of these codes; any other failure is a 500.
FAILURE_STATUS = {
    "context_length_exceeded": 400,
    "document_not_found": 404,
    "json_output_invalid": 422,
    "json_schema_mismatch": 422,
}


class ChatError(ServiceError):
    """The request cannot be answered as asked: the job fails with this code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(FAILURE_STATUS[code], code, message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message))


def chat(
    engine: Engine,
    options: ChatOptions,
    documents: Mapping[str, Sequence[Page]],
    max_tokens: int,
    stop: threading.Event | None = None,
) -> ChatAnswer:
    """Answer the conversation; `documents` holds the pages of every document the messages reference.

    `max_tokens` caps the answer when the options set no max_tokens (DOCPROC_CHAT_MAX_TOKENS).
    """
    messages = [_flattened(message, documents) for message in options.messages]
    if options.response_format is not None and options.response_format.type != "text":
        messages.insert(0, {"role": "system", "content": _json_instruction(options.response_format)})
    prompt_tokens = sum(engine.count_tokens(message["content"]) for message in messages)
    room = engine.context_tokens - prompt_tokens
    if room <= 0 or (options.max_tokens is not None and options.max_tokens > room):
        raise ChatError(
            "context_length_exceeded",
            f"The model's context is {engine.context_tokens} tokens; the messages take about {prompt_tokens} "
            f"and the answer {options.max_tokens or 'at least 1'}. Shorten the messages or max_tokens.",
        )
    budget = options.max_tokens or min(max_tokens, room)
    generation = engine.generate(
        messages,
        max_new_tokens=budget,
        sampling=options.sampling(engine.default_sampling),
        stop=stop,
        json_schema=json_constraint(options.response_format),
    )
    return finished_answer(engine, options, generation, budget, cached_tokens=0)


def finished_answer(
    engine: Engine, options: ChatOptions, generation: Generation, budget: int, cached_tokens: int
) -> ChatAnswer:
    """The generation as the chat's answer: cut at the first stop sequence, checked against the response
    format, with why it ended."""
    text = _cut_at_stop(generation.text, options.stop)
    cut = text != generation.text
    finish_reason: FinishReason = "length" if not cut and generation.output_tokens >= budget else "stop"
    output_tokens = engine.count_tokens(text) if cut else generation.output_tokens
    if options.response_format is not None and options.response_format.type != "text":
        text = _conforming_json(text, options.response_format)
    return ChatAnswer(text, generation.input_tokens, output_tokens, cached_tokens, finish_reason)


def instruction_after(options: ChatOptions, document_id: str) -> str:
    """The conversation as one instruction that follows the document it references: what a streaming engine
    reads after the document's kept state. The document's own part is left out; a lone user message is its
    text, longer conversations name each message's role."""
    texts = [
        (message.role, _text_without(message, document_id))
        for message in options.messages
        if _text_without(message, document_id)
    ]
    if options.response_format is not None and options.response_format.type != "text":
        texts.insert(0, ("system", _json_instruction(options.response_format)))
    if len(texts) == 1 and texts[0][0] == "user":
        return texts[0][1]
    return "\n\n".join(f"{role}: {text}" for role, text in texts)


def _text_without(message: ChatMessage, document_id: str) -> str:
    if isinstance(message.content, str):
        return message.content
    return "\n\n".join(
        part.text if isinstance(part, TextPart) else f"[document {part.file.file_id}]"
        for part in message.content
        if not (isinstance(part, FilePart) and part.file.file_id == document_id)
    ).strip()


def _flattened(message: ChatMessage, documents: Mapping[str, Sequence[Page]]) -> dict[str, str]:
    """A message as the engines take it: one text, each document part replaced by its pages."""
    role = "system" if message.role == "developer" else message.role
    if isinstance(message.content, str):
        return {"role": role, "content": message.content}
    texts = []
    for part in message.content:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif (pages := documents.get(part.file.file_id)) is None:  # deleted since the request
            raise ChatError("document_not_found", f"No document with id {shorten(part.file.file_id)}.")
        else:
            texts.append("\n\n".join(f"[Page {page.number}]\n{page.text}" for page in pages))
    return {"role": role, "content": "\n\n".join(texts)}


def _json_instruction(response_format: ResponseFormat) -> str:
    if response_format.json_schema is None:
        return "Answer with one JSON object only, no other text."
    schema = json.dumps(response_format.json_schema.json_schema, ensure_ascii=False)
    return f"Answer with one JSON value only, no other text, valid against this JSON schema: {schema}"


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """The text up to the first stop sequence (which OpenAI leaves out of the answer)."""
    cuts = [index for stop in stops if (index := text.find(stop)) >= 0]
    return text[: min(cuts)] if cuts else text


def json_constraint(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    """The JSON Schema the engine's constrained decoding follows (docproc.engine.grammar; a remote engine's
    `response_format`): any object for json_object, the caller's schema for json_schema."""
    if response_format is None or response_format.type == "text":
        return None
    if response_format.json_schema is None:
        return {"type": "object"}
    return response_format.json_schema.json_schema


def _conforming_json(text: str, response_format: ResponseFormat) -> str:
    """The answer as JSON that satisfies the requested format, or a `ChatError` saying why not: decoding is
    constrained by the schema, so this catches only an answer cut short by max_tokens."""
    import jsonschema

    if fenced := _FENCED.match(text):
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChatError(
            "json_output_invalid", f"The model's answer is not JSON ({exc.msg}): {shorten(text)}."
        ) from exc
    if response_format.json_schema is None:
        if not isinstance(value, dict):
            raise ChatError(
                "json_output_invalid", f"The model's answer is not a JSON object: {shorten(text)}."
            )
    else:
        try:
            jsonschema.validate(value, response_format.json_schema.json_schema)
        except jsonschema.ValidationError as exc:
            raise ChatError(
                "json_schema_mismatch",
                f"The model's answer does not match the schema ({exc.message[:128]}): {shorten(text)}.",
            ) from exc
    return json.dumps(value, ensure_ascii=False)

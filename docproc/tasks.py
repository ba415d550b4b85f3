"""Tasks: each one small strategy over the two kinds of engine (docproc.engine.base).

A task takes a document's pages and its validated options (docproc.task_options) and gives an `Outcome`, the
job's result. `Task.run` sends a streaming engine to `on_stream` (the whole document read into a state, kept,
and continued with the instruction) and any other engine to `on_chat` (the document, or its most relevant
passages when it does not fit, in the prompt). Adding a task is one options model and one class here.

Ask and extract answer in JSON, constrained by a grammar to the task's output schema, checked with jsonschema
(one retry), with quotes that are kept only if they occur on the page they name.
"""

import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import jsonschema

from docproc.chat import ChatAnswer, ChatOptions, chat, finished_answer, instruction_after, json_constraint
from docproc.engine import Engine, Generation
from docproc.engine.base import StreamingEngine
from docproc.extractive import split_sentences, supporting_sentence
from docproc.ingestion import Page
from docproc.pipeline import (
    PROMPT_RESERVE_TOKENS,
    SYSTEM_PROMPT,
    ProgressReporter,
    Workspace,
    choose_method,
    page_marked,
    page_ranges,
    pages_within,
    read_document,
    sampling_for,
    summarize,
)
from docproc.retrieval import PassageIndex, document_index
from docproc.settings import Settings, get_settings
from docproc.task_options import AskOptions, CitingOptions, ExtractOptions, SummarizeOptions, TaskOptions

log = logging.getLogger(__name__)

AnyOptions = TypeVar("AnyOptions", bound=TaskOptions)
Options = TypeVar("Options", bound=CitingOptions)

# Characters of a refused output kept in the job's error.
RAW_OUTPUT_CHARS = 2000
# A quote is a sentence or two; the bound also keeps a model that will not close its string within budget.
MAX_QUOTE_CHARS = 200
# Characters per word an answer may take, at most.
CHARS_PER_WORD = 10


def citations_schema(max_citations: int) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "page": {"type": "integer", "minimum": 1},
                "quote": {"type": "string", "minLength": 1, "maxLength": MAX_QUOTE_CHARS},
            },
            "required": ["page", "quote"],
            "additionalProperties": False,
        },
        "maxItems": max_citations,
    }


def cite_instruction(max_citations: int) -> str:
    if max_citations == 0:
        return "Leave citations empty."
    return (
        f"Cite up to {max_citations} short quotes copied word for word from the document, each with the "
        "number of the page it is on."
    )


class InvalidOutput(RuntimeError):
    """The model's output did not satisfy the schema, also when asked again: the job fails with this code."""

    code = "invalid_output"


@dataclass(frozen=True)
class Job:
    """What a task works on, besides its options."""

    pages: Sequence[Page]
    progress: ProgressReporter
    workspace: Workspace
    settings: Settings
    # The pages of the documents the task references by id (`Task.documents`: a chat's file parts).
    documents: Mapping[str, Sequence[Page]] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """A task's result, as the job's result stores it."""

    thinking: str | None
    input_tokens: int
    output_tokens: int
    source_pages: list[list[int]]
    cached_tokens: int = 0
    summary: str | None = None
    answer: str | None = None
    data: dict[str, Any] | None = None
    citations: list[dict[str, Any]] | None = None
    dropped_quotes: int | None = None
    method: str | None = None
    replaced_sentences: int | None = None
    # chat: why the answer ended (stop or length), as OpenAI reports it.
    finish_reason: str | None = None


class Task(ABC, Generic[AnyOptions]):
    def documents(self, options: AnyOptions) -> list[str]:
        """Ids of the documents, besides the job's own, whose pages the task reads (`Job.documents`)."""
        return []

    def run(self, engine: Engine, options: AnyOptions, job: Job) -> Outcome:
        if isinstance(engine, StreamingEngine):
            return self.on_stream(engine, options, job)
        return self.on_chat(engine, options, job)

    @abstractmethod
    def on_stream(self, engine: StreamingEngine, options: AnyOptions, job: Job) -> Outcome: ...

    @abstractmethod
    def on_chat(self, engine: Engine, options: AnyOptions, job: Job) -> Outcome: ...


class Summarize(Task[SummarizeOptions]):
    """docproc.pipeline.summarize picks its own way (extractive methods need no model)."""

    def run(self, engine: Engine, options: SummarizeOptions, job: Job) -> Outcome:
        summary = summarize(
            engine,
            job.pages,
            options,
            job.progress,
            job.workspace,
            job.settings.chunk_tokens,
            job.settings.checkpoint_every_tokens,
        )
        return Outcome(
            thinking=summary.thinking,
            input_tokens=summary.input_tokens,
            output_tokens=summary.output_tokens,
            cached_tokens=summary.cached_tokens,
            source_pages=summary.source_pages,
            summary=summary.text,
            method=summary.method,
            replaced_sentences=summary.replaced_sentences,
        )

    on_stream = on_chat = run


@dataclass
class Answered:
    """A JSON answer that satisfied the output schema, and what producing it cost."""

    value: dict[str, Any]
    thinking: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    source_pages: list[list[int]] = field(default_factory=list)


class DocumentQuestion(Task[Options]):
    """A question put to the whole document, answered in JSON with citations (ask, extract)."""

    @abstractmethod
    def instruction(self, options: Options) -> str: ...

    @abstractmethod
    def query(self, options: Options) -> str:
        """What to look for among the passages when the document does not fit the context."""

    @abstractmethod
    def output_schema(self, options: Options) -> dict[str, Any]: ...

    @abstractmethod
    def outcome(self, answered: Answered, citations: list[dict[str, Any]], dropped: int) -> Outcome: ...

    def on_stream(self, engine: StreamingEngine, options: Options, job: Job) -> Outcome:
        sampling = sampling_for(options, engine.default_sampling)
        with read_document(
            engine,
            job.pages,
            self.instruction(options),
            options.max_input_tokens,
            job.progress,
            job.workspace,
            job.settings.chunk_tokens,
            job.settings.checkpoint_every_tokens,
        ) as read:
            answered = self._answer_in_json(
                lambda schema: engine.answer(
                    read.state,
                    read.suffix,
                    job.settings.max_answer_tokens,
                    sampling,
                    job.progress.stop,
                    schema,
                ),
                self.output_schema(options),
            )
        answered.cached_tokens = read.cached_tokens
        answered.source_pages = page_ranges([(page.number, page.number) for page in job.pages])
        return self._checked(answered, options, job.pages, job.pages)

    def on_chat(self, engine: Engine, options: Options, job: Job) -> Outcome:
        max_new_tokens = job.settings.max_answer_tokens
        instruction = self.instruction(options)
        room = (
            engine.context_tokens - max_new_tokens - PROMPT_RESERVE_TOKENS - engine.count_tokens(instruction)
        )
        pages = pages_within(engine, job.pages, options.max_input_tokens)
        tokens = sum(engine.count_tokens(page.text) for page in pages)
        job.progress.started(tokens)
        if tokens > room:  # the most relevant passages instead of the whole document
            whole = options.max_input_tokens is None
            query = self.query(options)
            pages = relevant_passages(
                engine, job.workspace.document_id, pages, whole, query, job.settings, room
            )
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"{page_marked(pages)}\n\n{instruction}"},
        ]
        sampling = sampling_for(options, engine.default_sampling)
        answered = self._answer_in_json(
            lambda schema: engine.generate(
                messages,
                max_new_tokens=max_new_tokens,
                sampling=sampling,
                stop=job.progress.stop,
                json_schema=schema,
            ),
            self.output_schema(options),
        )
        job.progress.advanced(tokens)
        answered.source_pages = page_ranges([(page.number, page.number) for page in pages])
        return self._checked(answered, options, job.pages, pages)

    def _answer_in_json(
        self, generate: Callable[[dict[str, Any]], Generation], schema: dict[str, Any]
    ) -> Answered:
        """Generate JSON valid against the schema; asked once more if it is not (a remote server may ignore
        the schema, any output may be cut by the token limit). Fails with `invalid_output` otherwise."""
        answered = Answered({}, None)
        for attempt in (1, 2):
            generation = generate(schema)
            answered.input_tokens += generation.input_tokens
            answered.output_tokens += generation.output_tokens
            try:
                value = json.loads(generation.text)
                jsonschema.validate(value, schema)
            except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else exc.message
                log.warning("output not valid against the schema (attempt %d): %s", attempt, reason)
                continue
            answered.value, answered.thinking = value, generation.thinking
            return answered
        raise InvalidOutput(
            f"The model's output does not satisfy the schema ({reason[:200]}), also when asked again. "
            f"Raw output: {generation.text[:RAW_OUTPUT_CHARS]}"
        )

    def supported_text(self, answered: Answered, options: Options) -> str | None:
        """What a citation must bear out when the model gave none that holds (None: no fallback)."""
        return None

    def _checked(
        self, answered: Answered, options: Options, pages: Sequence[Page], shown: Sequence[Page]
    ) -> Outcome:
        """Citations kept only where their quote is on the page they name. When none is, a small model's
        usual failure, the sentence of what it was shown (`shown`) that bears out the answer is cited."""
        citations, dropped = checked_citations(answered.value.get("citations", []), pages)
        text = None if citations else self.supported_text(answered, options)
        if text and (sentence := supporting_sentence(text, split_sentences(shown))) is not None:
            citations, _ = checked_citations([{"page": sentence.page, "quote": sentence.text}], pages)
        return self.outcome(answered, citations, dropped)


class Ask(DocumentQuestion[AskOptions]):
    def run(self, engine: Engine, options: AskOptions, job: Job) -> Outcome:
        if answers_extractively(engine, options):
            return self.extractive_answer(engine, options, job)
        return super().run(engine, options, job)

    def extractive_answer(self, engine: Engine, options: AskOptions, job: Job) -> Outcome:
        """The sentence of the most relevant passages that best matches the question, cited on its page."""
        pages = pages_within(engine, job.pages, options.max_input_tokens)
        tokens = sum(engine.count_tokens(page.text) for page in pages)
        job.progress.started(tokens)
        whole = options.max_input_tokens is None
        passages = relevant_passages(
            engine, job.workspace.document_id, pages, whole, options.question, job.settings, tokens
        )
        # Sentences of the whole pages the passages lie on: a passage's window may cut its sentences.
        passage_pages = {page.number for page in passages}
        sentences = split_sentences([page for page in pages if page.number in passage_pages])
        best = PassageIndex.of([(sentence.page, sentence.text) for sentence in sentences]).search(
            options.question, 1
        )
        job.progress.advanced(tokens)
        answer = " ".join(best[0].text.split()[: options.max_words]) if best else ""
        quotes = [{"page": best[0].page, "quote": best[0].text}] if best and options.max_citations else []
        citations, _ = checked_citations(quotes, job.pages)
        return Outcome(
            thinking=None,
            input_tokens=0,
            output_tokens=0,
            source_pages=page_ranges([(page.number, page.number) for page in passages]),
            answer=answer or "The document has no sentence that matches the question.",
            citations=citations,
            dropped_quotes=0,
            method="extractive",
        )

    def instruction(self, options: AskOptions) -> str:
        return (
            f"Answer this question about the document above in at most {options.max_words} words, using only "
            f"what the document says: {options.question}\n"
            f"{cite_instruction(options.max_citations)} Reply in JSON."
        )

    def query(self, options: AskOptions) -> str:
        return options.question

    def supported_text(self, answered: Answered, options: AskOptions) -> str | None:
        return answered.value["answer"] if options.max_citations else None

    def output_schema(self, options: AskOptions) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "answer": {"type": "string", "minLength": 1, "maxLength": options.max_words * CHARS_PER_WORD},
                "citations": citations_schema(options.max_citations),
            },
            "required": ["answer", "citations"],
            "additionalProperties": False,
        }

    def outcome(self, answered: Answered, citations: list[dict[str, Any]], dropped: int) -> Outcome:
        return Outcome(
            thinking=answered.thinking,
            input_tokens=answered.input_tokens,
            output_tokens=answered.output_tokens,
            cached_tokens=answered.cached_tokens,
            source_pages=answered.source_pages,
            answer=answered.value["answer"].strip(),
            citations=citations,
            dropped_quotes=dropped,
            method="abstractive",
        )


class Extract(DocumentQuestion[ExtractOptions]):
    def instruction(self, options: ExtractOptions) -> str:
        extra = f" {options.instructions.strip()}" if options.instructions else ""
        return (
            "Extract data from the document above as JSON: `data` must follow this JSON Schema, with values "
            f"taken from the document: {json.dumps(options.json_schema)}.{extra}\n"
            + cite_instruction(options.max_citations)
        )

    def query(self, options: ExtractOptions) -> str:
        return " ".join([options.instructions or "", *_schema_words(options.json_schema)])

    def output_schema(self, options: ExtractOptions) -> dict[str, Any]:
        data = bounded(options.json_schema, Bounds.from_settings())
        return {
            "type": "object",
            "properties": {"data": data, "citations": citations_schema(options.max_citations)},
            "required": ["data", "citations"],
            "additionalProperties": False,
        }

    def outcome(self, answered: Answered, citations: list[dict[str, Any]], dropped: int) -> Outcome:
        return Outcome(
            thinking=answered.thinking,
            input_tokens=answered.input_tokens,
            output_tokens=answered.output_tokens,
            cached_tokens=answered.cached_tokens,
            source_pages=answered.source_pages,
            data=answered.value["data"],
            citations=citations,
            dropped_quotes=dropped,
        )


class Chat(Task[ChatOptions]):
    """OpenAI-compatible chat completions (docproc.openai_compat): the conversation, with the documents its
    file parts reference in the prompt, answered as a chat by either kind of engine."""

    def documents(self, options: ChatOptions) -> list[str]:
        return options.document_ids

    def on_stream(self, engine: StreamingEngine, options: ChatOptions, job: Job) -> Outcome:
        """A conversation about one document continues from the document's state, read once and kept like
        every task's (a document asked about or summarized before is not read again)."""
        if len(options.document_ids) != 1:
            return self.on_chat(engine, options, job)
        (document_id,) = options.document_ids
        with read_document(
            engine,
            job.documents[document_id],
            instruction_after(options, document_id),
            None,
            job.progress,
            job.workspace,
            job.settings.chunk_tokens,
            job.settings.checkpoint_every_tokens,
        ) as read:
            budget = options.max_tokens or job.settings.chat_max_tokens
            generation = engine.answer(
                read.state,
                read.suffix,
                budget,
                options.sampling(engine.default_sampling),
                job.progress.stop,
                json_constraint(options.response_format),
            )
        return self._outcome(finished_answer(engine, options, generation, budget, read.cached_tokens))

    def on_chat(self, engine: Engine, options: ChatOptions, job: Job) -> Outcome:
        answer = chat(engine, options, job.documents, job.settings.chat_max_tokens, job.progress.stop)
        return self._outcome(answer)

    @staticmethod
    def _outcome(answer: ChatAnswer) -> Outcome:
        return Outcome(
            thinking=None,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            source_pages=[],
            cached_tokens=answer.cached_tokens,
            summary=answer.text,
            finish_reason=answer.finish_reason,
        )


TASKS: dict[str, Task[Any]] = {"summarize": Summarize(), "ask": Ask(), "extract": Extract(), "chat": Chat()}


@dataclass(frozen=True)
class Bounds:
    """What an extract schema's open-ended parts get in the grammar (settings `extract_*`)."""

    max_chars: int
    max_items: int
    max_digits: int
    max_decimals: int

    @classmethod
    def from_settings(cls) -> "Bounds":
        settings = get_settings()
        return cls(
            settings.extract_string_max_chars,
            settings.extract_array_max_items,
            settings.extract_number_max_digits,
            settings.extract_number_max_decimals,
        )


def bounded(schema: Any, bounds: Bounds) -> Any:
    """The schema with a length on every string and array that sets none, bounds and a decimal step on every
    number that sets none, and no keys beyond the properties of objects that allow others, so that
    constrained decoding always closes the JSON within the answer's tokens (a small model otherwise invents
    keys or repeats itself without end); whatever satisfies it satisfies the caller's schema."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: bounded(s, bounds) for name, s in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        out["items"] = bounded(schema["items"], bounds)
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "string" in types and "enum" not in schema:
        out.setdefault("maxLength", bounds.max_chars)
    if "array" in types:
        out.setdefault("maxItems", bounds.max_items)
    if "object" in types:  # no keys beyond the schema's (they are allowed, never needed)
        out.setdefault("additionalProperties", False)
    if ("integer" in types or "number" in types) and "enum" not in schema:
        largest = 10**bounds.max_digits - 1
        if "minimum" not in schema and "exclusiveMinimum" not in schema:
            out["minimum"] = -largest
        if "maximum" not in schema and "exclusiveMaximum" not in schema:
            out["maximum"] = largest
        if "number" in types:
            out.setdefault("multipleOf", 10.0**-bounds.max_decimals)
    return out


def normalized(text: str) -> str:
    return " ".join(text.split()).casefold()


def checked_citations(
    citations: Sequence[dict[str, Any]], pages: Sequence[Page]
) -> tuple[list[dict[str, Any]], int]:
    """(the citations whose quote occurs on the page they name, after whitespace and case normalisation,
    without repeats; how many were dropped)."""
    texts = {page.number: normalized(page.text) for page in pages}
    kept: list[dict[str, Any]] = []
    for citation in citations:
        quote = citation["quote"].strip().strip("\"'“”").strip()
        entry = {"page": citation["page"], "quote": quote}
        if quote and normalized(quote) in texts.get(citation["page"], "") and entry not in kept:
            kept.append(entry)
    return kept, len(citations) - len(kept)


def answers_extractively(engine: Engine, options: AskOptions) -> bool:
    """`method` auto answers extractively where a summary would extract then compress: small models."""
    if options.method != "auto":
        return options.method == "extractive"
    return choose_method(engine, "auto") == "extract_compress"


def relevant_passages(
    engine: Engine,
    document_id: str,
    pages: Sequence[Page],
    whole: bool,
    query: str,
    settings: Settings,
    room_tokens: int,
) -> list[Page]:
    """The passages that best match the query and fit in room_tokens, in document order, each a `Page` of
    the page it lies on. The document's passage index is built once and kept; over part of a document
    (`whole` false: max_input_tokens) one is built for this job alone."""
    index = document_index(document_id, lambda: pages) if whole else PassageIndex.build(pages)
    kept, used = [], 0
    for passage in index.search(query, settings.passages_per_question):
        used += engine.count_tokens(passage.text)
        if used > room_tokens:
            break
        kept.append(Page(passage.page, passage.text))
    # Nothing matches the query's words: the document's start, as much as fits.
    return sorted(kept, key=lambda page: page.number) or pages_within(engine, pages, room_tokens)


def _schema_words(schema: Any) -> list[str]:
    """Property names and descriptions of a schema: what an extract looks for."""
    if not isinstance(schema, dict):
        return []
    words = [schema.get("title", ""), schema.get("description", "")]
    for name, child in schema.get("properties", {}).items():
        words += [re.sub(r"[_\W]+", " ", name), *_schema_words(child)]
    return [*words, *_schema_words(schema.get("items"))]

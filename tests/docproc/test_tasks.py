"""Tasks over the streaming engine: the first task of any kind on a document leaves its state, and every
later one continues from it without reading the document again. Citations are kept only where they occur."""

from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from docproc.chat import ChatOptions
from docproc.engine.grammar import JsonGrammar
from docproc.engine.hybrid import HybridEngine
from docproc.ingestion import Page
from docproc.pipeline import ProgressReporter, Workspace
from docproc.settings import get_settings
from docproc.task_options import AskOptions, ExtractOptions, SummarizeOptions
from docproc.tasks import TASKS, Bounds, Job, bounded, checked_citations
from model.testing import make_random_checkpoint
from tests.docproc.conftest import StoreFactory, add_documents

LONG_TEXT = Path("/usr/share/common-licenses/GPL-3").read_text()
PAGES = [Page(number, LONG_TEXT[i : i + 3000]) for number, i in enumerate(range(0, 9000, 3000), start=1)]
DOCUMENT_PART = {"type": "file", "file": {"file_id": "doc_a"}}
SCHEMA = {
    "type": "object",
    "properties": {
        "kind": {"enum": ["license", "contract", "other"]},
        "parties": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 2},
    },
    "required": ["kind", "parties"],
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> HybridEngine:
    return HybridEngine(make_random_checkpoint(tmp_path_factory.mktemp("qwen3-next-tiny")), name="tiny")


def test_a_document_is_read_once_for_every_task(
    engine: HybridEngine, tmp_path: Path, state_store: StoreFactory
) -> None:
    add_documents(f"sqlite:///{tmp_path / 'docproc.db'}", "doc_a")
    job = Job(
        PAGES, ProgressReporter(), Workspace(tmp_path / "job", "doc_a", state_store(1 << 30)), get_settings()
    )
    read_before = engine.tokens_read
    first = TASKS["summarize"].run(engine, SummarizeOptions(max_words=10, method="abstractive"), job)
    document_tokens = engine.tokens_read - read_before
    assert document_tokens > 2000 and first.cached_tokens == 0

    ask = TASKS["ask"].run(engine, AskOptions(question="Who may copy it?", max_words=5, max_citations=0), job)
    extract = TASKS["extract"].run(
        engine, ExtractOptions.model_validate({"schema": SCHEMA, "max_citations": 0}), job
    )
    # A chat completion (the OpenAI-compatible API) that references the document by its id.
    question = {"type": "text", "text": "Who may copy it?"}
    chat_options = ChatOptions.model_validate(
        {"messages": [{"role": "user", "content": [DOCUMENT_PART, question]}], "max_tokens": 8}
    )
    chat = TASKS["chat"].run(engine, chat_options, replace(job, documents={"doc_a": PAGES}))
    # None read the document again: the engine's counter did not move, and each reports it as cached.
    assert engine.tokens_read - read_before == document_tokens
    assert ask.cached_tokens == extract.cached_tokens == chat.cached_tokens == document_tokens
    assert chat.summary is not None and chat.finish_reason in ("stop", "length")
    assert ask.input_tokens > document_tokens and isinstance(ask.answer, str)
    # Random weights, valid output all the same: the grammar masks every token.
    jsonschema.validate(extract.data, SCHEMA)
    assert ask.dropped_quotes is not None and extract.dropped_quotes is not None


def test_quotes_are_kept_only_on_the_page_they_name() -> None:
    pages = [Page(1, "The plant produced\n4,200  kWh in 2024."), Page(2, "Members: 312.")]
    citations, dropped = checked_citations(
        [
            {"page": 1, "quote": "the plant PRODUCED 4,200 kWh"},  # case and whitespace differ: kept
            {"page": 2, "quote": "4,200 kWh"},  # on page 1, not page 2: dropped
            {"page": 1, "quote": "5,000 kWh"},  # nowhere: dropped
            {"page": 9, "quote": "Members"},  # no such page: dropped
            {"page": 1, "quote": "the plant PRODUCED 4,200 kWh"},  # a repeat: dropped
        ],
        pages,
    )
    assert citations == [{"page": 1, "quote": "the plant PRODUCED 4,200 kWh"}]
    assert dropped == 4


def test_extract_schemas_get_bounds_where_they_set_none() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "code": {"type": "string", "maxLength": 4},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "year": {"type": "integer", "minimum": 1900},
            "share": {"type": ["number", "null"]},
        },
    }
    out = bounded(schema, Bounds(max_chars=50, max_items=3, max_digits=4, max_decimals=2))
    properties = out["properties"]
    assert properties["name"]["maxLength"] == 50 and properties["code"]["maxLength"] == 4
    assert "maxLength" not in properties["kind"]
    assert properties["tags"]["maxItems"] == 3 and properties["tags"]["items"]["maxLength"] == 50
    assert properties["year"] == {"type": "integer", "minimum": 1900, "maximum": 9999}
    share = {"type": ["number", "null"], "minimum": -9999, "maximum": 9999, "multipleOf": 0.01}
    assert properties["share"] == share
    assert out["additionalProperties"] is False
    assert "maxLength" not in schema["properties"]["name"]  # the caller's schema is left as it was
    jsonschema.validate({"name": "x" * 50, "tags": ["a"], "year": 2024, "share": 12.5}, out)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"year": 20242024}, out)


def test_bounded_numbers_end_in_the_grammar(engine: HybridEngine) -> None:
    """The grammar refuses a digit beyond the bounds, so a model repeating digits must close the number."""
    schema = bounded({"type": "number"}, Bounds(max_chars=40, max_items=10, max_digits=4, max_decimals=2))
    for text, accepted in [("2024", True), ("20242", False), ("-3.25", True), ("3.141", False)]:
        matcher = JsonGrammar(engine.grammar_tokenizer, schema).matcher
        ids = engine.tokenizer.hf.encode(text, add_special_tokens=False)
        assert (matcher.consume_tokens(ids) and not matcher.is_error()) is accepted, text

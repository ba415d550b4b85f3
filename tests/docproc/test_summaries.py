"""Summaries with the default model: extract, then compress, then check; cited by page, cut to length."""

import re
from pathlib import Path

import pytest

from docproc.engine.transformers_engine import TransformersEngine
from docproc.extractive import split_sentences, word_count
from docproc.ingestion import extract
from docproc.pipeline import TOKENS_PER_WORD, ProgressReporter, SummarizeOptions, Workspace, summarize
from tests.conftest import SAMPLE_PDF

LONG_TEXT = Path("/usr/share/common-licenses/GPL-3")
CITATION = re.compile(r"\n\n\(Drawn from pages (.+)\.\)$")


@pytest.fixture(scope="module")
def engine(default_model: Path) -> TransformersEngine:
    return TransformersEngine(default_model, name="SmolLM2-135M-Instruct")


def run(engine: TransformersEngine, path: Path, tmp_path: Path, **options: object) -> tuple[str, str, object]:
    summary = summarize(
        engine,
        extract(path).pages,
        SummarizeOptions.model_validate(options),
        ProgressReporter(),
        Workspace(tmp_path / "job", "document"),
        chunk_tokens=1536,
        checkpoint_every_tokens=65536,
    )
    citation = CITATION.search(summary.text)
    assert citation, summary.text
    return summary.text[: citation.start()], citation.group(1), summary


def test_the_default_summary_invents_no_number_and_ends_with_a_sentence(
    engine: TransformersEngine, tmp_path: Path
) -> None:
    body, _, summary = run(engine, SAMPLE_PDF, tmp_path, max_words=30)
    assert summary.method == "extract_compress" and summary.output_tokens > 0
    source = extract(SAMPLE_PDF).text.replace(",", "")
    assert body and word_count(body) <= 30
    assert body.rstrip()[-1] in ".!?", body
    for number in re.findall(r"\d+(?:[.,]\d+)*", body):
        assert number.replace(",", "").rstrip(".") in source, (number, body)


def test_a_text_file_is_cited_by_its_pages(engine: TransformersEngine, tmp_path: Path) -> None:
    assert len(extract(LONG_TEXT).pages) > 5
    body, pages, summary = run(engine, LONG_TEXT, tmp_path, max_words=120, method="extractive")
    assert summary.method == "extractive" and summary.replaced_sentences == 0
    assert word_count(body) <= 120
    assert len(summary.source_pages) > 1 and pages != "1"


def test_an_abstractive_summary_with_nothing_left_after_the_check_gives_key_sentences(
    engine: TransformersEngine, tmp_path: Path
) -> None:
    """Asked for one long sentence in a few words, the model is cut off mid-sentence: no sentence of its own
    is left, so the summary is the document's key sentences (not empty), cited by their pages."""
    body, _, summary = run(
        engine,
        SAMPLE_PDF,
        tmp_path,
        max_words=10,
        method="abstractive",
        instructions="Write one very long sentence that lists every name, figure and date in the document.",
    )
    assert summary.method == "abstractive" and summary.output_tokens == int(10 * TOKENS_PER_WORD) + 16
    document = extract(SAMPLE_PDF)
    assert body and (word_count(body) <= 10 or body.endswith("…")), body
    sentences = [sentence.text for sentence in split_sentences(document.pages)]
    assert body.rstrip("…") in " ".join(sentences), body
    # The chosen sentences' pages, not the pages read (all three).
    cited = {page for first, last in summary.source_pages for page in range(first, last + 1)}
    assert len(document.pages) == 3 and cited < {1, 2, 3}, summary.source_pages

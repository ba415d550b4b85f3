"""Summaries with the default model: extract, then compress, then check; cited by page, cut to length."""

import re
from pathlib import Path

import pytest

from docproc.engine.transformers_engine import TransformersEngine
from docproc.extractive import word_count
from docproc.ingestion import extract
from docproc.pipeline import ProgressReporter, SummarizeOptions, Workspace, summarize
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

"""The pipeline with the streaming hybrid engine: one pass, checkpoints, resume, reuse of a read document; and
hierarchically, partial summaries batch by batch."""

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from docproc.engine.hybrid import HybridEngine
from docproc.engine.transformers_engine import TransformersEngine
from docproc.ingestion import Page
from docproc.models import DocumentState
from docproc.pipeline import ProgressReporter, SummarizeOptions, Workspace, summarize
from model.testing import make_random_checkpoint
from tests.docproc.conftest import StoreFactory, add_documents

LONG_TEXT = Path("/usr/share/common-licenses/GPL-3").read_text()


class Crash(Exception):
    pass


class Recorder(ProgressReporter):
    """Records progress; raises (like a dying worker) once `crash_at` tokens are read."""

    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__()
        self.crash_at = crash_at
        self.total = 0
        self.done: list[int] = []

    def started(self, tokens_total: int) -> None:
        self.total = tokens_total

    def advanced(self, tokens_done: int) -> None:
        self.done.append(tokens_done)
        if self.crash_at is not None and tokens_done >= self.crash_at:
            raise Crash


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> HybridEngine:
    path = make_random_checkpoint(tmp_path_factory.mktemp("qwen3-next-tiny"))
    return HybridEngine(path, name="tiny-qwen3-next")


PAGES = [Page(number, LONG_TEXT[i : i + 3000]) for number, i in enumerate(range(0, 12000, 3000), start=1)]
OPTIONS = SummarizeOptions(max_words=10, temperature=0.7, seed=3)


def run(engine: HybridEngine, workspace: Workspace, progress: ProgressReporter) -> str:
    summary = summarize(
        engine, PAGES, OPTIONS, progress, workspace, chunk_tokens=256, checkpoint_every_tokens=1024
    )
    return summary.text


def test_a_crashed_read_resumes_from_its_checkpoint_with_the_same_summary(
    engine: HybridEngine, tmp_path: Path, state_store: StoreFactory
) -> None:
    uninterrupted = Recorder()
    expected = run(engine, Workspace(tmp_path / "a" / "job", "doc_a"), uninterrupted)
    assert uninterrupted.done[-1] == uninterrupted.total > 3000
    # The random model's text does not pass the check: key sentences of the four pages stand in.
    assert re.search(r"\n\n\(Drawn from pages [1-4][–, 0-9]*\.\)$", expected), expected

    add_documents(f"sqlite:///{tmp_path / 'docproc.db'}", "doc_b")
    workspace = Workspace(tmp_path / "b" / "job", "doc_b", state_store(1 << 30))
    with pytest.raises(Crash):
        run(engine, workspace, Recorder(crash_at=2600))
    assert workspace.read_state.exists()

    resumed = Recorder()
    assert run(engine, workspace, resumed) == expected
    # The second run started at the last checkpoint (2048 tokens), not at the start.
    assert resumed.done[0] == 2048 + 256

    # The fully read document is kept: another task on it reads nothing again.
    assert workspace.states is not None
    with workspace.states.sessions() as session:
        kept = session.scalars(select(DocumentState)).one()
        assert kept.document_id == "doc_b" and kept.tokens == resumed.total
        assert workspace.states.path("doc_b", kept.key).stat().st_size == kept.size_bytes
    again = Recorder()
    assert run(engine, workspace, again) == expected
    assert again.done == [again.total]


def test_summary_reports_usage_and_pages(engine: HybridEngine, tmp_path: Path) -> None:
    summary = summarize(
        engine,
        PAGES[:2],
        SummarizeOptions(max_words=10),
        Recorder(),
        Workspace(tmp_path / "j", "doc"),
        chunk_tokens=512,
        checkpoint_every_tokens=4096,
    )
    assert summary.source_pages and all(1 <= first <= last <= 2 for first, last in summary.source_pages)
    assert summary.input_tokens > 1000 and 0 < summary.output_tokens <= 32


@pytest.fixture(scope="module")
def batching_engine(tmp_path_factory: pytest.TempPathFactory) -> TransformersEngine:
    """A tiny random model of attention layers alone (quick), partial summaries three at a time."""
    path = make_random_checkpoint(
        tmp_path_factory.mktemp("tiny-attention"),
        model_type="qwen3_5_text",
        layer_types=["full_attention"] * 4,
    )
    return TransformersEngine(path, name="tiny-attention", batch_size=3)


def test_a_crashed_hierarchical_summary_resumes_at_its_first_unfinished_batch(
    batching_engine: TransformersEngine, tmp_path: Path
) -> None:
    def run_hierarchically(workspace: Workspace, progress: Recorder) -> str:
        options = SummarizeOptions(max_words=10, method="abstractive")
        return summarize(
            batching_engine,
            PAGES,
            options,
            progress,
            workspace,
            chunk_tokens=1024,
            checkpoint_every_tokens=1024,
        ).text

    uninterrupted = Recorder()
    expected = run_hierarchically(Workspace(tmp_path / "a", "doc_a"), uninterrupted)
    # Four chunks of up to 1024 tokens: progress after each batch of partial summaries (three, then one).
    assert uninterrupted.done == [0, 3 * 1024, uninterrupted.total] and uninterrupted.total > 3 * 1024

    workspace = Workspace(tmp_path / "b", "doc_b")
    with pytest.raises(Crash):
        run_hierarchically(workspace, Recorder(crash_at=3 * 1024))
    assert len(json.loads(workspace.partial_summaries.read_text())) == 3

    resumed = Recorder()
    assert run_hierarchically(workspace, resumed) == expected
    assert resumed.done == [3 * 1024, resumed.total]

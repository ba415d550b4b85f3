"""Faithfulness benchmark: unsupported figures and names, known facts covered, length and time, by method.

    python -m bench.quality.run                    # the corpus PDFs, the sample report, a generated report
    python -m bench.quality.run --long 4500000     # time one summary of a generated ~1.2M-token text

Methods side by side: today's hierarchical abstractive summary as generated (unchecked), the same after the
faithfulness check, key sentences alone (extractive), and extract-then-compress (small models' default).
A figure or name is unsupported when the document does not contain it. Model: the configured one
(DOCPROC_MODEL; default SmolLM2-135M).
"""

import argparse
import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.quality.documents import Document, documents, long_text
from docproc.engine import Engine, get_engine
from docproc.extractive import check_faithfulness, fit_to_length, split_sentences, word_count
from docproc.extractive.faithfulness import figures, names
from docproc.extractive.sentences import FINISHED, sentences_of, words
from docproc.ingestion import extract
from docproc.pipeline import (
    ProgressReporter,
    SummarizeOptions,
    Workspace,
    _summarize_hierarchically,
    summarize,
)
from docproc.settings import get_settings

METHODS = ["abstractive, unchecked (before)", "abstractive, checked", "extractive", "extract_compress"]
_CITATION = re.compile(r"\n\n\(Drawn from pages .+\.\)$")


@dataclass
class Row:
    document: str
    method: str
    unsupported_figures: list[str]
    unsupported_names: list[str]
    facts_covered: int
    facts_known: int
    words: int
    max_words: int
    ends_a_sentence: bool
    seconds: float
    summary: str


def measure(document: Document, method: str, body: str, max_words: int, seconds: float) -> Row:
    source = "\n".join(page.text for page in document.pages)
    source_figures, source_words = figures(source), set(words(source))  # names: as the check compares them
    flat = body.replace(",", "").casefold()
    covered = sum(fact.replace(",", "").casefold() in flat for fact in document.facts)
    return Row(
        document.name,
        method,
        sorted(figures(body) - source_figures),
        sorted(set().union(*(names(sentence) for sentence in sentences_of(body))) - source_words),
        covered,
        len(document.facts),
        word_count(body),
        max_words,
        bool(FINISHED.search(body.strip())),
        round(seconds, 1),
        body,
    )


def run_document(
    engine: Engine, document: Document, max_words: int, workdir: Path, methods: list[str]
) -> list[Row]:
    options = SummarizeOptions(max_words=max_words)
    workspace = Workspace(workdir / "job", "document")
    rows = []
    if set(methods) & set(METHODS[:2]):  # one generation serves both
        started = time.perf_counter()
        raw = _summarize_hierarchically(
            engine, document.pages, options, ProgressReporter(), workspace, get_settings().chunk_tokens
        ).text
        generated_s = time.perf_counter() - started
        workspace.clear_job()
        if METHODS[0] in methods:
            rows.append(measure(document, METHODS[0], raw, max_words, generated_s))
        started = time.perf_counter()
        checked = check_faithfulness(raw, split_sentences(document.pages), get_settings().min_word_support)
        body = fit_to_length(checked.sentences, max_words)
        if METHODS[1] in methods:
            seconds = generated_s + time.perf_counter() - started
            rows.append(measure(document, METHODS[1], body, max_words, seconds))
    for method in [method for method in METHODS[2:] if method in methods]:
        started = time.perf_counter()
        summary = summarize(
            engine,
            document.pages,
            options.model_copy(update={"method": method}),
            ProgressReporter(),
            workspace,
            get_settings().chunk_tokens,
            get_settings().checkpoint_every_tokens,
        )
        body = _CITATION.sub("", summary.text)
        rows.append(measure(document, method, body, max_words, time.perf_counter() - started))
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| method | unsupported figures | unsupported names | known facts covered | words (max) "
        "| ends mid-sentence | s / document |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in METHODS:
        mine = [row for row in rows if row.method == method]
        if not mine:
            continue
        known = sum(row.facts_known for row in mine)
        covered = sum(row.facts_covered for row in mine)
        lines.append(
            f"| {method} | {sum(len(r.unsupported_figures) for r in mine)} "
            f"| {sum(len(r.unsupported_names) for r in mine)} "
            f"| {covered}/{known} ({100 * covered / max(known, 1):.0f}%) "
            f"| {sum(r.words for r in mine) / len(mine):.0f} avg, {max(r.words for r in mine)} max "
            f"({mine[0].max_words}) | {sum(not r.ends_a_sentence for r in mine if r.words)} "
            f"| {sum(r.seconds for r in mine) / len(mine):.1f} |"
        )
    return "\n".join(lines)


class _Tokens(ProgressReporter):
    total = 0

    def started(self, tokens_total: int) -> None:
        self.total = tokens_total


def run_long(engine: Engine, chars: int, max_words: int, workdir: Path) -> dict[str, float]:
    path = workdir / "long.txt"
    path.write_text(long_text(chars))
    started = time.perf_counter()
    pages = extract(path, max_chars=get_settings().max_document_chars).pages
    extracted = time.perf_counter()
    tokens = _Tokens()
    summary = summarize(
        engine,
        pages,
        SummarizeOptions(max_words=max_words),
        tokens,
        Workspace(workdir / "job", "document"),
        get_settings().chunk_tokens,
        get_settings().checkpoint_every_tokens,
    )
    done = time.perf_counter()
    return {
        "characters": chars,
        "pages": len(pages),
        "tokens": tokens.total,
        "extract_s": round(extracted - started, 1),
        "summarize_s": round(done - extracted, 1),
        "method": summary.method,
        "replaced_sentences": summary.replaced_sentences,
        "summary": summary.text,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-words", type=int, default=80)
    parser.add_argument("--long", type=int, metavar="CHARS", help="time one summary of a generated text")
    parser.add_argument("--json", type=Path, help="write every row (with its summary) here")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=METHODS,
        metavar="METHOD",
        help=f"measure only these (default: all of {', '.join(repr(m) for m in METHODS)})",
    )
    args = parser.parse_args()
    engine = get_engine()
    with tempfile.TemporaryDirectory() as workdir:
        if args.long:
            print(json.dumps(run_long(engine, args.long, args.max_words, Path(workdir)), indent=2))
            return
        rows: list[Row] = []
        for document in documents():
            rows += run_document(
                engine, document, args.max_words, Path(workdir) / str(len(rows)), args.methods
            )
            print(f"{document.name}: done\n{table(rows)}", flush=True)  # long runs show what they have
            if args.json:
                args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))
    print(f"\n{engine.name}, max_words={args.max_words}\n\n{table(rows)}")


if __name__ == "__main__":
    main()

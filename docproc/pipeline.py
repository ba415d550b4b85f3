"""Summarize a document with an engine, reporting progress chunk by chunk.

A document that fits in the model's context is summarized in one pass; a longer one hierarchically: each chunk
gets a partial summary labelled with its pages, then the partial summaries are summarized together (again in
groups if they do not fit). Partial summaries are checkpointed, so a job taken over after a crash resumes.
"""

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from docproc.engine import Chunk, Engine, Generation, Sampling
from docproc.ingestion import Page

# Tokens kept free in the context for the instructions and the answer.
PROMPT_RESERVE_TOKENS = 768
PARTIAL_SUMMARY_WORDS = 80
SYSTEM_PROMPT = "You are a careful assistant that summarizes documents faithfully and concisely."


class SummarizeOptions(BaseModel):
    """Options a client may pass with a summarize job."""

    model_config = {"extra": "forbid"}

    max_words: int = Field(150, ge=10, le=2000)
    instructions: str | None = Field(None, max_length=2000)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    seed: int = 0
    # Only for tests and load runs: read at most this many tokens of the document.
    max_input_tokens: int | None = Field(None, ge=1)


@dataclass(frozen=True)
class Summary:
    text: str
    thinking: str | None
    input_tokens: int
    output_tokens: int
    source_pages: list[list[int]]


class ProgressReporter:
    """What the pipeline calls between chunks; the job runner implements it (progress, cancellation)."""

    def started(self, tokens_total: int) -> None: ...

    def advanced(self, tokens_done: int) -> None: ...


class Checkpoint:
    """Partial summaries saved as JSON, so another worker can take over a job where it stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[dict[str, object]]:
        return json.loads(self.path.read_text()) if self.path.exists() else []

    def save(self, partials: list[dict[str, object]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(partials))
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def page_ranges(chunks: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Merge (first, last) page spans into sorted, non-overlapping ranges."""
    merged: list[list[int]] = []
    for first, last in sorted(chunks):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return merged


def format_pages(ranges: list[list[int]]) -> str:
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in ranges)


def summarize(
    engine: Engine,
    pages: Sequence[Page],
    options: SummarizeOptions,
    progress: ProgressReporter,
    checkpoint: Checkpoint,
    chunk_tokens: int,
) -> Summary:
    budget = max(
        256, min(chunk_tokens, engine.context_tokens - PROMPT_RESERVE_TOKENS - options.max_words * 2)
    )
    chunks = list(_limited(engine.chunks(pages, budget), options.max_input_tokens))
    tokens_total = sum(chunk.tokens for chunk in chunks)
    progress.started(tokens_total)
    sampling = Sampling(temperature=options.temperature or 0.0, repetition_penalty=1.15, seed=options.seed)
    usage = [0, 0]

    def generate(prompt: str, max_words: int) -> Generation:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
        generation = engine.generate(messages, max_new_tokens=int(max_words * 1.6) + 16, sampling=sampling)
        usage[0] += generation.input_tokens
        usage[1] += generation.output_tokens
        return generation

    source_pages = page_ranges([(chunk.first_page, chunk.last_page) for chunk in chunks])
    if len(chunks) <= 1:
        text = chunks[0].text if chunks else ""
        final = generate(_final_prompt(text, options), options.max_words)
        progress.advanced(tokens_total)
    else:
        partials = _partial_summaries(chunks, checkpoint, progress, generate)
        final = generate(
            _final_prompt(_combine(partials, engine, budget, generate), options), options.max_words
        )
    summary = f"{final.text}\n\n(Drawn from pages {format_pages(source_pages)}.)"
    return Summary(summary, final.thinking, usage[0], usage[1], source_pages)


def _limited(chunks: Iterable[Chunk], max_tokens: int | None) -> list[Chunk]:
    kept: list[Chunk] = []
    total = 0
    for chunk in chunks:
        if max_tokens is not None and total >= max_tokens:
            break
        kept.append(chunk)
        total += chunk.tokens
    return kept


def _partial_summaries(
    chunks: list[Chunk],
    checkpoint: Checkpoint,
    progress: ProgressReporter,
    generate: Callable[[str, int], Generation],
) -> list[dict[str, object]]:
    partials = checkpoint.load()[: len(chunks)]
    tokens_done = sum(chunk.tokens for chunk in chunks[: len(partials)])
    progress.advanced(tokens_done)
    for chunk in chunks[len(partials) :]:
        prompt = (
            f"Summarize this part of a document (pages {chunk.first_page}–{chunk.last_page}) in at most "
            f"{PARTIAL_SUMMARY_WORDS} words. Keep names, numbers and conclusions.\n\n{chunk.text}"
        )
        summary = generate(prompt, PARTIAL_SUMMARY_WORDS).text
        partials.append({"first_page": chunk.first_page, "last_page": chunk.last_page, "summary": summary})
        checkpoint.save(partials)
        tokens_done += chunk.tokens
        progress.advanced(tokens_done)
    return partials


def _combine(
    partials: list[dict[str, object]], engine: Engine, budget: int, generate: Callable[[str, int], Generation]
) -> str:
    """Join partial summaries; while they exceed the budget, summarize them in groups that fit."""
    notes = [f"[pages {p['first_page']}–{p['last_page']}] {p['summary']}" for p in partials]
    while engine.count_tokens("\n".join(notes)) > budget and len(notes) > 1:
        groups: list[list[str]] = [[]]
        for note in notes:
            if groups[-1] and engine.count_tokens("\n".join([*groups[-1], note])) > budget:
                groups.append([])
            groups[-1].append(note)
        prompt = f"Condense these notes in at most {PARTIAL_SUMMARY_WORDS} words:\n\n"
        notes = [generate(prompt + "\n".join(group), PARTIAL_SUMMARY_WORDS).text for group in groups]
    return "\n".join(notes)


def _final_prompt(text: str, options: SummarizeOptions) -> str:
    extra = f" {options.instructions.strip()}" if options.instructions else ""
    return f"Summarize the following document in at most {options.max_words} words.{extra}\n\n{text}"

"""Summarize a document with an engine, reporting progress chunk by chunk.

Two ways, by engine:
- streaming (the Qwen3-Next hybrid): the whole document is read in one pass into the model's fixed-size
  linear-attention state plus KV cache, saved every N tokens so a crashed job resumes where it stopped; the
  fully read state is kept, so another task on the same document skips the read.
- hierarchical (any other model): a document that fits in the context is summarized in one pass; a longer one
  chunk by chunk (partial summaries labelled with their pages, checkpointed), then the partial summaries
  together (in groups while they do not fit).
- extract, then compress (small models, the default for them): the document's key sentences are ranked
  (docproc.extractive) and the model rewrites only those; or, extractive, the key sentences themselves.

Whatever the way, every generated sentence is checked against the source (numbers, names, words) and
replaced when unsupported (key sentences stand in when nothing is left), and the summary is cut to whole
sentences within max_words.
"""

import json
import logging
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from docproc.engine import Chunk, Engine, Generation, GenerationRequest
from docproc.engine.base import PAGE_SEPARATOR, StreamingEngine
from docproc.ingestion import Page
from docproc.settings import get_settings
from docproc.states import StateStore, state_key
from docproc.task_options import Method, SummarizeOptions, TaskOptions
from model.sampling import Sampling

if TYPE_CHECKING:
    from docproc.extractive import Sentence
    from model import HybridState

log = logging.getLogger(__name__)

# Tokens kept free in the context for the instructions and the answer.
PROMPT_RESERVE_TOKENS = 768
PARTIAL_SUMMARY_WORDS = 80
# One system prompt for every task: a streaming engine reads it with the document, and one read serves all.
SYSTEM_PROMPT = "You are a careful assistant that reads documents and answers faithfully and concisely."
# Extract, then compress: the model rewrites key sentences holding this many times max_words words. 1: the
# selection carries the facts (bench/quality); a small model asked to halve a text drops or invents them.
COMPRESS_INPUT_RATIO = 1
# Generated words per token, at most (English, SmolLM2/Qwen tokenizers): the answer's token budget.
TOKENS_PER_WORD = 1.6


def sampling_for(options: TaskOptions, preset: Sampling) -> Sampling:
    """The engine's preset with the job's sampling options over it."""
    chosen = {"temperature": options.temperature, "top_p": options.top_p, "top_k": options.top_k}
    return replace(preset, seed=options.seed, **{k: v for k, v in chosen.items() if v is not None})


@dataclass(frozen=True)
class Summary:
    text: str
    thinking: str | None
    input_tokens: int
    output_tokens: int
    source_pages: list[list[int]]
    method: Method = "abstractive"
    #: Generated sentences that failed the faithfulness check (replaced by a source sentence, or dropped).
    replaced_sentences: int = 0
    #: Document tokens not read again (a streaming engine continued from the document's kept state).
    cached_tokens: int = 0


class ProgressReporter:
    """What the pipeline calls between chunks; the job runner implements it (progress, cancellation).

    `stop` goes to the engine with every request: the runner sets it to end a generation or a prefill part
    way (the engine then raises `Stopped`)."""

    def __init__(self) -> None:
        self.stop = threading.Event()

    def started(self, tokens_total: int) -> None: ...

    def advanced(self, tokens_done: int) -> None: ...


@dataclass(frozen=True)
class Workspace:
    """Files that let a job resume after a crash, and the store that keeps a fully read document's states."""

    job_dir: Path
    document_id: str
    # None: no state is kept, every task reads the document.
    states: StateStore | None = None

    @property
    def partial_summaries(self) -> Path:
        return self.job_dir / "partials.json"

    @property
    def read_state(self) -> Path:
        return self.job_dir / "state.safetensors"

    def clear_job(self) -> None:
        shutil.rmtree(self.job_dir, ignore_errors=True)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)


def page_ranges(spans: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Merge (first, last) page spans into sorted, non-overlapping ranges."""
    merged: list[list[int]] = []
    for first, last in sorted(spans):
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
    workspace: Workspace,
    chunk_tokens: int,
    checkpoint_every_tokens: int,
) -> Summary:
    # Here, not at the top: nltk takes seconds to load, and other tasks do without it.
    from docproc.extractive import check_faithfulness, fit_to_length, split_sentences

    method = choose_method(engine, options.method)
    if method in ("extract_compress", "extractive"):
        summary, sources = _summarize_extractively(engine, pages, options, progress, method)
    else:
        if isinstance(engine, StreamingEngine):
            summary = _summarize_streaming(
                engine, pages, options, progress, workspace, chunk_tokens, checkpoint_every_tokens
            )
        else:
            summary = _summarize_hierarchically(engine, pages, options, progress, workspace, chunk_tokens)
        sources = split_sentences(pages)
    if method == "extractive":  # the sentences are the source's own, whole
        checked, replaced = [source.text for source in sources], 0
    else:
        check = check_faithfulness(summary.text, sources, get_settings().min_word_support)
        checked, replaced = check.sentences, check.replaced
        if method == "extract_compress":  # room the model left, or lost to the check, goes to key sentences
            checked += [source.text for source in sources if source.text not in checked]
        elif not checked:  # nothing of the model's text is left (cut off mid-sentence, or unsupported)
            read = split_sentences(pages_within(engine, pages, options.max_input_tokens))
            chosen = _key_sentences(read, options.max_words, options)
            checked = [sentence.text for sentence in chosen]
            summary = replace(summary, source_pages=_sentence_pages(chosen))
    text = _citing_pages(fit_to_length(checked, options.max_words), summary.source_pages)
    return replace(summary, text=text, method=method, replaced_sentences=replaced)


def choose_method(engine: Engine, method: Method) -> Method:
    if method != "auto":
        return method
    if isinstance(engine, StreamingEngine) or engine.parameters is None:
        return "abstractive"
    return (
        "extract_compress" if engine.parameters < get_settings().compress_below_parameters else "abstractive"
    )


def _instruction(options: SummarizeOptions, where: str) -> str:
    extra = f" {options.instructions.strip()}" if options.instructions else ""
    return f"Summarize the {where} document in at most {options.max_words} words.{extra}"


def _citing_pages(text: str, ranges: list[list[int]]) -> str:
    return f"{text}\n\n(Drawn from pages {format_pages(ranges)}.)" if ranges else text


@dataclass(frozen=True)
class ReadDocument:
    """A streaming engine's state holding the whole document, and the instruction's ids that continue it."""

    state: "HybridState"
    suffix: list[int]
    #: Tokens of the document (with the system turn) in the state.
    tokens: int
    #: Of these, the tokens not read by this job: it loaded the document's kept state.
    cached_tokens: int


def page_marked(pages: Sequence[Page]) -> str:
    """The document with page markers, which let the model (and the reader) tie statements to pages."""
    return "\n\n".join(f"[Page {page.number}]\n{page.text}" for page in pages)


@contextmanager
def read_document(
    engine: StreamingEngine,
    pages: Sequence[Page],
    instruction: str,
    max_input_tokens: int | None,
    progress: ProgressReporter,
    workspace: Workspace,
    chunk_tokens: int,
    checkpoint_every_tokens: int,
) -> Iterator[ReadDocument]:
    """The document read into a state: the document's kept state when the store has one, else read chunk by
    chunk (resuming from the job's checkpoint) and then kept, so that any later task on it skips the read.
    Answer inside the block: while it runs, no process evicts the kept state."""
    ids, suffix = engine.document_prompt(SYSTEM_PROMPT, page_marked(pages), instruction)
    if max_input_tokens is not None:
        ids = ids[:max_input_tokens]
    progress.started(len(ids))
    # A fully read state is only reusable when the whole document was read.
    states = workspace.states if max_input_tokens is None else None
    key = state_key(engine.fingerprint, ids)
    with states.use(workspace.document_id, key) if states is not None else nullcontext() as kept:
        if kept is not None:
            progress.advanced(len(ids))
            yield ReadDocument(engine.load_state(kept.path), suffix, len(ids), len(ids))
            return
        state = (
            engine.load_state(workspace.read_state) if workspace.read_state.exists() else engine.new_state()
        )
        if state.position:
            log.info("resuming the read at token %d of %d", state.position, len(ids))
        saved_at = state.position

        def after_chunk(position: int) -> None:
            nonlocal saved_at
            progress.advanced(position)
            if position - saved_at >= checkpoint_every_tokens and position < len(ids):
                _atomic_write(workspace.read_state, state.save)
                saved_at = position

        engine.read(ids, state, chunk_tokens, after_chunk, progress.stop)
        if states is not None:
            states.keep(workspace.document_id, key, engine.fingerprint, len(ids), state.save)
        progress.advanced(len(ids))
        yield ReadDocument(state, suffix, len(ids), 0)


def _summarize_streaming(
    engine: StreamingEngine,
    pages: Sequence[Page],
    options: SummarizeOptions,
    progress: ProgressReporter,
    workspace: Workspace,
    chunk_tokens: int,
    checkpoint_every_tokens: int,
) -> Summary:
    with read_document(
        engine,
        pages,
        _instruction(options, "above"),
        options.max_input_tokens,
        progress,
        workspace,
        chunk_tokens,
        checkpoint_every_tokens,
    ) as read:
        max_new_tokens = int(options.max_words * TOKENS_PER_WORD) + 16
        sampling = sampling_for(options, engine.default_sampling)
        answer = engine.answer(read.state, read.suffix, max_new_tokens, sampling, progress.stop)
    source_pages = page_ranges([(page.number, page.number) for page in pages])
    return Summary(
        answer.text,
        answer.thinking,
        answer.input_tokens,
        answer.output_tokens,
        source_pages,
        cached_tokens=read.cached_tokens,
    )


def _summarize_hierarchically(
    engine: Engine,
    pages: Sequence[Page],
    options: SummarizeOptions,
    progress: ProgressReporter,
    workspace: Workspace,
    chunk_tokens: int,
) -> Summary:
    budget = max(
        256, min(chunk_tokens, engine.context_tokens - PROMPT_RESERVE_TOKENS - options.max_words * 2)
    )
    chunks = _limited(engine.chunks(pages, budget), options.max_input_tokens)
    tokens_total = sum(chunk.tokens for chunk in chunks)
    progress.started(tokens_total)
    sampling = sampling_for(options, engine.default_sampling)
    usage = [0, 0]

    def requests(prompts: Sequence[str], max_words: int) -> list[GenerationRequest]:
        max_new_tokens = int(max_words * TOKENS_PER_WORD) + 16
        return [
            GenerationRequest(
                [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
                max_new_tokens,
                sampling,
                progress.stop,
            )
            for prompt in prompts
        ]

    def counted(generation: Generation) -> Generation:
        usage[0] += generation.input_tokens
        usage[1] += generation.output_tokens
        return generation

    def generate(prompts: Sequence[str], max_words: int) -> list[Generation]:
        """The prompts' answers, generated together (the engine batches them)."""
        return [counted(generation) for generation in engine.generate_many(requests(prompts, max_words))]

    def answers(prompts: Sequence[str], max_words: int) -> Iterator[tuple[int, Generation]]:
        """The prompts' answers as each is done."""
        for index, generation in engine.generate_each(requests(prompts, max_words)):
            yield index, counted(generation)

    source_pages = page_ranges([(chunk.first_page, chunk.last_page) for chunk in chunks])
    if len(chunks) <= 1:
        text = chunks[0].text if chunks else ""
        [final] = generate([_final_prompt(text, options)], options.max_words)
        progress.advanced(tokens_total)
    else:
        partials = _partial_summaries(
            chunks, workspace.partial_summaries, progress, answers, engine.batch_size
        )
        notes = _combine(partials, engine, budget, generate)
        [final] = generate([_final_prompt(notes, options)], options.max_words)
    return Summary(final.text, final.thinking, usage[0], usage[1], source_pages)


def _summarize_extractively(
    engine: Engine,
    pages: Sequence[Page],
    options: SummarizeOptions,
    progress: ProgressReporter,
    method: Method,
) -> tuple[Summary, list["Sentence"]]:
    """Rank the sentences; keep the best (extractive) or have the model rewrite them (extract_compress)."""
    from docproc.extractive import split_sentences

    pages = pages_within(engine, pages, options.max_input_tokens)
    # Counted as the document's tokens are (pages with their separator), so that the two agree.
    tokens_total = sum(engine.count_tokens(page.text + PAGE_SEPARATOR) for page in pages)
    progress.started(tokens_total)
    compress = method == "extract_compress"
    room_words = int((engine.context_tokens - PROMPT_RESERVE_TOKENS) / TOKENS_PER_WORD) - options.max_words
    words = min(options.max_words * COMPRESS_INPUT_RATIO, room_words) if compress else options.max_words
    chosen = _key_sentences(split_sentences(pages), words, options)
    progress.advanced(tokens_total)
    source_pages = _sentence_pages(chosen)
    if not compress:
        return Summary("", None, 0, 0, source_pages), chosen
    extra = f" {options.instructions.strip()}" if options.instructions else ""
    prompt = (
        f"Rewrite these key sentences of a document as one paragraph of at most {options.max_words} words. "
        f"Use only what they say; keep numbers and names exactly.{extra}\n\n"
        + "\n".join(sentence.text for sentence in chosen)
    )
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
    generation = engine.generate(
        messages,
        max_new_tokens=int(options.max_words * TOKENS_PER_WORD) + 16,
        sampling=sampling_for(options, engine.default_sampling),
        stop=progress.stop,
    )
    summary = Summary(
        generation.text, generation.thinking, generation.input_tokens, generation.output_tokens, source_pages
    )
    return summary, chosen


def _key_sentences(
    sentences: Sequence["Sentence"], words: int, options: SummarizeOptions
) -> list["Sentence"]:
    """The document's best sentences within `words` words, in document order (favouring the instructions)."""
    from docproc.extractive import select

    return select(sentences, words, options.instructions, get_settings().rank_block_sentences)


def _sentence_pages(sentences: Sequence["Sentence"]) -> list[list[int]]:
    return page_ranges([(sentence.page, sentence.page) for sentence in sentences])


def pages_within(engine: Engine, pages: Sequence[Page], max_tokens: int | None) -> list[Page]:
    """The pages up to max_tokens tokens (the last one cut)."""
    if max_tokens is None:
        return list(pages)
    kept: list[Page] = []
    room = max_tokens
    for page in pages:
        if room <= 0:
            break
        ids = engine.encode(page.text)
        kept.append(page if len(ids) <= room else Page(page.number, engine.decode(ids[:room])))
        room -= len(ids)
    return kept


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
    saved: Path,
    progress: ProgressReporter,
    answers: Callable[[Sequence[str], int], Iterator[tuple[int, Generation]]],
    batch_size: int,
) -> list[dict[str, object]]:
    """The chunks' summaries, all handed to the engine at once (it starts a chunk as soon as it has room);
    saved and reported `batch_size` chunks at a time in order, so that a crashed job resumes at its first
    unfinished batch."""
    partials = json.loads(saved.read_text())[: len(chunks)] if saved.exists() else []
    tokens_done = sum(chunk.tokens for chunk in chunks[: len(partials)])
    progress.advanced(tokens_done)
    remaining = chunks[len(partials) :]
    prompts = [
        f"Summarize this part of a document (pages {chunk.first_page}–{chunk.last_page}) in at most "
        f"{PARTIAL_SUMMARY_WORDS} words. Keep names, numbers and conclusions.\n\n{chunk.text}"
        for chunk in remaining
    ]
    batches = deque(
        range(start, min(start + batch_size, len(remaining)))
        for start in range(0, len(remaining), batch_size)
    )
    done: dict[int, Generation] = {}
    with closing(answers(prompts, PARTIAL_SUMMARY_WORDS)) as each:
        for index, generation in each:
            done[index] = generation
            while batches and all(n in done for n in batches[0]):
                batch = [(remaining[n], done[n].text) for n in batches.popleft()]
                partials.extend(
                    {"first_page": chunk.first_page, "last_page": chunk.last_page, "summary": text}
                    for chunk, text in batch
                )
                _atomic_write(saved, lambda path: path.write_text(json.dumps(partials)))
                tokens_done += sum(chunk.tokens for chunk, _ in batch)
                progress.advanced(tokens_done)
    return partials


def _combine(
    partials: list[dict[str, object]],
    engine: Engine,
    budget: int,
    generate: Callable[[Sequence[str], int], list[Generation]],
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
        generations = generate([prompt + "\n".join(group) for group in groups], PARTIAL_SUMMARY_WORDS)
        notes = [generation.text for generation in generations]
    return "\n".join(notes)


def _final_prompt(text: str, options: SummarizeOptions) -> str:
    return f"{_instruction(options, 'following')}\n\n{text}"

"""What the tasks need from a model, by way of reading a document.

- `Engine`: a chat model with a bounded context. It counts tokens, cuts a document into token chunks and
  answers a chat; a document longer than its context is read in pieces or through its relevant passages.
- `StreamingEngine`: an `Engine` that also reads a whole document, however long, into a state that answers
  any number of instructions afterwards (the Qwen3-Next hybrid). A fully read state is kept and reused.

Both generate free text, or JSON valid against a JSON Schema (`json_schema`): by constrained decoding where
the engine samples itself, by the server's structured output for a remote one.
"""

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docproc.engine.tokenizer import Tokenizer
from docproc.ingestion import Page
from docproc.ingestion.document import PAGE_SEPARATOR

if TYPE_CHECKING:
    from torch import nn

    from model import HybridState
    from model.sampling import Sampling


class Stopped(Exception):
    """The caller's stop signal was set: the engine abandoned the request part way (no output)."""


@contextmanager
def stopping_between_layers(
    layers: Iterable["nn.Module"], stop: threading.Event | Sequence[threading.Event | None] | None
) -> Iterator[None]:
    """Raise `Stopped` before any of these layers runs once `stop` is set (any of them, for a batch of
    requests): a prefill of thousands of tokens is one forward, so checking only between tokens would leave
    a long prefill unstoppable.

    Only this thread's forwards are stopped: another thread may share the model under its own signal."""
    stops = [event for event in ([stop] if not isinstance(stop, Sequence) else stop) if event is not None]
    if not stops:
        yield
        return
    caller = threading.get_ident()

    def check(*_: object) -> None:
        if threading.get_ident() == caller and any(event.is_set() for event in stops):
            raise Stopped

    with ExitStack() as hooks:
        for layer in layers:
            hooks.callback(layer.register_forward_pre_hook(check).remove)
        yield


@dataclass(frozen=True)
class Generation:
    text: str
    thinking: str | None
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class GenerationRequest:
    """One `Engine.generate` call's arguments, for `Engine.generate_many`."""

    messages: list[dict[str, str]]
    max_new_tokens: int
    sampling: "Sampling | None" = None
    stop: threading.Event | None = None
    json_schema: dict[str, Any] | None = None


def in_order(answers: Iterable[tuple[int, Generation]], count: int) -> list[Generation]:
    """`Engine.generate_each`'s answers to `count` requests, in the requests' order."""
    done = dict(answers)
    return [done[index] for index in range(count)]


@dataclass(frozen=True)
class Chunk:
    text: str
    first_page: int
    last_page: int
    tokens: int


class Engine(ABC):
    """A loaded model. Implementations: transformers (local), remote (OpenAI-compatible), and the streaming
    hybrid (model/)."""

    #: Reported in results.
    name: str
    #: Prompt plus output must fit in this many tokens.
    context_tokens: int
    #: Sampling when a job sets none (Qwen presets for Qwen models).
    default_sampling: "Sampling"
    #: The model's size, where known (a remote server does not say): small ones extract, then compress.
    parameters: int | None = None
    #: Independent generations run together at most.
    batch_size: int = 1
    tokenizer: Tokenizer

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    @abstractmethod
    def generate(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        sampling: "Sampling | None" = None,
        stop: threading.Event | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Generation:
        """Answer the chat; with `json_schema`, with JSON valid against it (unless cut by max_new_tokens).
        Once `stop` is set, raise `Stopped` promptly: between generated tokens and within a long prefill, not
        only when the answer is complete."""

    def generate_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Answer independent chats, in order; engines that can run them together (a batch, concurrent
        requests) do, which is where a worker's throughput comes from. Once any request's `stop` is set,
        raise `Stopped` promptly: the others' answers are lost too (the caller runs them again if it must)."""
        return [self.generate_request(request) for request in requests]

    def generate_each(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Generation]]:
        """The requests' answers as each is done, with its index: for a caller that saves finished answers
        while others run. Here `batch_size` requests at a time through `generate_many`; an engine that
        starts a waiting request as soon as another ends (continuous batching) does that instead."""
        for start in range(0, len(requests), self.batch_size):
            yield from enumerate(self.generate_many(requests[start : start + self.batch_size]), start)

    def generate_request(self, request: GenerationRequest) -> Generation:
        """`generate` with one request's arguments."""
        return self.generate(
            request.messages,
            max_new_tokens=request.max_new_tokens,
            sampling=request.sampling,
            stop=request.stop,
            json_schema=request.json_schema,
        )

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def chunks(self, pages: Sequence[Page], max_tokens: int) -> Iterator[Chunk]:
        """Consecutive pieces of at most ``max_tokens`` tokens; each knows the pages it spans."""
        ids: list[int] = []
        first_page = last_page = pages[0].number if pages else 1
        for page in pages:
            page_ids = self.encode(page.text + PAGE_SEPARATOR)
            while page_ids:
                if not ids:
                    first_page = page.number
                room = max_tokens - len(ids)
                ids.extend(page_ids[:room])
                page_ids = page_ids[room:]
                last_page = page.number
                if len(ids) == max_tokens:
                    yield Chunk(self.decode(ids), first_page, last_page, len(ids))
                    ids = []
        if ids:
            yield Chunk(self.decode(ids), first_page, last_page, len(ids))


class BatchEngine(Engine):
    """An engine whose own way is several chats at once (`generate_many`): one chat is a batch of one."""

    def generate(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        sampling: "Sampling | None" = None,
        stop: threading.Event | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Generation:
        request = GenerationRequest(messages, max_new_tokens, sampling, stop, json_schema)
        return self.generate_many([request])[0]

    @abstractmethod
    def generate_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]: ...


class StreamingEngine(Engine):
    """An engine that reads a whole document into a state, chunk by chunk, and answers from that state.

    The prompt puts the document before the instruction: `document_prompt` gives the ids to read (system turn
    and document, the same for every task, so one read state serves them all) and the ids of the instruction
    that continues it."""

    #: Saved states are valid only for these exact weights.
    fingerprint: str
    #: Document tokens read into states by this engine, in all (reused states are not read again).
    tokens_read: int = 0

    @abstractmethod
    def document_prompt(self, system: str, document: str, instruction: str) -> tuple[list[int], list[int]]:
        """(ids to read into the state: system turn + document, ids of the instruction that follows)."""

    @abstractmethod
    def new_state(self) -> "HybridState": ...

    @abstractmethod
    def load_state(self, path: Path) -> "HybridState": ...

    @abstractmethod
    def read(
        self,
        ids: Sequence[int],
        state: "HybridState",
        chunk_tokens: int,
        on_chunk: Callable[[int], None],
        stop: threading.Event | None = None,
    ) -> None:
        """Read ids[state.position:] into the state; on_chunk(position) after each chunk. Once `stop` is set,
        raise `Stopped` before the next layer (the state is then half-way through a chunk: drop it)."""

    @abstractmethod
    def answer(
        self,
        state: "HybridState",
        suffix: Sequence[int],
        max_new_tokens: int,
        sampling: "Sampling | None",
        stop: threading.Event | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Generation:
        """Continue a copy of a document's state with the instruction; the state stays reusable."""

"""What the pipeline needs from a model: count tokens, cut a document into token chunks, generate text."""

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from docproc.ingestion import Page
from docproc.ingestion.document import PAGE_SEPARATOR

if TYPE_CHECKING:
    from torch import nn

    from model.sampling import Sampling


class Stopped(Exception):
    """The caller's stop signal was set: the engine abandoned the request part way (no output)."""


@contextmanager
def stopping_between_layers(layers: Iterable["nn.Module"], stop: threading.Event | None) -> Iterator[None]:
    """Raise `Stopped` before any of these layers runs once `stop` is set: a prefill of thousands of tokens
    is one forward, so checking only between tokens would leave a long prefill unstoppable.

    Only this thread's forwards are stopped: another thread may share the model under its own signal."""
    if stop is None:
        yield
        return
    caller = threading.get_ident()

    def check(*_: object) -> None:
        if stop.is_set() and threading.get_ident() == caller:
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
class Chunk:
    text: str
    first_page: int
    last_page: int
    tokens: int


class Engine(ABC):
    """A loaded model. Implementations: transformers (local), hybrid (model/), remote (OpenAI-compatible)."""

    #: Reported in results.
    name: str
    #: Prompt plus output must fit in this many tokens.
    context_tokens: int
    #: Sampling when a job sets none (Qwen presets for Qwen models).
    default_sampling: "Sampling"
    #: The model's size, where known (a remote server does not say): small ones extract, then compress.
    parameters: int | None = None

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str: ...

    @abstractmethod
    def generate(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        sampling: "Sampling | None" = None,
        stop: threading.Event | None = None,
    ) -> Generation:
        """Answer the chat. Once `stop` is set, raise `Stopped` promptly: between generated tokens and within
        a long prefill, not only when the answer is complete."""

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

"""What the pipeline needs from a model: count tokens, cut a document into token chunks, generate text."""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from docproc.ingestion import Page
from model.sampling import Sampling


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
    default_sampling: Sampling
    #: The model's size, where known (a remote server does not say): small ones extract, then compress.
    parameters: int | None = None

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str: ...

    @abstractmethod
    def generate(
        self, messages: list[dict[str, str]], *, max_new_tokens: int, sampling: Sampling | None = None
    ) -> Generation: ...

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def chunks(self, pages: Sequence[Page], max_tokens: int) -> Iterator[Chunk]:
        """Consecutive pieces of at most ``max_tokens`` tokens; each knows the pages it spans."""
        ids: list[int] = []
        first_page = last_page = pages[0].number if pages else 1
        for page in pages:
            page_ids = self.encode(page.text + "\n\n")
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

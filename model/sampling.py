"""Next-token sampling: temperature, top-k, top-p (nucleus); greedy when temperature is 0."""

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    seed: int | None = None  # fixes the random stream for reproducible samples

    def with_(self, **changes: float | int | None) -> "Sampling":
        return replace(self, **changes)

    def generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None or self.temperature == 0:
            return None
        return torch.Generator(device=device).manual_seed(self.seed)


GREEDY = Sampling(temperature=0.0)
INSTRUCT = Sampling(temperature=0.7, top_p=0.8, top_k=20)  # Qwen3-Next Instruct recommendation
THINKING = Sampling(temperature=0.6, top_p=0.95, top_k=20)  # Qwen3-Next Thinking recommendation


def sample_next_token(logits: Tensor, sampling: Sampling, generator: torch.Generator | None = None) -> int:
    """One token id from logits [vocab]."""
    if sampling.temperature == 0:
        return int(logits.argmax())
    logits = logits.float() / sampling.temperature
    if 0 < sampling.top_k < logits.numel():
        kth_largest = torch.topk(logits, sampling.top_k).values[-1]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = logits.sort(descending=True)
        probs = sorted_logits.softmax(-1)
        # Drop a token when the tokens ranked above it already cover top_p; the top token always stays.
        drop_sorted = probs.cumsum(-1) - probs >= sampling.top_p
        logits = logits.masked_fill(drop_sorted.scatter(0, order, drop_sorted), float("-inf"))
    return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))

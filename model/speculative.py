"""Speculative decoding with the multi-token-prediction (MTP) head of Qwen3-Next and Qwen3.5 checkpoints.

The head (`mtp.*` in the checkpoint) is one full-attention decoder layer. Fed the main model's final hidden
state at position i and the embedding of token i+1, it predicts token i+2; chained on its own output it
drafts k tokens. The main model then reads the last sampled token and the k drafts in one forward, recording
its linear-attention state after each token (`HybridState.record_steps`), and keeps the longest prefix whose
drafts equal what it samples itself; the state rolls back to the last kept token (`HybridState.roll_back`).

Each emitted token is sampled by the main model from the same logits, with the same generator draws, as
decoding without drafts: the output is the same (token for token when greedy); drafts only decide how many
tokens one forward of the main model yields.
"""

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor, nn

from model.qwen3_next import DecoderLayer, ModelArgs, RMSNorm
from model.sampling import Sampling, sample_next_token
from model.state import HybridState, KVCache

if TYPE_CHECKING:
    from model.qwen3_next import HybridLM

# The draft head's own KV cache grows by one block of this many tokens at a time.
DRAFT_BLOCK_TOKENS = 1024


class MultiTokenPredictor(nn.Module):
    """The checkpoint's `mtp.*` head. Parameter names are the checkpoint's without "mtp."."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        D, eps = args.hidden_size, args.rms_norm_eps
        self.pre_fc_norm_embedding = RMSNorm(D, eps)
        self.pre_fc_norm_hidden = RMSNorm(D, eps)
        self.fc = nn.Linear(2 * D, D, bias=False)
        layer_args = replace(args, layer_types=("full_attention",), mlp_only_layers=())
        self.layers = nn.ModuleList([DecoderLayer(layer_args, 0)])
        self.norm = RMSNorm(D, eps)
        # Drafted and accepted tokens since loading: the acceptance rate the benchmark reports.
        self.drafted = self.accepted = 0

    def forward(
        self, embeddings: Tensor, hidden: Tensor, rope: tuple[Tensor, Tensor], cache: KVCache
    ) -> Tensor:
        """embeddings [B, T, D] of tokens i+1 and the main model's hidden states [B, T, D] at i -> the head's
        final-normed hidden states [B, T, D], whose logits (the main lm_head) predict tokens i+2."""
        x = torch.cat([self.pre_fc_norm_embedding(embeddings), self.pre_fc_norm_hidden(hidden)], dim=-1)
        return self.norm(self.layers[0](self.fc(x), rope, cache))  # [B, T, D]


class Drafter(Protocol):
    def draft(self, pending: list[int], pending_hidden: Tensor, position: int, count: int) -> list[int]:
        """`count` guesses of the tokens after `pending` (sampled tokens, the last at `position` and not yet
        read by the main model; `pending_hidden` [1, n, D]: the main model's hidden states before each)."""
        ...


class MTPDrafter:
    """Drafts with the checkpoint's MTP head, which keeps its own KV cache of the tokens it has read."""

    def __init__(self, lm: "HybridLM") -> None:
        if lm.mtp is None:
            raise ValueError("draft_tokens needs a checkpoint with an MTP head (mtp.* weights)")
        self.lm, self.head = lm, lm.mtp
        # The head sits on the last device, with the final norm and lm_head whose output it reads.
        self.device = lm.lm_head.weight.device
        shape = (1, lm.config.num_key_value_heads, lm.config.head_dim)
        self.cache = KVCache(shape, DRAFT_BLOCK_TOKENS, lm.dtype, self.device, pin=False)

    def draft(self, pending: list[int], pending_hidden: Tensor, position: int, count: int) -> list[int]:
        """Reads the pending tokens into the head's cache, then drafts with the head feeding on its own
        output; only the pending tokens stay cached."""
        lm, rope = self.lm, self.lm.ropes[self.device]
        first = position - len(pending) + 1
        embeddings = lm.embed_tokens(torch.tensor([pending], device=lm.device)).to(self.device)  # [1, n, D]
        hidden = self.head(embeddings, pending_hidden, rope(first, len(pending), lm.dtype), self.cache)
        kept = self.cache.length
        drafts: list[int] = []
        for step in range(count):
            drafts.append(int(lm.lm_head(hidden[0, -1]).argmax()))
            if step + 1 < count:
                embedding = lm.embed_tokens(torch.tensor([[drafts[-1]]], device=lm.device)).to(self.device)
                hidden = self.head(
                    embedding, hidden[:, -1:], rope(position + 1 + step, 1, lm.dtype), self.cache
                )
        self.cache.truncate(kept)
        self.head.drafted += count
        return drafts


@torch.inference_mode()
def generate_with_drafts(
    lm: "HybridLM",
    state: HybridState,
    prompt_ids: Tensor | Sequence[int],
    max_new_tokens: int,
    sampling: Sampling,
    stops: set[int],
    on_token: Callable[[int], None] | None,
    chunk_size: int,
    draft_tokens: int,
    drafter: Drafter,
) -> list[int]:
    """`HybridLM.generate` with `draft_tokens` drafted per forward of the main model (same contract)."""
    generator = sampling.generator(lm.device)
    ids = torch.as_tensor(prompt_ids, dtype=torch.long).reshape(-1).to(lm.device)
    if ids.numel() > 1:
        lm.prefill(ids[:-1], state, chunk_size=chunk_size)
    hidden = lm.hidden_states(ids[None, -1:], state)  # [1, 1, D]
    output: list[int] = []

    def emit(token: int) -> bool:
        """Records a sampled token; True once generation must end."""
        output.append(token)
        if on_token is not None:
            on_token(token)
        return token in stops or len(output) >= max_new_tokens

    token = sample_next_token(lm.lm_head(hidden[0, -1]).float(), sampling, generator)
    if emit(token):
        lm(torch.tensor([[token]], device=lm.device), state, last_only=True)
        return output
    pending, pending_hidden = [token], hidden
    while True:
        drafts = drafter.draft(pending, pending_hidden, state.position, draft_tokens)
        start = state.position
        state.record_steps()
        hidden = lm.hidden_states(
            torch.tensor([[pending[-1], *drafts]], device=lm.device), state
        )  # [1, k+1, D]
        logits = lm.lm_head(hidden[0]).float()  # [k+1, vocab]
        for i in range(draft_tokens + 1):
            token = sample_next_token(logits[i], sampling, generator)
            if emit(token):
                state.roll_back(start + i + 1)
                lm(torch.tensor([[token]], device=lm.device), state, last_only=True)
                return output
            if i == draft_tokens or token != drafts[i]:
                break
        if lm.mtp is not None:
            lm.mtp.accepted += i
        state.roll_back(start + i + 1)  # the last sampled token plus the i accepted drafts
        pending, pending_hidden = [*drafts[:i], token], hidden[:, : i + 1]

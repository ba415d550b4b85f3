"""Speculative decoding with the MTP head: the same tokens and the same final state as decoding without it."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor

from model import GREEDY, HybridLM, Sampling
from model.speculative import generate_with_drafts
from model.testing import add_mtp_head
from tests.model.test_qwen3_next import CONFIGS, random_ids

PROMPT, NEW_TOKENS = 40, 24


@pytest.fixture(scope="module", params=["default", "qwen3_5_dense", "qwen3_5_moe"])
def lm(request: pytest.FixtureRequest, checkpoint: Callable[..., Path]) -> HybridLM:
    path = checkpoint(**CONFIGS[request.param])
    if not (path / "mtp.safetensors").exists():
        add_mtp_head(path)
    return HybridLM.from_pretrained(path)


def decode(lm: HybridLM, sampling: Sampling = GREEDY, **kwargs: object) -> tuple[list[int], Tensor, int]:
    """(tokens, the next logits from the final state, its position): the state must be prompt + output."""
    state = lm.new_state(block_size=16)
    tokens = lm.generate(
        state,
        random_ids(PROMPT, lm.config.vocab_size, seed=2)[0],
        NEW_TOKENS,
        sampling,
        stop_token_ids=[],
        **kwargs,
    )
    return tokens, lm(torch.tensor([[tokens[-1]]]), state, last_only=True), state.position


@pytest.mark.parametrize("draft_tokens", [1, 3])
def test_mtp_drafts_give_the_same_tokens_and_state(lm: HybridLM, draft_tokens: int) -> None:
    assert lm.mtp is not None
    tokens, logits, position = decode(lm)
    drafted, drafted_logits, drafted_position = decode(lm, draft_tokens=draft_tokens)
    assert drafted == tokens and drafted_position == position == PROMPT + NEW_TOKENS + 1
    torch.testing.assert_close(drafted_logits, logits, rtol=1e-4, atol=1e-4)


def test_sampled_output_is_the_same_with_drafts(lm: HybridLM) -> None:
    """Every emitted token is drawn from the main model's logits with the same generator draws."""
    sampling = Sampling(temperature=0.8, top_p=0.95, top_k=20, seed=5)
    assert decode(lm, sampling, draft_tokens=2)[0] == decode(lm, sampling)[0]


class ScriptedDrafter:
    """Drafts the reference continuation, wrong at chosen positions: exercises accepted prefixes, rejections
    mid-draft and all-accepted rounds, which random MTP weights rarely produce."""

    def __init__(self, reference: list[int], wrong_at: set[int]) -> None:
        self.reference, self.wrong_at = reference, wrong_at

    def draft(self, pending: list[int], pending_hidden: Tensor, position: int, count: int) -> list[int]:
        after = position - PROMPT + 1  # output index of the first drafted token
        return [
            (self.reference[i] + 1 if i in self.wrong_at else self.reference[i])
            if i < len(self.reference)
            else 0
            for i in range(after, after + count)
        ]


@pytest.mark.parametrize("stop_at", [None, 9])
def test_rejection_mid_draft_rolls_back_to_the_last_accepted_token(lm: HybridLM, stop_at: int | None) -> None:
    prompt = random_ids(PROMPT, lm.config.vocab_size, seed=2)[0]
    reference_state = lm.new_state(block_size=16)
    reference = lm.generate(reference_state, prompt, NEW_TOKENS, GREEDY, stop_token_ids=[])
    stops = set() if stop_at is None else {reference[stop_at]}
    expected = reference if stop_at is None else reference[: reference.index(reference[stop_at]) + 1]
    # Drafts of 4: round one accepts 2 then rejects, later rounds accept all or reject at once.
    drafter = ScriptedDrafter(reference, wrong_at={3, 5, 6, 13})
    state = lm.new_state(block_size=16)
    tokens = generate_with_drafts(lm, state, prompt, NEW_TOKENS, GREEDY, stops, None, 64, 4, drafter)
    assert tokens == expected
    assert state.position == PROMPT + len(expected)
    probe = torch.tensor([[7]])
    if stop_at is None:
        torch.testing.assert_close(
            lm(probe, state, last_only=True), lm(probe, reference_state, last_only=True), rtol=1e-4, atol=1e-4
        )

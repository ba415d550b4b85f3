"""Sampling presets and the sampler."""

import torch

from model import GREEDY, INSTRUCT, THINKING, Sampling
from model.sampling import sample_next_token


def test_presets_follow_the_qwen_recommendations() -> None:
    assert (INSTRUCT.temperature, INSTRUCT.top_p, INSTRUCT.top_k) == (0.7, 0.8, 20)
    assert (THINKING.temperature, THINKING.top_p, THINKING.top_k) == (0.6, 0.95, 20)
    assert INSTRUCT.with_(temperature=0.3).top_k == 20


def test_greedy_and_top_k_one_pick_the_argmax() -> None:
    logits = torch.tensor([0.1, 2.0, 1.9, -1.0])
    assert sample_next_token(logits, GREEDY) == 1
    assert all(sample_next_token(logits, Sampling(temperature=5.0, top_k=1)) == 1 for _ in range(20))


def test_top_p_keeps_only_the_nucleus() -> None:
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    generator = torch.Generator().manual_seed(0)
    picks = {sample_next_token(logits, Sampling(temperature=1.0, top_p=0.8), generator) for _ in range(300)}
    assert picks == {0, 1}


def test_a_seed_reproduces_the_samples() -> None:
    logits = torch.randn(50, generator=torch.Generator().manual_seed(1))
    sampling = Sampling(temperature=1.0, seed=7)

    def draw() -> list[int]:
        generator = sampling.generator(torch.device("cpu"))
        return [sample_next_token(logits, sampling, generator) for _ in range(30)]

    first = draw()
    assert first == draw() and len(set(first)) > 3

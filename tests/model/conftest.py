"""Shared fixtures: tiny random checkpoints written by transformers itself, and its model as the oracle."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from model.testing import make_random_checkpoint


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """checkpoint(**config_overrides) -> path of a random checkpoint, written once per distinct overrides."""
    made: dict[str, Path] = {}

    def make(**overrides: Any) -> Path:
        key = json.dumps(overrides, sort_keys=True)
        if key not in made:
            made[key] = make_random_checkpoint(tmp_path_factory.mktemp("checkpoint"), **overrides)
        return made[key]

    return make


def reference_model(path: Path, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """transformers' own causal LM for the checkpoint's model type (Qwen3-Next, Qwen3.5, Qwen3.5 MoE)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).eval()


def assert_logits_close(ours: torch.Tensor, reference: torch.Tensor, relative: float = 1e-4) -> None:
    """Max abs difference within `relative` × max |reference logit|."""
    assert ours.shape == reference.shape
    bound = relative * reference.abs().max().item()
    difference = (ours.float() - reference.float()).abs().max().item()
    assert difference <= bound, f"max |diff| {difference:.3g} > {bound:.3g}"

"""Layers over several devices: consecutive layers with their states on each, activations moved between them.
CPU-only machines exercise the path with "cpu" several times, and the placement with "meta" as a second
device (tensors there have shapes but no data)."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from model import GREEDY, HybridLM
from model.loading import layer_devices
from model.state import KVCache, LinearAttentionState
from tests.model.conftest import assert_logits_close, reference_model


def test_layers_are_split_into_consecutive_even_runs() -> None:
    assert layer_devices(5, ["a", "b"]) == ["a", "a", "a", "b", "b"]
    assert layer_devices(48, ["cuda:0", "cuda:1"]) == ["cuda:0"] * 24 + ["cuda:1"] * 24
    with pytest.raises(ValueError, match="at most one device per layer"):
        layer_devices(2, ["a", "b", "c"])


def test_weights_and_states_lie_on_their_layers_devices(checkpoint: Callable[..., Path]) -> None:
    lm = HybridLM.from_pretrained(checkpoint(), device=["cpu", "meta"])
    cpu, meta = torch.device("cpu"), torch.device("meta")
    assert lm.layer_devices == [cpu, cpu, meta, meta]
    assert lm.embed_tokens.weight.device == cpu and lm.lm_head.weight.device == meta
    for layer, device in zip(lm.layers, lm.layer_devices, strict=True):
        assert {p.device for p in layer.parameters()} == {device}
    state = lm.new_state(block_size=16)
    linear, attention = state.layers[2], state.layers[3]  # layer 3 is full attention
    assert isinstance(linear, LinearAttentionState) and linear.recurrent.device == meta
    assert isinstance(attention, KVCache) and attention.device == meta
    assert state.layers[0].conv.device == cpu
    assert set(lm.ropes) == {cpu, meta}


def test_several_devices_read_generate_and_resume_like_one(
    checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    path = checkpoint()
    one, three = (
        HybridLM.from_pretrained(path),
        HybridLM.from_pretrained(path, device=["cpu", "cpu", "cpu"]),
    )
    assert len(three.layer_devices) == 4 and len(three.ropes) == 1
    ids = torch.randint(0, one.config.vocab_size, (1, 70), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference_model(path)(ids).logits
    state = three.new_state(block_size=32)
    logits = torch.cat([three(ids[:, s : s + 30], state) for s in range(0, 70, 30)], dim=1)
    assert_logits_close(logits, expected)
    state.save(tmp_path / "state.safetensors")
    resumed = three.load_state(tmp_path / "state.safetensors")
    prompt = [5, 6, 7]
    assert three.generate(resumed, prompt, max_new_tokens=4, sampling=GREEDY) == one.generate(
        one.load_state(tmp_path / "state.safetensors"), prompt, max_new_tokens=4, sampling=GREEDY
    )

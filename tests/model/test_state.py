"""Streaming state: save/load mid-document, clone, bf16 KV cache, cancellation between chunks."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from model import GREEDY, HybridLM
from model.state import KVCache
from tests.model.conftest import assert_logits_close


@pytest.fixture(scope="module")
def lm(checkpoint: Callable[..., Path]) -> HybridLM:
    return HybridLM.from_pretrained(checkpoint())


def document(lm: HybridLM, length: int = 230) -> torch.Tensor:
    return torch.randint(0, lm.config.vocab_size, (length,), generator=torch.Generator().manual_seed(3))


def test_save_load_mid_document_then_continue_equals_uninterrupted(lm: HybridLM, tmp_path: Path) -> None:
    ids = document(lm)
    uninterrupted = lm.prefill(ids, lm.new_state(block_size=48), chunk_size=50)
    state = lm.new_state(block_size=48)
    lm.prefill(ids[:150], state, chunk_size=50)  # the same chunk boundaries: bitwise equal
    state.save(tmp_path / "state.safetensors")
    resumed = lm.load_state(tmp_path / "state.safetensors")
    assert resumed.position == 150
    torch.testing.assert_close(lm.prefill(ids[150:], resumed, chunk_size=50), uninterrupted, rtol=0, atol=0)


def test_clone_leaves_the_original_untouched(lm: HybridLM) -> None:
    ids = document(lm)
    state = lm.new_state(block_size=32)
    lm.prefill(ids[:100], state, chunk_size=40)  # 100 = 3 full blocks + a partial one
    fork = state.clone()
    first = lm.generate(fork, [5, 6, 7], max_new_tokens=4, sampling=GREEDY)
    second = lm.generate(state.clone(), [5, 6, 7], max_new_tokens=4, sampling=GREEDY)
    assert first == second and state.position == 100
    assert fork.position == 100 + 3 + len(first)


def test_bfloat16_kv_cache_runs_close_to_float32(lm: HybridLM) -> None:
    ids = document(lm)
    exact = lm.prefill(ids, lm.new_state(block_size=64), chunk_size=60)
    state = lm.new_state(kv_dtype=torch.bfloat16, block_size=64)
    rounded = lm.prefill(ids, state, chunk_size=60)
    kv = next(layer for layer in state.layers if isinstance(layer, KVCache))
    assert kv.keys[0].dtype == torch.bfloat16 and len(kv.keys) == 4
    assert_logits_close(rounded, exact, relative=3e-2)


def test_kv_cache_grows_in_fixed_blocks_without_moving_them(lm: HybridLM) -> None:
    state = lm.new_state(block_size=64)
    lm.prefill(document(lm, 100), state, chunk_size=100)
    kv = next(layer for layer in state.layers if isinstance(layer, KVCache))
    first_block = kv.keys[0].data_ptr()
    lm.prefill(document(lm, 100), state, chunk_size=100)
    assert [block.shape[2] for block in kv.keys] == [64, 64, 64, 64] and kv.length == 200
    assert kv.keys[0].data_ptr() == first_block


def test_raising_from_on_chunk_stops_at_a_chunk_boundary(lm: HybridLM) -> None:
    seen: list[int] = []

    def cancel_after_two(done: int) -> None:
        seen.append(done)
        if len(seen) == 2:
            raise KeyboardInterrupt

    state = lm.new_state()
    with pytest.raises(KeyboardInterrupt):
        lm.prefill(document(lm), state, chunk_size=64, on_chunk=cancel_after_two)
    assert seen == [64, 128] and state.position == 128


def test_load_state_rejects_another_model(
    lm: HybridLM, checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    state = lm.new_state()
    lm.prefill(document(lm, 20), state)
    state.save(tmp_path / "state.safetensors")
    other = HybridLM.from_pretrained(checkpoint(linear_num_value_heads=2))
    with pytest.raises(ValueError, match="does not fit"):
        other.load_state(tmp_path / "state.safetensors")

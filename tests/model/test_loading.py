"""Checkpoint loading: sharded safetensors, mtp weights, bfloat16."""

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file

from model import HybridLM
from model.testing import add_mtp_head, make_random_checkpoint
from tests.model.conftest import assert_logits_close, reference_model


def test_sharded_checkpoint_with_mtp_weights_loads_and_matches(tmp_path: Path) -> None:
    path = make_random_checkpoint(tmp_path, max_shard_size="60KB")
    shards = sorted(path.glob("model-*.safetensors"))
    assert len(shards) > 2 and (path / "model.safetensors.index.json").exists()
    # Real Qwen3-Next checkpoints carry an MTP head in its own shard (transformers ignores mtp.*).
    add_mtp_head(path)
    lm = HybridLM.from_pretrained(path)
    assert lm.mtp is not None
    torch.testing.assert_close(lm.mtp.fc.weight, load_file(path / "mtp.safetensors")["mtp.fc.weight"])
    ids = torch.randint(0, lm.config.vocab_size, (1, 60), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference_model(path)(ids).logits
    assert_logits_close(lm(ids, lm.new_state()), expected)


def test_bfloat16_loads_and_runs_as_close_as_transformers_bfloat16(checkpoint: Callable[..., Path]) -> None:
    """bf16 drifts from fp32 (routing flips in random MoE layers): ours may drift at most ~as much as
    transformers' own bf16 model does."""
    path = checkpoint()
    lm = HybridLM.from_pretrained(path, dtype=torch.bfloat16)
    assert {p.dtype for p in lm.parameters()} == {torch.bfloat16}
    ids = torch.randint(0, lm.config.vocab_size, (1, 120), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        exact = reference_model(path, torch.float32)(ids).logits
        reference_bf16 = reference_model(path, torch.bfloat16)(ids).logits.float()
    state = lm.new_state(block_size=32)
    logits = torch.cat([lm(ids[:, s : s + 50], state) for s in range(0, 120, 50)], dim=1)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    our_error = (logits - exact).abs().mean().item()
    reference_error = (reference_bf16 - exact).abs().mean().item()
    assert 0 < our_error <= 2 * reference_error

"""Block-FP8 checkpoints in Qwen's published layout: read as FP8, computed like the dequantized model."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from model import HybridLM
from model.fp8 import FP8, FP8Linear, FP8SparseMoE, dequantize_checkpoint, quantize_checkpoint
from tests.model.conftest import assert_logits_close


# Qwen's 128 × 128 (one block per tiny matrix), and blocks that split every matrix and straddle the row groups
# that loading regroups (in_proj_qkvz heads, experts' gate | up).
@pytest.mark.parametrize("block", [(128, 128), (24, 32)])
def test_fp8_checkpoint_matches_the_model_on_its_dequantized_weights(
    checkpoint: Callable[..., Path], tmp_path: Path, block: tuple[int, int]
) -> None:
    fp8_path = quantize_checkpoint(checkpoint(), tmp_path / "fp8", block)
    config = json.loads((fp8_path / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "fp8" and config["weight_block_size"] == list(block)
    assert {"lm_head", "model.embed_tokens", "model.layers.0.linear_attn.in_proj_ba"} <= set(
        config["modules_to_not_convert"]
    )
    with safe_open(str(fp8_path / "model.safetensors"), "pt") as f:
        assert f.get_slice("model.layers.0.mlp.experts.1.up_proj.weight").get_dtype() == "F8_E4M3"
        assert f.get_slice("model.layers.0.mlp.experts.1.up_proj.weight_scale_inv").get_shape() == [
            -(-32 // block[0]),
            -(-64 // block[1]),
        ]
        assert f.get_slice("model.layers.0.mlp.gate.weight").get_dtype() == "BF16"

    lm = HybridLM.from_pretrained(fp8_path)
    assert isinstance(lm.layers[0].linear_attn.in_proj_qkvz, FP8Linear)
    assert isinstance(lm.layers[3].self_attn.q_proj, FP8Linear) and isinstance(lm.layers[3].mlp, FP8SparseMoE)
    assert lm.layers[3].mlp.gate_up_proj.dtype == FP8 and lm.layers[3].mlp.gate.weight.dtype == torch.float32
    fp8_bytes = sum(b.numel() for b in lm.buffers() if b.dtype == FP8)
    assert fp8_bytes > 0.4 * sum(p.numel() for p in lm.parameters())  # the converted half stays 1 byte

    oracle = HybridLM.from_pretrained(dequantize_checkpoint(fp8_path, tmp_path / "dequantized"))
    ids = torch.randint(0, lm.config.vocab_size, (1, 90), generator=torch.Generator().manual_seed(0))
    state, oracle_state = lm.new_state(block_size=32), oracle.new_state(block_size=32)
    for start in range(0, 90, 40):  # chunked, so KV blocks and carried states take part
        assert_logits_close(
            lm(ids[:, start : start + 40], state), oracle(ids[:, start : start + 40], oracle_state)
        )


def test_other_quantization_methods_are_refused(checkpoint: Callable[..., Path], tmp_path: Path) -> None:
    fp8_path = quantize_checkpoint(checkpoint(), tmp_path / "fp8")
    config = json.loads((fp8_path / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "awq", "bits": 4}
    (fp8_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="quant_method='awq'"):
        HybridLM.from_pretrained(fp8_path)

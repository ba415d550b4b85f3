"""Parity of HybridLM with transformers' Qwen3NextForCausalLM (the oracle) on tiny random checkpoints."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from model import GREEDY, HybridLM
from model.qwen3_next import (
    ModelArgs,
    attend_few_queries,
    rope_inverse_frequencies,
    streaming_attention,
)
from tests.model.conftest import assert_logits_close, reference_model

CONFIGS: dict[str, dict[str, Any]] = {
    # 3 linear : 1 full, linear value heads = 2 × key heads, GQA 4/2.
    "default": {},
    # Value heads = key heads, MQA, wide heads, half-rotary, tied embeddings, full attention first.
    "mqa_tied": {
        "num_key_value_heads": 1,
        "head_dim": 32,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 2,
        "partial_rotary_factor": 0.5,
        "tie_word_embeddings": True,
        "layer_types": ["full_attention", "linear_attention", "linear_attention", "full_attention"],
    },
    # More experts, top-3 without renormalisation, dense MLP layers from mlp_only_layers and sparse_step.
    "moe_variants": {
        "hidden_size": 96,
        "num_hidden_layers": 5,
        "layer_types": ["linear_attention", "full_attention"] * 2 + ["linear_attention"],
        "num_experts": 8,
        "num_experts_per_tok": 3,
        "norm_topk_prob": False,
        "decoder_sparse_step": 2,
        "mlp_only_layers": [3],
        "linear_key_head_dim": 8,
        "linear_value_head_dim": 24,
        "linear_num_value_heads": 6,
        "num_attention_heads": 6,
        "num_key_value_heads": 3,
    },
    # Qwen3.5 text models: separate linear-attention projections; dense MLPs, or experts in every layer.
    "qwen3_5_dense": {
        "model_type": "qwen3_5_text",
        "layer_types": ["linear_attention", "full_attention"] * 2,
    },
    "qwen3_5_moe": {"model_type": "qwen3_5_moe_text", "num_key_value_heads": 1, "num_experts_per_tok": 3},
    # YaRN with a short original context, so positions of the test already lie beyond it.
    "yarn": {
        "rope_parameters": {
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 64,
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.25,
        },
        "head_dim": 64,
    },
}
LENGTH = 203


@pytest.fixture(scope="module", params=list(CONFIGS))
def models(request: pytest.FixtureRequest, checkpoint: Callable[..., Path]) -> tuple[HybridLM, Any, Path]:
    path = checkpoint(**CONFIGS[request.param])
    return HybridLM.from_pretrained(path), reference_model(path), path


def random_ids(length: int, vocab: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (1, length), generator=torch.Generator().manual_seed(seed))


def test_single_forward_matches_transformers(models: tuple[HybridLM, Any, Path]) -> None:
    lm, reference, _ = models
    ids = random_ids(LENGTH, lm.config.vocab_size)
    with torch.no_grad():
        expected = reference(ids).logits
    assert_logits_close(lm(ids, lm.new_state()), expected)


@pytest.mark.parametrize(("chunk", "block"), [(37, 32), (64, 50)])
def test_chunked_prefill_matches_transformers(
    models: tuple[HybridLM, Any, Path], chunk: int, block: int
) -> None:
    lm, reference, _ = models
    ids = random_ids(LENGTH, lm.config.vocab_size)
    with torch.no_grad():
        expected = reference(ids).logits
    state = lm.new_state(block_size=block)
    chunks = [lm(ids[:, start : start + chunk], state) for start in range(0, LENGTH, chunk)]
    assert_logits_close(torch.cat(chunks, dim=1), expected)
    assert state.position == LENGTH
    last = lm.prefill(ids[0], lm.new_state(block_size=block), chunk_size=chunk)
    assert_logits_close(last, expected[0, -1])


def test_greedy_generation_matches_transformers(models: tuple[HybridLM, Any, Path]) -> None:
    """Same tokens, and the same stop at the checkpoint's EOS (<|im_end|>) when greedy decoding reaches it."""
    lm, reference, _ = models
    prompt = random_ids(40, lm.config.vocab_size, seed=2)
    expected = reference.generate(prompt, do_sample=False, max_new_tokens=12)[0, 40:]
    produced = lm.generate(
        lm.new_state(block_size=16),
        prompt[0],
        max_new_tokens=12,
        sampling=GREEDY,
        chunk_size=24,
    )
    assert produced == expected.tolist()


def test_yarn_frequencies_match_transformers(checkpoint: Callable[..., Path]) -> None:
    from transformers import Qwen3NextConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    path = checkpoint(**CONFIGS["yarn"])
    expected_freq, expected_factor = ROPE_INIT_FUNCTIONS["yarn"](Qwen3NextConfig.from_pretrained(str(path)))
    inv_freq, factor = rope_inverse_frequencies(ModelArgs.from_dir(path))
    torch.testing.assert_close(inv_freq, expected_freq, rtol=1e-6, atol=0)
    assert factor == pytest.approx(expected_factor) and factor > 1.0


def test_yarn_changes_logits_at_test_length(checkpoint: Callable[..., Path]) -> None:
    """Guards the yarn parity test: at LENGTH, YaRN must actually move the logits."""
    yarn = HybridLM.from_pretrained(checkpoint(**CONFIGS["yarn"]))
    plain = HybridLM.from_pretrained(checkpoint(head_dim=64))
    ids = random_ids(LENGTH, yarn.config.vocab_size)
    difference = (yarn(ids, yarn.new_state()) - plain(ids, plain.new_state())).abs().max()
    assert difference > 1e-2


def test_old_style_rope_scaling_config_is_read() -> None:
    hf = {
        "model_type": "qwen3_next",
        "rope_theta": 5e6,
        "partial_rotary_factor": 0.25,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 262144},
        "num_hidden_layers": 8,
        "eos_token_id": 7,
    }
    args = ModelArgs.from_hf(hf, {"eos_token_id": [7, 9]})
    assert (args.rope_type, args.rope_factor, args.original_max_position_embeddings) == ("yarn", 4.0, 262144)
    assert args.rope_theta == 5e6 and args.eos_token_ids == (7, 9)
    assert args.layer_types == ("linear_attention",) * 3 + ("full_attention",) + ("linear_attention",) * 3 + (
        "full_attention",
    )


def test_streaming_attention_equals_full_causal_attention() -> None:
    generator = torch.Generator().manual_seed(0)
    past_len, new_len, heads, kv_heads, dim = 70, 13, 4, 2, 8
    q = torch.randn(1, heads, new_len, dim, generator=generator)
    k, v = (torch.randn(1, kv_heads, past_len + new_len, dim, generator=generator) for _ in range(2))
    past_k, past_v = k[:, :, :past_len], v[:, :, :past_len]
    blocks = [(past_k[:, :, s : s + 32], past_v[:, :, s : s + 32]) for s in range(0, past_len, 32)]
    out = streaming_attention(q, k[:, :, past_len:], v[:, :, past_len:], blocks, dim**-0.5)
    mask = torch.ones(new_len, past_len + new_len, dtype=torch.bool).tril(past_len)
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=mask
    )
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_qwen3_5_vision_language_layout_loads_its_text_model(
    checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    """Published Qwen3.5 checkpoints are vision-language models: the text config is nested under
    `text_config` and the text weights live under `model.language_model.` beside a vision tower."""
    from safetensors.torch import load_file, save_file

    text = checkpoint(**CONFIGS["qwen3_5_moe"])
    for file in text.iterdir():
        if file.name not in ("config.json", "model.safetensors"):
            (tmp_path / file.name).write_bytes(file.read_bytes())
    text_config = json.loads((text / "config.json").read_text())
    config = {"model_type": "qwen3_5_moe", "text_config": text_config, "vision_config": {"depth": 1}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    tensors = {
        name.replace("model.", "model.language_model.", 1): tensor
        for name, tensor in load_file(text / "model.safetensors").items()
    }
    tensors["model.visual.patch_embed.proj.weight"] = torch.zeros(4, 3)
    save_file(tensors, tmp_path / "model.safetensors")

    nested, flat = HybridLM.from_pretrained(tmp_path), HybridLM.from_pretrained(text)
    assert nested.config == flat.config and nested.config.num_experts == text_config["num_experts"]
    ids = random_ids(31, flat.config.vocab_size)
    flat_weights, nested_weights = flat.state_dict(), nested.state_dict()
    assert nested_weights.keys() == flat_weights.keys()
    assert all(torch.equal(weight, flat_weights[name]) for name, weight in nested_weights.items())
    # Equal weights, though the GEMMs may round differently with their memory's alignment.
    torch.testing.assert_close(nested(ids, nested.new_state()), flat(ids, flat.new_state()))


def test_unsupported_model_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported model_type 'llama'"):
        ModelArgs.from_hf({"model_type": "llama"})


@pytest.mark.parametrize("new_len", [1, 3])
def test_few_query_attention_equals_causal_attention(new_len: int) -> None:
    """Decode and draft verification (few new tokens) take the one-softmax path."""
    generator = torch.Generator().manual_seed(1)
    past_len, heads, kv_heads, dim = 75, 4, 2, 8
    q = torch.randn(1, heads, new_len, dim, generator=generator)
    k, v = (torch.randn(1, kv_heads, past_len + new_len, dim, generator=generator) for _ in range(2))
    blocks = [
        (k[:, :, s : min(s + 32, past_len)], v[:, :, s : min(s + 32, past_len)]) for s in range(0, 75, 32)
    ]
    new_k, new_v = k[:, :, past_len:], v[:, :, past_len:]
    few = attend_few_queries(q, new_k, new_v, blocks, dim**-0.5)
    group = heads // kv_heads
    mask = torch.ones(new_len, past_len + new_len, dtype=torch.bool).tril(past_len)
    expected = F.scaled_dot_product_attention(
        q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), attn_mask=mask, scale=dim**-0.5
    )
    torch.testing.assert_close(few, expected, rtol=1e-5, atol=1e-5)
    dispatched = streaming_attention(q, new_k, new_v, blocks, dim**-0.5)
    torch.testing.assert_close(dispatched, expected, rtol=1e-5, atol=1e-5)

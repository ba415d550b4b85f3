"""The memory plan of Qwen3-Next-80B-A3B per device (`docproc plan`), against numbers worked out by hand."""

from model.plan import plan
from model.qwen3_next import ModelArgs

# Qwen/Qwen3-Next-80B-A3B-Instruct's config.json (the fields that size memory).
QWEN3_NEXT_80B = {
    "model_type": "qwen3_next",
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 5120,
    "num_hidden_layers": 48,
    "full_attention_interval": 4,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 32,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4,
    "num_experts": 512,
    "num_experts_per_tok": 10,
    "moe_intermediate_size": 512,
    "shared_expert_intermediate_size": 512,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "tie_word_embeddings": False,
    "max_position_embeddings": 262144,
    "rope_theta": 10000000,
    "partial_rotary_factor": 0.25,
    "mtp_num_hidden_layers": 1,
}
FP8_80B = QWEN3_NEXT_80B | {
    "quantization_config": {
        "quant_method": "fp8",
        "weight_block_size": [128, 128],
        "activation_scheme": "dynamic",
    }
}

# Parameters, by hand. A linear layer: qkvz 2048 × (2·16·128 + 2·32·128) = 25,165,824; ba 2048 × 64 = 131,072;
# conv 8192 × 4 = 32,768; dt_bias, A_log 32 each and norm 128; out_proj 4096 × 2048 = 8,388,608.
LINEAR_MIXER = 25_165_824 + 131_072 + 32_768 + 192 + 8_388_608
# A full-attention layer: q (with gate) 8192 × 2048, k and v 512 × 2048 each, o 2048 × 4096, q/k norms 256.
ATTENTION_MIXER = 16_777_216 + 2 * 1_048_576 + 8_388_608 + 512
# MoE: router 512 × 2048; 512 experts × 3 matrices of 512 × 2048; shared expert 3 × 512 × 2048 and its gate.
MOE = 1_048_576 + 512 * 3 * 1_048_576 + 3 * 1_048_576 + 2048
NORMS = 2 * 2048
EMBEDDING = 151936 * 2048


def test_80b_in_bf16_does_not_fit_one_h200_and_fits_two() -> None:
    args = ModelArgs.from_hf(QWEN3_NEXT_80B)
    params = 36 * (NORMS + LINEAR_MIXER + MOE) + 12 * (NORMS + ATTENTION_MIXER + MOE) + 2 * EMBEDDING + 2048
    assert params == 79_674_391_296  # "80B"
    mtp = NORMS + ATTENTION_MIXER + MOE + 2048 * 4096 + 3 * 2048
    h200 = 141 * 10**9
    (one,) = plan(args, 131072, ["cuda:0"], capacities=[h200], mtp_layers=1)
    assert one.weights == 2 * (params + mtp)
    # 12 attention layers × 131072 tokens (32 blocks) × k and v × 2 heads × 256 × 2 bytes.
    assert one.kv_cache == 12 * 131072 * 2 * 2 * 256 * 2 == 3 * 2**30
    # 36 × (conv 8192 × 3 × 2 bytes + recurrent 32 × 128 × 128 × 4 bytes).
    assert one.linear_state == 36 * (8192 * 3 * 2 + 32 * 128 * 128 * 4)
    # Per token: residual 4·2048·2 + DeltaNet (qkvz 12288 + conv 8192 + 4 × 4096) · 2 + its chunk states
    # 32·128·128·2 / 64 + MoE (router 512·4 + routed rows in and out 2·10·2048·2 + shared 3·512·2).
    per_token = 16384 + (12288 + 8192 + 4 * 4096) * 2 + 16384 + (2048 + 81920 + 3072)
    assert one.working == 4096 * per_token == 792_723_456
    assert one.fits is False

    first, second = plan(args, 131072, ["cuda:0", "cuda:1"], capacities=[h200, h200], mtp_layers=1)
    assert (first.layers, second.layers) == ((0, 23), (24, 47))
    layer_halves = 18 * (NORMS + LINEAR_MIXER + MOE) + 6 * (NORMS + ATTENTION_MIXER + MOE)
    assert first.weights == 2 * (layer_halves + EMBEDDING)
    assert second.weights == 2 * (layer_halves + EMBEDDING + 2048 + mtp)
    assert first.kv_cache == second.kv_cache == 6 * 131072 * 2 * 2 * 256 * 2
    assert first.fits and second.fits


def test_80b_fp8_fits_one_h200_with_a_million_tokens() -> None:
    args = ModelArgs.from_hf(FP8_80B)
    # FP8 matrices: 1 byte per weight + a float32 scale per 128 × 128 block; the rest stays bf16.
    linear_mixer = (25_165_824 + 4 * 96 * 16) + 2 * 131_072 + 2 * 32_768 + 2 * 192 + (8_388_608 + 4 * 16 * 32)
    attention_mixer = (16_777_216 + 4 * 64 * 16) + 2 * (1_048_576 + 4 * 4 * 16) + (8_388_608 + 4 * 16 * 32)
    attention_mixer += 2 * 512
    expert_matrix = 1_048_576 + 4 * 4 * 16  # 512 × 2048 (or 2048 × 512) and its 64 scales
    moe = 2 * 1_048_576 + 512 * 3 * expert_matrix + 3 * expert_matrix + 2 * 2048
    norms = 2 * NORMS
    layers = 36 * (norms + linear_mixer + moe) + 12 * (norms + attention_mixer + moe)
    (one,) = plan(args, 1_000_000, ["cuda:0"], capacities=[141 * 10**9])
    assert one.weights == layers + 2 * 2 * EMBEDDING + 2 * 2048
    assert 79 * 10**9 < one.weights < 82 * 10**9
    # 1,000,000 tokens fill 245 blocks of 4096: 1,003,520 tokens × 12 layers × 2048 bytes (~23 GiB).
    assert one.kv_cache == 12 * 1_003_520 * 2 * 2 * 256 * 2
    # The largest FP8 matrix (in_proj_qkvz, 12288 × 2048) is dequantized through float32 into bf16.
    assert one.working == 792_723_456 + 12288 * 2048 * (4 + 2)
    assert one.fits is True

"""A memory plan from config.json alone: what each device holds for a document of N tokens.

Per device: the weights of its layers (block-FP8 checkpoints at 1 byte per converted weight plus a float32
scale per block, everything else in the compute dtype), the KV cache of its full-attention layers (whole
blocks), the linear-attention states of its DeltaNet layers, and the working memory of one prefill chunk.
The layers are split over the devices exactly as `model.loading.layer_devices` places them.

Working memory is an estimate: the live temporaries of the widest layer for one chunk (the residual stream,
the layer's projections, the MoE's routed rows and the chunked delta rule's per-chunk states), plus one
dequantized FP8 matrix at a time. The other three columns are exact byte counts.
"""

import math
import os
from dataclasses import dataclass

import torch

from model.loading import layer_devices
from model.qwen3_next import ModelArgs

# Bytes of the DeltaNet chunk kernel's per-chunk states: one [HV, K, V] state per 64 tokens.
GDR_CHUNK = 64


@dataclass(frozen=True)
class DevicePlan:
    device: str
    layers: tuple[int, int]  # first, last (inclusive)
    weights: int
    kv_cache: int
    linear_state: int
    working: int
    capacity: int | None  # bytes usable on the device; None when unknown

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.linear_state + self.working

    @property
    def fits(self) -> bool | None:
        return None if self.capacity is None else self.total <= self.capacity


class _Weights:
    """Byte counts of matrices and vectors under one checkpoint's storage rules."""

    def __init__(self, args: ModelArgs, dtype_bytes: int) -> None:
        self.block, self.dtype_bytes = args.weight_block_size, dtype_bytes

    def matrix(self, rows: int, cols: int, quantized: bool = True) -> int:
        if self.block is None or not quantized:
            return rows * cols * self.dtype_bytes
        return rows * cols + 4 * math.ceil(rows / self.block[0]) * math.ceil(cols / self.block[1])

    def vector(self, size: int) -> int:
        return size * self.dtype_bytes


def layer_weight_bytes(args: ModelArgs, linear: bool, sparse: bool, dtype_bytes: int) -> int:
    """Bytes of one decoder layer as loaded (FP8 modules as Qwen converts them, see `model.fp8`)."""
    w = _Weights(args, dtype_bytes)
    D = args.hidden_size
    total = 2 * w.vector(D)  # input and post-attention norms
    if linear:
        key_width = args.linear_num_key_heads * args.linear_key_head_dim
        value_width = args.linear_num_value_heads * args.linear_value_head_dim
        conv_channels = 2 * key_width + value_width
        total += w.matrix(conv_channels + value_width, D)  # in_proj_qkvz
        total += w.matrix(2 * args.linear_num_value_heads, D, quantized=False)  # in_proj_ba
        total += w.vector(conv_channels * args.linear_conv_kernel_dim)  # conv
        total += w.vector(
            2 * args.linear_num_value_heads + args.linear_value_head_dim
        )  # dt_bias, A_log, norm
        total += w.matrix(D, value_width)  # out_proj
    else:
        heads, kv_width = args.num_attention_heads * args.head_dim, args.num_key_value_heads * args.head_dim
        total += w.matrix(2 * heads, D) + 2 * w.matrix(kv_width, D) + w.matrix(D, heads)
        total += 2 * w.vector(args.head_dim)  # q_norm, k_norm
        if args.attention_bias:
            total += w.vector(2 * heads + 2 * kv_width + D)
    if sparse:
        E, I, S = args.num_experts, args.moe_intermediate_size, args.shared_expert_intermediate_size  # noqa: E741
        total += w.matrix(E, D, quantized=False)  # router
        total += E * (w.matrix(2 * I, D) if w.block is None else 2 * w.matrix(I, D))  # gate, up per expert
        total += E * w.matrix(D, I)  # down
        total += 2 * w.matrix(S, D) + w.matrix(D, S) + w.matrix(1, D, quantized=False)  # shared expert, gate
    else:
        total += 2 * w.matrix(args.intermediate_size, D) + w.matrix(D, args.intermediate_size)
    return total


def largest_quantized_matrix(args: ModelArgs) -> int:
    """Elements of the largest FP8 matrix, dequantized on its own right before its matmul (0 if unquantized).
    Experts are dequantized one at a time and are smaller than these."""
    if args.weight_block_size is None:
        return 0
    D = args.hidden_size
    key_width = args.linear_num_key_heads * args.linear_key_head_dim
    value_width = args.linear_num_value_heads * args.linear_value_head_dim
    dense = any(not args.is_sparse(i) for i in range(args.num_hidden_layers))
    return D * max(
        2 * key_width + 2 * value_width,  # in_proj_qkvz
        2 * args.num_attention_heads * args.head_dim,  # q_proj
        args.intermediate_size if dense else 0,  # a dense MLP's gate, up or down
        args.shared_expert_intermediate_size,
    )


def working_bytes_per_token(args: ModelArgs, dtype_bytes: int) -> int:
    """Live temporaries per chunk token in the widest layer (compute dtype unless noted)."""
    D, b = args.hidden_size, dtype_bytes
    key_width = args.linear_num_key_heads * args.linear_key_head_dim
    value_width = args.linear_num_value_heads * args.linear_value_head_dim
    heads = args.num_attention_heads * args.head_dim
    residual = 4 * D * b  # x, the normed input, the mixer's output, the MLP's output
    linear = (
        (2 * key_width + 2 * value_width) * b  # in_proj_qkvz output
        + (2 * key_width + value_width) * b  # conv output
        + 4 * value_width * b  # the delta rule's w, u, v_new and output
        + args.linear_num_value_heads * args.linear_key_head_dim * args.linear_value_head_dim * b // GDR_CHUNK
    )
    attention = (
        2 * heads * b  # q_proj output (queries and gate)
        + 2 * heads * b  # keys and values repeated to every query head
        + heads * 4 * 2  # float32 output and one block's output being merged
    )
    moe = (
        args.num_experts * 4  # router softmax (float32)
        + 2 * args.num_experts_per_tok * D * b  # routed rows and their outputs
        + 3 * args.shared_expert_intermediate_size * b
    )
    return residual + max(linear, attention) + moe


def mtp_weight_bytes(args: ModelArgs, mtp_layers: int, dtype_bytes: int) -> int:
    """The multi-token-prediction head (`mtp.*`, loaded beside lm_head): per layer a full-attention MoE layer,
    the [D, 2D] fc joining embedding and hidden state, and three norms."""
    w = _Weights(args, dtype_bytes)
    D = args.hidden_size
    per_layer = layer_weight_bytes(args, linear=False, sparse=args.num_experts > 0, dtype_bytes=dtype_bytes)
    return mtp_layers * (per_layer + w.matrix(D, 2 * D) + 3 * w.vector(D))


def plan(
    args: ModelArgs,
    tokens: int,
    devices: list[str],
    dtype_bytes: int = 2,
    kv_dtype_bytes: int = 2,
    chunk_size: int = 4096,
    block_size: int = 4096,
    capacities: list[int | None] | None = None,
    mtp_layers: int = 0,
) -> list[DevicePlan]:
    """One `DevicePlan` per device for reading `tokens` tokens in chunks of `chunk_size`."""
    owners = layer_devices(args.num_hidden_layers, range(len(devices)))
    kv_per_layer = 2 * math.ceil(tokens / block_size) * block_size * args.num_key_value_heads * args.head_dim
    conv_channels = 2 * args.linear_num_key_heads * args.linear_key_head_dim + (
        args.linear_num_value_heads * args.linear_value_head_dim
    )
    state_per_layer = conv_channels * (args.linear_conv_kernel_dim - 1) * dtype_bytes + (
        args.linear_num_value_heads * args.linear_key_head_dim * args.linear_value_head_dim * 4
    )
    working = min(chunk_size, tokens) * working_bytes_per_token(args, dtype_bytes) + (
        largest_quantized_matrix(args) * (4 + dtype_bytes)  # its float32 product and the result
    )
    embedding = args.vocab_size * args.hidden_size * dtype_bytes
    plans = []
    for i, device in enumerate(devices):
        layers = [layer for layer, owner in enumerate(owners) if owner == i]
        weights = sum(
            layer_weight_bytes(
                args, args.layer_types[layer] == "linear_attention", args.is_sparse(layer), dtype_bytes
            )
            for layer in layers
        )
        if i == 0:
            weights += embedding
        if i == len(devices) - 1:
            weights += args.hidden_size * dtype_bytes + mtp_weight_bytes(args, mtp_layers, dtype_bytes)
            weights += embedding if not args.tie_word_embeddings or len(devices) > 1 else 0  # lm_head
        attention = sum(1 for layer in layers if args.layer_types[layer] == "full_attention")
        plans.append(
            DevicePlan(
                device=device,
                layers=(layers[0], layers[-1]),
                weights=weights,
                kv_cache=attention * kv_per_layer * kv_dtype_bytes,
                linear_state=(len(layers) - attention) * state_per_layer,
                working=working,
                capacity=(capacities or [None] * len(devices))[i],
            )
        )
    return plans


def device_capacity(device: str) -> int | None:
    """Total memory of a visible CUDA device or of this host for "cpu"; None when it cannot be known here."""
    parsed = torch.device(device)
    if parsed.type == "cpu":
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if (
        parsed.type == "cuda"
        and torch.cuda.is_available()
        and (parsed.index or 0) < torch.cuda.device_count()
    ):
        return torch.cuda.get_device_properties(parsed.index or 0).total_memory
    return None

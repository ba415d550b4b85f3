"""Qwen3-Next hybrid LM for streaming inference: Gated DeltaNet + gated full attention + sparse MoE.

Reads Hugging Face `qwen3_next` checkpoints and the Qwen3.5 text models that share the design (`qwen3_5`
dense, `qwen3_5_moe`; see `model.loading`); transformers' `modeling_qwen3_next.py` and `modeling_qwen3_5*.py`
are the oracles for every number computed here. A document is consumed chunk by chunk into a `HybridState`
(recurrent and conv states of the linear layers, block-wise KV cache of the attention layers), so prefill
memory is O(chunk).

Shape letters: B batch, T new tokens, S cached tokens in one KV block, D hidden, H attention (or linear key)
heads, KVH key/value heads, G = H // KVH, Dh attention head dim, R rotary dims, HV linear value heads,
K / V linear key / value head dims, C conv channels, E experts, I expert intermediate, N flattened tokens.
"""

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernels import (
    attention_with_lse,
    causal_conv1d,
    causal_conv1d_update,
    chunk_gated_delta_rule,
    fused_recurrent_gated_delta_rule,
)
from model.memory import release_free_host_memory
from model.sampling import INSTRUCT, Sampling, sample_next_token
from model.state import HybridState, KVCache, LinearAttentionState

if TYPE_CHECKING:
    from model.speculative import MultiTokenPredictor

# config.json model types read by `ModelArgs.from_hf`; the multimodal ones nest the text model's config.
SUPPORTED_MODEL_TYPES = ("qwen3_next", "qwen3_5_text", "qwen3_5_moe_text")
QWEN3_5_MULTIMODAL = ("qwen3_5", "qwen3_5_moe")


@dataclass(frozen=True)
class ModelArgs:
    """The fields of a `qwen3_next` config.json this model uses, with transformers' defaults."""

    vocab_size: int = 151936
    hidden_size: int = 2048
    intermediate_size: int = 5632
    num_hidden_layers: int = 48
    num_attention_heads: int = 16
    num_key_value_heads: int = 2
    head_dim: int = 256
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    max_position_embeddings: int = 32768
    rope_theta: float = 10000.0
    partial_rotary_factor: float = 0.25
    rope_type: str = "default"  # "default" or "yarn"
    rope_factor: float | None = None
    original_max_position_embeddings: int | None = None
    rope_attention_factor: float | None = None
    rope_beta_fast: float = 32.0
    rope_beta_slow: float = 1.0
    rope_mscale: float | None = None
    rope_mscale_all_dim: float | None = None
    rope_truncate: bool = True
    linear_conv_kernel_dim: int = 4
    linear_key_head_dim: int = 128
    linear_value_head_dim: int = 128
    linear_num_key_heads: int = 16
    linear_num_value_heads: int = 32
    decoder_sparse_step: int = 1
    moe_intermediate_size: int = 512
    shared_expert_intermediate_size: int = 512
    num_experts_per_tok: int = 10
    num_experts: int = 512
    norm_topk_prob: bool = True
    mlp_only_layers: tuple[int, ...] = ()
    layer_types: tuple[str, ...] = ()
    eos_token_ids: tuple[int, ...] = ()
    # (rows, columns) of the scale blocks of a block-FP8 checkpoint (`model.fp8`); None: unquantized.
    weight_block_size: tuple[int, int] | None = None

    @classmethod
    def from_hf(cls, hf: dict[str, Any], generation_config: dict[str, Any] | None = None) -> "ModelArgs":
        """From a config.json dict; accepts transformers 5 `rope_parameters` and older `rope_scaling`.

        Qwen3.5 checkpoints are vision-language models whose text model is this one: their `text_config` is
        read (the vision tower is not loaded). Qwen3.5 dense models have no experts; Qwen3.5 MoE models make
        every layer sparse. Their multimodal RoPE equals plain RoPE for text, whose three position axes agree.
        """
        model_type = hf.get("model_type")
        if model_type in QWEN3_5_MULTIMODAL:
            eos = hf.get("eos_token_id")
            hf = {**hf["text_config"], **({"eos_token_id": eos} if eos is not None else {})}
            model_type = hf.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            supported = ", ".join(SUPPORTED_MODEL_TYPES + QWEN3_5_MULTIMODAL)
            raise ValueError(f"unsupported model_type {model_type!r} (supported: {supported})")
        names = {f.name for f in cls.__dataclass_fields__.values()}
        args: dict[str, Any] = {k: v for k, v in hf.items() if k in names and v is not None}
        args.pop("eos_token_ids", None)
        if model_type == "qwen3_5_text":
            args["num_experts"] = 0
        elif model_type == "qwen3_5_moe_text":
            args["decoder_sparse_step"], args["mlp_only_layers"] = 1, ()
        rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
        for key in ("rope_theta", "partial_rotary_factor"):
            if key in rope:
                args[key] = rope[key]
        args["rope_type"] = rope.get("rope_type", rope.get("type", "default"))
        if args["rope_type"] not in ("default", "yarn"):
            raise ValueError(f"unsupported rope_type {args['rope_type']!r} (default and yarn are)")
        if args["rope_type"] == "yarn":
            args["original_max_position_embeddings"] = rope.get(
                "original_max_position_embeddings",
                hf.get("original_max_position_embeddings", args.get("max_position_embeddings", 32768)),
            )
            args["rope_factor"] = rope.get("factor")
            args["rope_attention_factor"] = rope.get("attention_factor")
            args["rope_beta_fast"] = rope.get("beta_fast") or 32.0
            args["rope_beta_slow"] = rope.get("beta_slow") or 1.0
            args["rope_mscale"] = rope.get("mscale")
            args["rope_mscale_all_dim"] = rope.get("mscale_all_dim")
            args["rope_truncate"] = rope.get("truncate", True)
        layers = args.get("num_hidden_layers", cls.num_hidden_layers)
        interval = hf.get("full_attention_interval", 4)
        args["layer_types"] = tuple(
            hf.get("layer_types")
            or ["linear_attention" if (i + 1) % interval else "full_attention" for i in range(layers)]
        )
        args["mlp_only_layers"] = tuple(args.get("mlp_only_layers", ()))
        eos: list[int] = []
        for source in (hf, generation_config or {}):
            ids = source.get("eos_token_id")
            for token in [ids] if isinstance(ids, int) else ids or []:
                if token not in eos:
                    eos.append(token)
        args["eos_token_ids"] = tuple(eos)
        args["weight_block_size"] = _weight_block_size(hf.get("quantization_config"))
        return cls(**args)

    @classmethod
    def from_dir(cls, path: str | Path) -> "ModelArgs":
        path = Path(path)
        generation = path / "generation_config.json"
        return cls.from_hf(
            json.loads((path / "config.json").read_text()),
            json.loads(generation.read_text()) if generation.exists() else None,
        )

    def is_sparse(self, layer: int) -> bool:
        return (
            layer not in self.mlp_only_layers
            and self.num_experts > 0
            and (layer + 1) % self.decoder_sparse_step == 0
        )


def _weight_block_size(quantization: dict[str, Any] | None) -> tuple[int, int] | None:
    if not quantization:
        return None
    method, block = quantization.get("quant_method"), quantization.get("weight_block_size")
    if method != "fp8" or not block or len(block) != 2:
        raise ValueError(
            f"unsupported quantization_config (quant_method={method!r}, weight_block_size={block!r}): "
            "only block-wise FP8 checkpoints (quant_method 'fp8' with a weight_block_size) are read"
        )
    return int(block[0]), int(block[1])


def rope_inverse_frequencies(args: ModelArgs) -> tuple[Tensor, float]:
    """Inverse frequencies [R/2] and the cos/sin scale, as transformers' default and YaRN rope init."""
    base, dim = args.rope_theta, int(args.head_dim * args.partial_rotary_factor)
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)
    if args.rope_type == "default":
        return 1.0 / pos_freqs, 1.0
    original = args.original_max_position_embeddings
    factor = args.rope_factor or args.max_position_embeddings / original

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention_factor = args.rope_attention_factor
    if attention_factor is None:
        if args.rope_mscale and args.rope_mscale_all_dim:
            attention_factor = mscale(factor, args.rope_mscale) / mscale(factor, args.rope_mscale_all_dim)
        else:
            attention_factor = mscale(factor)

    def correction_dim(rotations: float) -> float:
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(args.rope_beta_fast), correction_dim(args.rope_beta_slow)
    if args.rope_truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    extrapolation = 1 - ramp  # 1: keep the pretrained frequency, 0: interpolate by `factor`
    inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation
    return inv_freq, float(attention_factor)


class RotaryEmbedding:
    """cos/sin tables [T, R] for absolute positions; R = head_dim * partial_rotary_factor."""

    def __init__(self, args: ModelArgs, device: torch.device) -> None:
        inv_freq, self.scale = rope_inverse_frequencies(args)
        self.inv_freq = inv_freq.to(device)

    def __call__(self, start: int, length: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        positions = torch.arange(start, start + length, device=self.inv_freq.device, dtype=torch.float)
        freqs = positions[:, None] * self.inv_freq  # [T, R/2]
        angles = torch.cat((freqs, freqs), dim=-1)  # [T, R]
        return (angles.cos() * self.scale).to(dtype), (angles.sin() * self.scale).to(dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotates the first R dims of x [B, T, H, Dh] (rotate-half convention), passes the rest through."""
    rotary = cos.shape[-1]
    cos, sin = cos[:, None], sin[:, None]  # [T, 1, R]
    x_rot, x_pass = x[..., :rotary], x[..., rotary:]
    half = rotary // 2
    rotated = torch.cat((-x_rot[..., half:], x_rot[..., :half]), dim=-1)
    return torch.cat((x_rot * cos + rotated * sin, x_pass), dim=-1)


class RMSNorm(nn.Module):
    """Zero-centred RMSNorm: x̂ · (1 + w), computed in float32."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * (1.0 + self.weight.float())).type_as(x)


class GatedRMSNorm(nn.Module):
    """RMSNorm (plain weight, not zero-centred) of the DeltaNet output, then times SiLU(gate)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor, gate: Tensor) -> Tensor:
        x32 = x.float()
        normed = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)
        return (self.weight * normed * F.silu(gate.float())).to(x.dtype)


# Decoding (and verifying a few drafted tokens) attends with at most this many query rows per KV head: then
# one softmax over the scores of every cached token is cheaper than a flash call and a merge per block.
FEW_QUERY_ROWS = 16


def streaming_attention(
    q: Tensor, k: Tensor, v: Tensor, past: Iterable[tuple[Tensor, Tensor]], scale: float
) -> Tensor:
    """Causal GQA attention of new tokens over cached blocks plus themselves, merged by online softmax.

    q [B, H, T, Dh]; k, v [B, KVH, T, Dh] of the same T tokens; `past` yields earlier keys/values
    [B, KVH, S, Dh]. Each block goes through a flash kernel (`kernels.flash_attention`), so working memory
    is O(T) beside the block, never O(T × S) scores nor O(T × total length). Returns [B, H, T, Dh].
    """
    B, H, T, Dh = q.shape
    group = H // k.shape[1]
    if group * T <= FEW_QUERY_ROWS:
        return attend_few_queries(q, k, v, past, scale)
    out, lse = attention_with_lse(
        q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), scale, causal=True
    )
    out = out.float()
    grouped_q = q.reshape(B, k.shape[1], group * T, Dh)  # all query heads of one KV head in one pass
    for past_k, past_v in past:
        block_out, block_lse = attention_with_lse(grouped_q, past_k, past_v, scale, causal=False)
        block_out, block_lse = block_out.reshape(B, H, T, Dh).float(), block_lse.reshape(B, H, T)
        merged = torch.logaddexp(lse, block_lse)
        out = out * (lse - merged).exp()[..., None] + block_out * (block_lse - merged).exp()[..., None]
        lse = merged
    return out.to(q.dtype)


def attend_few_queries(
    q: Tensor, k: Tensor, v: Tensor, past: Iterable[tuple[Tensor, Tensor]], scale: float
) -> Tensor:
    """`streaming_attention` for a few new tokens: one exact softmax over all cached and new keys.

    Per block only two small matmuls run (scores, then probabilities × values), so the cost per cached token
    is the arithmetic itself. Scores take O(H × T × total length) memory: small while T is.
    """
    B, H, T, Dh = q.shape
    kv_heads = k.shape[1]
    grouped_q = q.reshape(B, kv_heads, H // kv_heads * T, Dh).float()  # [B, KVH, G*T, Dh]
    blocks = [*past, (k, v)]
    scores = torch.cat([grouped_q @ keys.float().transpose(-1, -2) for keys, _ in blocks], dim=-1) * scale
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1).repeat(H // kv_heads, 1)
    scores[..., -T:].masked_fill_(causal, float("-inf"))  # [B, KVH, G*T, total]
    probabilities = scores.softmax(-1).split([keys.shape[2] for keys, _ in blocks], dim=-1)
    out = sum(p @ values.float() for p, (_, values) in zip(probabilities, blocks, strict=True))
    return out.reshape(B, H, T, Dh).to(q.dtype)


class GatedAttention(nn.Module):
    """Full attention with an output gate from q_proj, per-head q/k RMSNorm, partial RoPE and GQA."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = (
            args.num_attention_heads,
            args.num_key_value_heads,
            args.head_dim,
        )
        bias = args.attention_bias
        self.q_proj = nn.Linear(args.hidden_size, self.heads * self.head_dim * 2, bias=bias)
        self.k_proj = nn.Linear(args.hidden_size, self.kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(args.hidden_size, self.kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.heads * self.head_dim, args.hidden_size, bias=bias)
        self.q_norm = RMSNorm(self.head_dim, args.rms_norm_eps)
        self.k_norm = RMSNorm(self.head_dim, args.rms_norm_eps)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], cache: KVCache) -> Tensor:
        B, T, _ = x.shape
        q, gate = self.q_proj(x).view(B, T, self.heads, 2 * self.head_dim).chunk(2, dim=-1)  # [B, T, H, Dh]
        k = self.k_proj(x).view(B, T, self.kv_heads, self.head_dim)  # [B, T, KVH, Dh]
        v = self.v_proj(x).view(B, T, self.kv_heads, self.head_dim)
        q, k = apply_rope(self.q_norm(q), *rope), apply_rope(self.k_norm(k), *rope)
        # Round new keys/values through the cache dtype so they read the same now and from the cache later.
        k, v = (t.transpose(1, 2).to(cache.dtype).to(x.dtype) for t in (k, v))  # [B, KVH, T, Dh]
        out = streaming_attention(
            q.transpose(1, 2), k, v, cache.blocks(x.device, x.dtype), self.head_dim**-0.5
        )
        cache.append(k, v)
        out = out.transpose(1, 2).reshape(B, T, -1) * torch.sigmoid(gate.reshape(B, T, -1))  # [B, T, H*Dh]
        return self.o_proj(out)


class GatedDeltaNet(nn.Module):
    """Gated DeltaNet linear attention.

    Checkpoints interleave in_proj_qkvz / in_proj_ba per key head; `model.loading` regroups their rows at load
    time into [q | k | v | z] and [b | a], so the forward needs only splits.
    """

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.key_heads, self.value_heads = args.linear_num_key_heads, args.linear_num_value_heads
        self.key_dim, self.value_dim = args.linear_key_head_dim, args.linear_value_head_dim
        self.conv_channels = 2 * self.key_heads * self.key_dim + self.value_heads * self.value_dim
        self.in_proj_qkvz = nn.Linear(
            args.hidden_size, self.conv_channels + self.value_heads * self.value_dim, bias=False
        )
        self.in_proj_ba = nn.Linear(args.hidden_size, 2 * self.value_heads, bias=False)
        self.conv_weight = nn.Parameter(
            torch.empty(self.conv_channels, args.linear_conv_kernel_dim)
        )  # [C, W]
        self.dt_bias = nn.Parameter(torch.ones(self.value_heads))
        self.A_log = nn.Parameter(torch.zeros(self.value_heads))
        self.norm = GatedRMSNorm(self.value_dim, args.rms_norm_eps)
        self.out_proj = nn.Linear(self.value_heads * self.value_dim, args.hidden_size, bias=False)

    def forward(self, x: Tensor, state: LinearAttentionState) -> Tensor:
        B, T, _ = x.shape
        if state.steps is not None:  # verifying drafts: token by token, keeping the state after each
            steps, state.steps = state.steps, None
            out = []
            for t in range(T):
                out.append(self(x[:, t : t + 1], state))
                steps.append((state.conv, state.recurrent))
            state.steps = steps
            return torch.cat(out, dim=1)
        qkv, z = self.in_proj_qkvz(x).split([self.conv_channels, self.value_heads * self.value_dim], dim=-1)
        b, a = self.in_proj_ba(x).chunk(2, dim=-1)  # [B, T, HV]
        if T == 1:
            qkv, state.conv = causal_conv1d_update(qkv[:, 0], state.conv, self.conv_weight)
            qkv = qkv[:, None]  # [B, 1, C]
        else:
            qkv, state.conv = causal_conv1d(
                qkv, self.conv_weight, initial_state=state.conv, output_final_state=True
            )
        key_width = self.key_heads * self.key_dim
        q, k, v = qkv.split([key_width, key_width, self.value_heads * self.value_dim], dim=-1)
        q = q.reshape(B, T, self.key_heads, self.key_dim)  # [B, T, H, K]
        k = k.reshape(B, T, self.key_heads, self.key_dim)
        v = v.reshape(B, T, self.value_heads, self.value_dim)  # [B, T, HV, V]
        beta = b.sigmoid()
        g = -self.A_log.float().exp() * F.softplus(a.float() + self.dt_bias)  # [B, T, HV] log decay
        rule = fused_recurrent_gated_delta_rule if T == 1 else chunk_gated_delta_rule
        out, state.recurrent = rule(
            q,
            k,
            v,
            g,
            beta,
            initial_state=state.recurrent,
            output_final_state=True,
            use_qk_l2norm_in_kernel=True,
        )  # [B, T, HV, V]
        out = self.norm(out, z.view(B, T, self.value_heads, self.value_dim))
        return self.out_proj(out.reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class SparseMoE(nn.Module):
    """Softmax router over E experts, top-k (renormalised if norm_topk_prob), plus a sigmoid-gated shared
    expert."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.top_k, self.renormalize = args.num_experts_per_tok, args.norm_topk_prob
        E, D, I = args.num_experts, args.hidden_size, args.moe_intermediate_size  # noqa: E741
        self.gate = nn.Linear(D, E, bias=False)
        self.gate_up_proj = nn.Parameter(torch.empty(E, 2 * I, D))  # per expert: [gate; up]
        self.down_proj = nn.Parameter(torch.empty(E, D, I))
        self.shared_expert = MLP(D, args.shared_expert_intermediate_size)
        self.shared_expert_gate = nn.Linear(D, 1, bias=False)

    def expert_weights(self, expert: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """One expert's gate_up [2I, D] and down [D, I] matrices in `dtype` (`model.fp8` dequantizes here)."""
        return self.gate_up_proj[expert], self.down_proj[expert]

    def forward(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        x = x.reshape(-1, D)  # [N, D]
        logits = self.gate(x)  # [N, E]
        weights, experts = torch.topk(
            F.softmax(logits, dim=-1, dtype=torch.float), self.top_k, dim=-1
        )  # [N, k]
        if self.renormalize:
            weights = weights / weights.sum(-1, keepdim=True)
        weights = weights.to(x.dtype)
        shared = torch.sigmoid(self.shared_expert_gate(x)) * self.shared_expert(x)  # [N, D]
        if x.shape[0] == 1:  # decoding: the token's k experts, without grouping rows
            chosen = zip(experts[0].tolist(), weights[0], strict=True)
            routed = [self.expert(expert, x) * weight for expert, weight in chosen]
            return (sum(routed) + shared).view(B, T, D)
        # Sort the (token, slot) pairs by expert so each expert multiplies one contiguous group of rows.
        order = experts.flatten().argsort(stable=True)  # [N*k]
        token_of_row = order // self.top_k
        rows_per_expert = torch.bincount(experts.flatten(), minlength=self.gate_up_proj.shape[0]).tolist()
        rows = x.index_select(0, token_of_row).split(rows_per_expert)  # per expert: [n, D]
        outputs = [self.expert(expert, group) for expert, group in enumerate(rows) if group.shape[0]]
        routed_out = torch.cat(outputs) * weights.flatten()[order, None]  # [N*k, D]
        return (torch.zeros_like(x).index_add_(0, token_of_row, routed_out) + shared).view(B, T, D)

    def expert(self, expert: int, rows: Tensor) -> Tensor:
        """One expert's SwiGLU MLP over its rows [n, D] -> [n, D]."""
        gate_up_proj, down_proj = self.expert_weights(expert, rows.dtype)
        gate, up = F.linear(rows, gate_up_proj).chunk(2, dim=-1)  # [n, I]
        return F.linear(F.silu(gate) * up, down_proj)


class DecoderLayer(nn.Module):
    def __init__(self, args: ModelArgs, index: int) -> None:
        super().__init__()
        self.is_linear = args.layer_types[index] == "linear_attention"
        if self.is_linear:
            self.linear_attn = GatedDeltaNet(args)
        else:
            self.self_attn = GatedAttention(args)
        self.mlp: nn.Module = (
            SparseMoE(args) if args.is_sparse(index) else MLP(args.hidden_size, args.intermediate_size)
        )
        self.input_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps)

    def forward(
        self, x: Tensor, rope: tuple[Tensor, Tensor], state: LinearAttentionState | KVCache
    ) -> Tensor:
        h = self.input_layernorm(x)
        x = x + (self.linear_attn(h, state) if self.is_linear else self.self_attn(h, rope, state))
        return x + self.mlp(self.post_attention_layernorm(x))


class HybridLM(nn.Module):
    """The model plus its streaming API: new_state / prefill / generate / load_state.

    Parameter names are the checkpoint's without the leading "model." (see `model.loading`).
    """

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.config = args
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(args, i) for i in range(args.num_hidden_layers))
        self.norm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.lm_head = nn.Linear(args.hidden_size, args.vocab_size, bias=False)
        self.mtp: MultiTokenPredictor | None = None  # the checkpoint's draft head, when it has one
        # Set by `place` (from `from_pretrained`): each layer's device, and the rotary tables on each device.
        self.layer_devices: list[torch.device] = []
        self.ropes: dict[torch.device, RotaryEmbedding] = {}

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device | Sequence[str | torch.device] = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> "HybridLM":
        """Loads a checkpoint onto `device`, or onto several devices given as a sequence (consecutive layers
        on each, the embedding on the first, the final norm and lm_head on the last; activations move between
        them)."""
        from model.loading import load_pretrained

        devices = [device] if isinstance(device, str | torch.device) else list(device)
        # As the weights will report them ("cuda" → cuda:0), since devices key the per-device rotary tables.
        resolved = [torch.empty(0, device=d).device for d in devices]
        if any(d.type == "cpu" for d in resolved):
            # The delta rule's decay products underflow into denormal floats, which x86 cores compute about
            # 100x slower (prefill 4x slower overall): flush them to zero. Process-wide; below 1e-38 only.
            torch.set_flush_denormal(True)
        return load_pretrained(cls, ModelArgs.from_dir(path), Path(path), resolved, dtype)

    def place(self, layer_devices: list[torch.device]) -> None:
        """Records each layer's device (where its weights were put) and builds the rotary tables there."""
        self.layer_devices = list(layer_devices)
        self.ropes = {device: RotaryEmbedding(self.config, device) for device in dict.fromkeys(layer_devices)}

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.weight.dtype

    def new_state(
        self,
        kv_dtype: torch.dtype | None = None,
        kv_device: str | torch.device | None = None,
        block_size: int = 4096,
        batch_size: int = 1,
    ) -> HybridState:
        """An empty state. kv_dtype (e.g. torch.bfloat16) defaults to the model dtype; kv_device="cpu" on a
        CUDA model keeps KV blocks in pinned host memory, copied to the GPU block by block during
        attention."""
        return HybridState.empty(
            self.config,
            batch_size=batch_size,
            dtype=self.dtype,
            devices=self.layer_devices,
            kv_dtype=kv_dtype or self.dtype,
            kv_device=torch.device(kv_device) if kv_device is not None else None,
            block_size=block_size,
        )

    def load_state(self, path: str | Path, kv_device: str | torch.device | None = None) -> HybridState:
        """A state saved by `HybridState.save`, placed on this model's device (KV blocks on kv_device, as in
        `new_state`)."""
        kv = torch.device(kv_device) if kv_device is not None else None
        return HybridState.load(path, self.config, devices=self.layer_devices, dtype=self.dtype, kv_device=kv)

    @torch.inference_mode()
    def forward(self, input_ids: Tensor, state: HybridState, last_only: bool = False) -> Tensor:
        """Consumes input_ids [B, T] into `state`; returns float32 logits [B, T, vocab] ([B, 1, vocab] if
        last_only). Memory is O(T): call it chunk by chunk (`prefill` does)."""
        hidden = self.hidden_states(input_ids, state)  # [B, T, D]
        return self.lm_head(hidden[:, -1:] if last_only else hidden).float()

    @torch.inference_mode()
    def hidden_states(self, input_ids: Tensor, state: HybridState) -> Tensor:
        """Consumes input_ids [B, T] into `state`; returns the final-normed hidden states [B, T, D] (on the
        last device), which lm_head and the MTP draft head read."""
        assert self.ropes, "build the model with HybridLM.from_pretrained"
        x = self.embed_tokens(input_ids)  # [B, T, D]
        ropes = {
            device: rope(state.position, input_ids.shape[1], x.dtype) for device, rope in self.ropes.items()
        }  # [T, R] each
        for layer, device, layer_state in zip(self.layers, self.layer_devices, state.layers, strict=True):
            x = layer(x.to(device), ropes[device], layer_state)
        state.position += input_ids.shape[1]
        return self.norm(x)

    def prefill(
        self,
        input_ids: Tensor | Sequence[int],
        state: HybridState,
        chunk_size: int = 4096,
        on_chunk: Callable[[int], None] | None = None,
    ) -> Tensor:
        """Reads tokens of any length into `state` in chunks; returns the last position's float32 logits
        [vocab].

        `on_chunk(tokens_done)` runs after each chunk with the tokens consumed so far in this call; raising
        from it stops the prefill, leaving `state` consistent at that chunk boundary (`state.position`).
        """
        ids = torch.as_tensor(input_ids, dtype=torch.long).reshape(-1)
        if ids.numel() == 0:
            raise ValueError("prefill needs at least one token")
        logits = None
        for start in range(0, ids.numel(), chunk_size):
            chunk = ids[start : start + chunk_size].to(self.device)
            logits = self(chunk[None], state, last_only=True)[0, -1]
            release_free_host_memory()
            if on_chunk is not None:
                on_chunk(start + chunk.numel())
        return logits

    def generate(
        self,
        state: HybridState,
        prompt_ids: Tensor | Sequence[int],
        max_new_tokens: int,
        sampling: Sampling = INSTRUCT,
        stop_token_ids: Iterable[int] | None = None,
        on_token: Callable[[int], None] | None = None,
        chunk_size: int = 4096,
        draft_tokens: int = 0,
        token_mask: Callable[[list[int], Tensor], Tensor] | None = None,
    ) -> list[int]:
        """Continues `state` with the prompt, then samples up to max_new_tokens, stopping after a stop token
        (default: the checkpoint's EOS ids). Every sampled token, the stop token included, is fed into
        `state`, so it ends as prompt + output. Returns the new token ids; the last is a stop token unless the
        length limit ended it. `on_token(id)` streams tokens; raising from it stops generation.

        draft_tokens > 0: speculative decoding with the checkpoint's MTP head (`model.speculative`); the
        output is the same, fewer forwards of the main model produce it. Not with a token mask, whose grammar
        advances one token at a time.

        `token_mask(tokens so far, logits [vocab])` returns the logits with forbidden tokens at -inf
        (constrained decoding: a grammar)."""
        stops = set(self.config.eos_token_ids if stop_token_ids is None else stop_token_ids)
        if draft_tokens and token_mask is None:
            from model.speculative import MTPDrafter, generate_with_drafts

            drafter = MTPDrafter(self)
            return generate_with_drafts(
                self,
                state,
                prompt_ids,
                max_new_tokens,
                sampling,
                stops,
                on_token,
                chunk_size,
                draft_tokens,
                drafter,
            )
        generator = sampling.generator(self.device)
        logits = self.prefill(prompt_ids, state, chunk_size=chunk_size)
        tokens: list[int] = []
        while len(tokens) < max_new_tokens:
            if token_mask is not None:
                logits = token_mask(tokens, logits.float())
            token = sample_next_token(logits, sampling, generator)
            tokens.append(token)
            if on_token is not None:
                on_token(token)
            logits = self(torch.tensor([[token]], device=self.device), state, last_only=True)[0, -1]
            if token in stops:
                break
        return tokens

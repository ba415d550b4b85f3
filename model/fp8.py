"""Block-FP8 weights in the format Qwen publishes (`Qwen3-Next-80B-A3B-Instruct-FP8`, DeepSeek-V3 style).

A converted matrix W [N, K] is stored as `weight` float8_e4m3fn [N, K] plus `weight_scale_inv` float32
[⌈N/bn⌉, ⌈K/bk⌉] with (bn, bk) = `quantization_config.weight_block_size` (128 × 128): W ≈ weight × scale of
its block. Modules listed in `modules_to_not_convert` (embeddings, lm_head, norms, the routers, the DeltaNet's
in_proj_ba, conv1d, A_log and dt_bias) stay in bf16.

The model keeps the FP8 bytes and dequantizes one matrix (one expert's) at a time right before its matmul,
so memory holds the checkpoint's ~1 byte per weight plus one matrix in the compute dtype.

Where rows of a checkpoint matrix are regrouped at load time (the DeltaNet's interleaved in_proj_qkvz,
the experts' gate and up stacked into gate_up_proj) and the groups do not align with bn, the scales are
expanded to one row each (`scale.shape[-2] == N`), which the dequantization recognises; for the published
80B layout every group is a multiple of 128 and block scales are kept as they are.
"""

import json
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from model.qwen3_next import HybridLM, ModelArgs, SparseMoE

FP8 = torch.float8_e4m3fn
SCALE_SUFFIX = "_scale_inv"
# Checkpoint modules Qwen leaves in bf16 (per layer, plus the top-level ones).
_NOT_CONVERTED = re.compile(
    r"(^lm_head$|embed_tokens$|norm$|layernorm$|\.mlp\.gate$|shared_expert_gate$|"
    r"linear_attn\.(in_proj_ba|conv1d|A_log|dt_bias)$)"
)


def expand_rows(scale: Tensor, rows: int, block_rows: int) -> Tensor:
    """Block scales [..., ⌈N/bn⌉, Kb] -> one scale per row [..., N, Kb] (a no-op if already per row)."""
    if scale.shape[-2] == rows:
        return scale
    return scale.repeat_interleave(block_rows, dim=-2)[..., :rows, :]


def dequantize(weight: Tensor, scale: Tensor, block: tuple[int, int], dtype: torch.dtype) -> Tensor:
    """weight [..., N, K] (fp8) × its block scales [..., ⌈N/bn⌉ or N, ⌈K/bk⌉] -> [..., N, K] in `dtype`.

    The product is taken in float32 and rounded once, so it equals a checkpoint dequantized ahead of time;
    the only temporary beside the result is that float32 copy (scales are broadcast, never expanded)."""
    N, K = weight.shape[-2:]
    per_row = expand_rows(scale.float(), N, block[0])  # [..., N, Kb]
    out = weight.float()  # [..., N, K]
    whole = K // block[1]  # column blocks of full width; a last partial one takes the last scale
    out[..., : whole * block[1]].unflatten(-1, (whole, block[1])).mul_(per_row[..., :whole, None])
    out[..., whole * block[1] :].mul_(per_row[..., whole:])
    return out.to(dtype)


class FP8Linear(nn.Module):
    """nn.Linear over a block-FP8 weight, dequantized for each call. `scale_rows`: ⌈out/bn⌉, or `out` where
    the rows were regrouped across blocks."""

    def __init__(
        self, in_features: int, out_features: int, block: tuple[int, int], bias: bool, scale_rows: int
    ) -> None:
        super().__init__()
        self.block = block
        self.register_buffer("weight", torch.empty(out_features, in_features, dtype=FP8))
        self.register_buffer("weight_scale_inv", torch.empty(scale_rows, math.ceil(in_features / block[1])))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, dequantize(self.weight, self.weight_scale_inv, self.block, x.dtype), self.bias)


def quantize(weight: Tensor, block: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """W [N, K] -> (fp8 [N, K], weight_scale_inv float32 [⌈N/bn⌉, ⌈K/bk⌉]); each block's amax maps to 448."""
    N, K = weight.shape
    bn, bk = block
    padded = F.pad(weight.float(), (0, -K % bk, 0, -N % bn))
    blocks = padded.unflatten(0, (-1, bn)).unflatten(-1, (-1, bk))  # [Nb, bn, Kb, bk]
    scale = blocks.abs().amax(dim=(1, 3)).clamp(min=1e-12) / torch.finfo(FP8).max  # [Nb, Kb]
    quantized = (blocks / scale[:, None, :, None]).to(FP8).flatten(2).flatten(0, 1)[:N, :K]
    return quantized.contiguous(), scale


def quantize_checkpoint(source: Path, target: Path, block: tuple[int, int] = (128, 128)) -> Path:
    """Writes `source` (an unquantized checkpoint) as a block-FP8 checkpoint in Qwen's published layout.

    Every 2-D `*.weight` of a linear module is converted unless Qwen keeps that module in bf16; tokenizer and
    generation files are copied. Used by tests and the GPU benchmark to make FP8 checkpoints offline.
    """
    from model.loading import checkpoint_files

    target.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    kept: dict[str, None] = {}  # ordered set of the modules left in bf16
    for file in checkpoint_files(source):
        with safe_open(str(file), framework="pt", device="cpu") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                tensor = f.get_tensor(name)
                module = name.removesuffix(".weight")
                if name.endswith(".weight") and tensor.ndim == 2 and not _NOT_CONVERTED.search(module):
                    tensors[name], tensors[name + SCALE_SUFFIX] = quantize(tensor, block)
                else:
                    tensors[name] = tensor.to(torch.bfloat16) if tensor.is_floating_point() else tensor
                    kept[module] = None
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((source / "config.json").read_text())
    config["quantization_config"] = {
        "activation_scheme": "dynamic",
        "modules_to_not_convert": list(kept),
        "quant_method": "fp8",
        "weight_block_size": list(block),
    }
    (target / "config.json").write_text(json.dumps(config, indent=2))
    _copy_side_files(source, target)
    return target


def compact_rows(scale: Tensor, block_rows: int) -> Tensor:
    """Per-row scales [..., N, Kb] back to block scales [..., ⌈N/bn⌉, Kb] when they are constant per block."""
    blocks = scale[..., ::block_rows, :]
    return blocks if torch.equal(expand_rows(blocks, scale.shape[-2], block_rows), scale) else scale


class FP8SparseMoE(SparseMoE):
    """SparseMoE whose stacked expert matrices are block-FP8; one expert is dequantized at a time."""

    def __init__(self, args: ModelArgs, block: tuple[int, int], gate_up_scale_rows: int) -> None:
        super().__init__(args)
        self.block = block
        E, D, I = args.num_experts, args.hidden_size, args.moe_intermediate_size  # noqa: E741
        bn, bk = block
        del self.gate_up_proj, self.down_proj
        self.register_buffer("gate_up_proj", torch.empty(E, 2 * I, D, dtype=FP8))
        self.register_buffer("gate_up_proj_scale_inv", torch.empty(E, gate_up_scale_rows, math.ceil(D / bk)))
        self.register_buffer("down_proj", torch.empty(E, D, I, dtype=FP8))
        self.register_buffer("down_proj_scale_inv", torch.empty(E, math.ceil(D / bn), math.ceil(I / bk)))

    def expert_weights(self, expert: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        return (
            dequantize(self.gate_up_proj[expert], self.gate_up_proj_scale_inv[expert], self.block, dtype),
            dequantize(self.down_proj[expert], self.down_proj_scale_inv[expert], self.block, dtype),
        )


def use_fp8_modules(lm: HybridLM, weights: dict[str, Tensor], block: tuple[int, int]) -> None:
    """Swaps each module whose weights arrive in FP8 (a `*_scale_inv` beside them) for its FP8 form, so that
    `load_state_dict(weights, assign=True)` keeps the FP8 bytes. Call it where `lm` was built (on "meta")."""
    for name, module in list(lm.named_modules()):
        quantized: nn.Module | None = None
        if (
            isinstance(module, nn.Linear)
            and (scale := weights.get(f"{name}.weight{SCALE_SUFFIX}")) is not None
        ):
            quantized = FP8Linear(
                module.in_features, module.out_features, block, module.bias is not None, scale.shape[0]
            )
        elif (
            isinstance(module, SparseMoE)
            and (scale := weights.get(f"{name}.gate_up_proj{SCALE_SUFFIX}")) is not None
        ):
            quantized = FP8SparseMoE(lm.config, block, scale.shape[1])
        if quantized is not None:
            parent, _, child = name.rpartition(".")
            setattr(lm.get_submodule(parent), child, quantized)


def dequantize_checkpoint(source: Path, target: Path, dtype: torch.dtype = torch.float32) -> Path:
    """The inverse of `quantize_checkpoint`: every FP8 weight times its scales in `dtype`, no
    quantization_config. Running it gives the oracle an FP8 model is compared with."""
    from model.loading import checkpoint_files

    target.mkdir(parents=True, exist_ok=True)
    config = json.loads((source / "config.json").read_text())
    block = tuple(config.pop("quantization_config")["weight_block_size"])
    tensors: dict[str, Tensor] = {}
    for file in checkpoint_files(source):
        with safe_open(str(file), framework="pt", device="cpu") as f:
            names = set(f.keys())
            for name in names - {n for n in names if n.endswith(SCALE_SUFFIX)}:
                tensor = f.get_tensor(name)
                scale_name = name + SCALE_SUFFIX
                tensors[name] = (
                    dequantize(tensor, f.get_tensor(scale_name), block, dtype)
                    if scale_name in names
                    else tensor.to(dtype)
                )
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    (target / "config.json").write_text(json.dumps(config, indent=2))
    _copy_side_files(source, target)
    return target


def _copy_side_files(source: Path, target: Path) -> None:
    """Tokenizer and generation files: everything but the weights and config.json."""
    for path in source.iterdir():
        if path.is_file() and not path.name.startswith(("model", "config.json")):
            (target / path.name).write_bytes(path.read_bytes())

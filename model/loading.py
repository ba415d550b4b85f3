"""Loads a Hugging Face `qwen3_next` or Qwen3.5 (`qwen3_5`, `qwen3_5_moe`) checkpoint (one `model.safetensors`
or shards listed in `model.safetensors.index.json`) into `HybridLM`, converting the few tensors whose layout
differs:

- `linear_attn.in_proj_qkvz` / `in_proj_ba`: rows interleaved per key head -> [q | k | v | z], [b | a];
- Qwen3.5's separate `linear_attn.in_proj_qkv`, `in_proj_z`, `in_proj_b`, `in_proj_a` (already in that order)
  -> the same two stacked projections;
- Qwen3.5 vision-language checkpoints keep the text model under `model.language_model.`; the vision tower
  (`model.visual.`) is skipped;
- `linear_attn.conv1d.weight` [C, 1, W] -> `linear_attn.conv_weight` [C, W];
- per-expert `mlp.experts.{e}.{gate,up,down}_proj.weight` -> stacked `mlp.gate_up_proj` [E, 2I, D],
  `mlp.down_proj` [E, D, I] (transformers' fused `mlp.experts.gate_up_proj` layout is accepted as is).

`mtp.*` tensors (the multi-token-prediction head) are converted the same way into `HybridLM.mtp`
(`model.speculative.MultiTokenPredictor`).
"""

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from torch import Tensor

if TYPE_CHECKING:
    from model.qwen3_next import HybridLM, ModelArgs

_EXPERT = re.compile(r"^(layers\.\d+\.mlp)\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")
_FUSED_EXPERTS = re.compile(r"^(layers\.\d+\.mlp)\.experts\.(gate_up_proj|down_proj)$")
# Qwen3.5's separate linear-attention input projections, by the stacked one they form, in stacking order.
_SPLIT_PROJECTIONS = {"in_proj_qkvz": ("in_proj_qkv", "in_proj_z"), "in_proj_ba": ("in_proj_b", "in_proj_a")}
_SPLIT_PROJECTION = re.compile(
    r"^(layers\.\d+\.linear_attn)\.(in_proj_qkv|in_proj_z|in_proj_b|in_proj_a)\.weight$"
)


def checkpoint_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / shard for shard in shards]
    single = path / "model.safetensors"
    if not single.exists():
        raise FileNotFoundError(f"{path}: neither model.safetensors nor model.safetensors.index.json")
    return [single]


def read_tensors(path: Path, dtype: torch.dtype, device: torch.device) -> Iterator[tuple[str, Tensor]]:
    """(name, tensor) for every tensor of the checkpoint, floating point ones cast to `dtype`."""
    for file in checkpoint_files(path):
        with safe_open(str(file), framework="pt", device="cpu") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                tensor = f.get_tensor(name)
                yield name, tensor.to(device, dtype if tensor.is_floating_point() else tensor.dtype)


def regroup_qkvz(weight: Tensor, args: "ModelArgs") -> Tensor:
    """[H × (q_h, k_h, v_h, z_h), D] -> [q; k; v; z]; value head h*G+j stays value head h*G+j."""
    H, K, V = args.linear_num_key_heads, args.linear_key_head_dim, args.linear_value_head_dim
    group = args.linear_num_value_heads // H
    per_head = weight.view(H, 2 * K + 2 * group * V, -1)
    parts = per_head.split([K, K, group * V, group * V], dim=1)
    return torch.cat([part.reshape(-1, weight.shape[-1]) for part in parts])


def regroup_ba(weight: Tensor, args: "ModelArgs") -> Tensor:
    """[H × (b_h, a_h), D] -> [b; a]."""
    H = args.linear_num_key_heads
    group = args.linear_num_value_heads // H
    b, a = weight.view(H, 2 * group, -1).split([group, group], dim=1)
    return torch.cat([b.reshape(-1, weight.shape[-1]), a.reshape(-1, weight.shape[-1])])


def convert_weights(
    tensors: Iterator[tuple[str, Tensor]], args: "ModelArgs"
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Checkpoint tensors -> (HybridLM state dict, mtp weights)."""
    weights: dict[str, Tensor] = {}
    mtp: dict[str, Tensor] = {}
    experts: dict[str, dict[str, dict[int, Tensor]]] = {}
    split: dict[str, dict[str, Tensor]] = {}
    for name, tensor in tensors:
        if name.startswith("mtp."):
            mtp[name] = tensor
            continue
        if name.startswith("model.visual."):
            continue
        name = name.removeprefix("model.language_model.").removeprefix("model.")
        if match := _SPLIT_PROJECTION.match(name):
            split.setdefault(match.group(1), {})[match.group(2)] = tensor
        elif match := _EXPERT.match(name):
            prefix, expert, kind = match.groups()
            experts.setdefault(prefix, {}).setdefault(kind, {})[int(expert)] = tensor
        elif match := _FUSED_EXPERTS.match(name):
            weights[f"{match.group(1)}.{match.group(2)}"] = tensor
        elif name.endswith("linear_attn.in_proj_qkvz.weight"):
            weights[name] = regroup_qkvz(tensor, args)
        elif name.endswith("linear_attn.in_proj_ba.weight"):
            weights[name] = regroup_ba(tensor, args)
        elif name.endswith("linear_attn.conv1d.weight"):
            weights[name.replace("conv1d.weight", "conv_weight")] = tensor.squeeze(1)
        else:
            weights[name] = tensor
    for prefix, parts in split.items():
        for stacked, names in _SPLIT_PROJECTIONS.items():
            weights[f"{prefix}.{stacked}.weight"] = torch.cat([parts[part] for part in names])
    for prefix, kinds in experts.items():
        stacked = {
            kind: torch.stack([per[e] for e in range(args.num_experts)]) for kind, per in kinds.items()
        }
        weights[f"{prefix}.gate_up_proj"] = torch.cat([stacked["gate_proj"], stacked["up_proj"]], dim=1)
        weights[f"{prefix}.down_proj"] = stacked["down_proj"]
    if args.tie_word_embeddings:
        weights["lm_head.weight"] = weights["embed_tokens.weight"]
    return weights, mtp


def load_pretrained(
    cls: type["HybridLM"], args: "ModelArgs", path: Path, device: torch.device, dtype: torch.dtype
) -> "HybridLM":
    from model.qwen3_next import RotaryEmbedding
    from model.speculative import MultiTokenPredictor

    with torch.device("meta"):
        lm = cls(args)
    weights, mtp = convert_weights(read_tensors(path, dtype, device), args)
    lm.load_state_dict(weights, strict=True, assign=True)
    if mtp:
        with torch.device("meta"):
            lm.mtp = MultiTokenPredictor(args)
        head_args = replace(args, tie_word_embeddings=False)  # the head shares the main model's lm_head
        head, _ = convert_weights(((name.removeprefix("mtp."), t) for name, t in mtp.items()), head_args)
        lm.mtp.load_state_dict(head, strict=True, assign=True)
        lm.mtp.eval().requires_grad_(False)
    lm.rope = RotaryEmbedding(args, device)
    return lm.eval().requires_grad_(False)

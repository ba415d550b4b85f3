"""Loads a Hugging Face `qwen3_next` checkpoint (one `model.safetensors` or shards listed in
`model.safetensors.index.json`) into `HybridLM`, converting the few tensors whose layout differs:

- `linear_attn.in_proj_qkvz` / `in_proj_ba`: rows interleaved per key head -> [q | k | v | z], [b | a];
- `linear_attn.conv1d.weight` [C, 1, W] -> `linear_attn.conv_weight` [C, W];
- per-expert `mlp.experts.{e}.{gate,up,down}_proj.weight` -> stacked `mlp.gate_up_proj` [E, 2I, D],
  `mlp.down_proj` [E, D, I] (transformers' fused `mlp.experts.gate_up_proj` layout is accepted as is).

- Qwen3.5's separate `linear_attn.in_proj_qkv`, `in_proj_z`, `in_proj_b`, `in_proj_a` (already in that order)
  -> the same two stacked projections;
- Qwen3.5 vision-language checkpoints keep the text model under `model.language_model.`; the vision tower
  (`model.visual.`) is not read.

`mtp.*` tensors (the multi-token-prediction head) are converted the same way into `HybridLM.mtp`
(`model.speculative.MultiTokenPredictor`), on the last device.

Block-FP8 checkpoints (`model.fp8`) keep their float8 weights and float32 `*_weight_scale_inv` as stored; the
modules holding them become their FP8 forms, so the model is never held in the compute dtype. With
several devices, consecutive layers go to each (`layer_devices`): every tensor is read straight onto its
layer's device.
"""

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch
from safetensors import safe_open
from torch import Tensor

from model.fp8 import FP8, SCALE_SUFFIX, compact_rows, expand_rows, use_fp8_modules

if TYPE_CHECKING:
    from model.qwen3_next import HybridLM, ModelArgs

_EXPERT = re.compile(
    r"^(layers\.\d+\.mlp)\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight(_scale_inv)?$"
)
_Device = TypeVar("_Device")
_LAYER = re.compile(r"^(?:model\.)?(?:language_model\.)?layers\.(\d+)\.")
_FUSED_EXPERTS = re.compile(r"^(layers\.\d+\.mlp)\.experts\.(gate_up_proj|down_proj)$")
# Qwen3.5's separate linear-attention input projections, by the stacked one they form, in stacking order.
_SPLIT_PROJECTIONS = {"in_proj_qkvz": ("in_proj_qkv", "in_proj_z"), "in_proj_ba": ("in_proj_b", "in_proj_a")}
_SPLIT_PROJECTION = re.compile(r"^(layers\.\d+\.linear_attn)\.(in_proj_(?:qkv|z|b|a))\.weight(_scale_inv)?$")


def checkpoint_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / shard for shard in shards]
    single = path / "model.safetensors"
    if not single.exists():
        raise FileNotFoundError(f"{path}: neither model.safetensors nor model.safetensors.index.json")
    return [single]


def layer_devices(num_layers: int, devices: Sequence[_Device]) -> list[_Device]:
    """Consecutive runs of layers, as even as possible, one run per device (earlier runs take the extra)."""
    if not devices:
        raise ValueError("at least one device is needed")
    if len(devices) > num_layers:
        raise ValueError(f"{len(devices)} devices for {num_layers} layers: at most one device per layer")
    per_device, extra = divmod(num_layers, len(devices))
    return [device for i, device in enumerate(devices) for _ in range(per_device + (1 if i < extra else 0))]


def tensor_device(name: str, devices: Sequence[torch.device]) -> torch.device:
    """Where a checkpoint tensor goes: its layer's device; the embedding on the first device, the rest
    (final norm, lm_head, mtp) on the last."""
    if match := _LAYER.match(name):
        return devices[int(match.group(1))]
    return devices[0] if "embed_tokens" in name else devices[-1]


def read_tensors(
    path: Path, dtype: torch.dtype, devices: Sequence[torch.device]
) -> Iterator[tuple[str, Tensor]]:
    """(name, tensor) for every tensor of the checkpoint on its layer's device (`devices` has one entry per
    layer), floating point ones cast to `dtype` except FP8 weights and their scales, kept as stored."""
    for file in checkpoint_files(path):
        with safe_open(str(file), framework="pt", device="cpu") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if name.startswith("model.visual."):
                    continue
                tensor = f.get_tensor(name)
                keep = not tensor.is_floating_point() or tensor.dtype == FP8 or name.endswith(SCALE_SUFFIX)
                yield name, tensor.to(tensor_device(name, devices), tensor.dtype if keep else dtype)


def regroup_rows(tensor: Tensor, name: str, args: "ModelArgs") -> Tensor:
    """Regroups the rows of in_proj_qkvz / in_proj_ba, or of their FP8 scales: those are expanded to one
    scale per row, regrouped like the weight, and compacted back to blocks where the blocks still line up."""
    qkvz = "in_proj_qkvz" in name
    regroup = regroup_qkvz if qkvz else regroup_ba
    if not name.endswith(SCALE_SUFFIX):
        return regroup(tensor, args)
    rows = (
        2 * args.linear_num_key_heads * args.linear_key_head_dim
        + 2 * args.linear_num_value_heads * args.linear_value_head_dim
        if qkvz
        else 2 * args.linear_num_value_heads
    )
    block_rows = args.weight_block_size[0]
    return compact_rows(regroup(expand_rows(tensor, rows, block_rows), args), block_rows)


def stack_gate_up(gate: Tensor, up: Tensor, scales: bool, args: "ModelArgs") -> Tensor:
    """[E, I, D] gate and up -> [E, 2I, D]; FP8 scales are joined one scale per row unless blocks line up."""
    if not scales:
        return torch.cat([gate, up], dim=1)
    rows, block_rows = args.moe_intermediate_size, args.weight_block_size[0]
    joined = torch.cat([expand_rows(gate, rows, block_rows), expand_rows(up, rows, block_rows)], dim=1)
    return compact_rows(joined, block_rows)


def split_projection_rows(part: str, args: "ModelArgs") -> int:
    """Rows of one of Qwen3.5's separate linear-attention input projections."""
    value_width = args.linear_num_value_heads * args.linear_value_head_dim
    return {
        "in_proj_qkv": 2 * args.linear_num_key_heads * args.linear_key_head_dim + value_width,
        "in_proj_z": value_width,
        "in_proj_b": args.linear_num_value_heads,
        "in_proj_a": args.linear_num_value_heads,
    }[part]


def stack_split_projections(parts: dict[str, Tensor], scales: bool, args: "ModelArgs") -> dict[str, Tensor]:
    """Qwen3.5's in_proj_qkv + in_proj_z -> in_proj_qkvz, in_proj_b + in_proj_a -> in_proj_ba (weights, or
    FP8 scales joined one scale per row unless the blocks line up)."""
    stacked = {}
    for name, names in _SPLIT_PROJECTIONS.items():
        if not scales:
            stacked[name] = torch.cat([parts[part] for part in names])
            continue
        block_rows = args.weight_block_size[0]
        rows = [expand_rows(parts[part], split_projection_rows(part, args), block_rows) for part in names]
        stacked[name] = compact_rows(torch.cat(rows), block_rows)
    return stacked


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


def _join_experts(
    weights: dict[str, Tensor],
    stacked: dict[tuple[str, str], Tensor],
    prefix: str,
    suffix: str,
    args: "ModelArgs",
) -> None:
    """Moves a layer's stacked down_proj, and gate with up once both are there, into `weights`."""
    if (down := stacked.pop((prefix, f"down_proj{suffix}"), None)) is not None:
        weights[f"{prefix}.down_proj{suffix}"] = down
    gate_key, up_key = (prefix, f"gate_proj{suffix}"), (prefix, f"up_proj{suffix}")
    if gate_key in stacked and up_key in stacked:
        gate, up = stacked.pop(gate_key), stacked.pop(up_key)
        weights[f"{prefix}.gate_up_proj{suffix}"] = stack_gate_up(gate, up, bool(suffix), args)


def convert_weights(
    tensors: Iterator[tuple[str, Tensor]], args: "ModelArgs"
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Checkpoint tensors -> (HybridLM state dict, mtp weights)."""
    weights: dict[str, Tensor] = {}
    mtp: dict[str, Tensor] = {}
    # Each layer's experts are stacked as soon as the last one is read, so that at most one layer's worth
    # of expert matrices is ever held twice (the 80B model's experts are 96% of its bytes).
    pending: dict[
        tuple[str, str], dict[int, Tensor]
    ] = {}  # (prefix, "gate_proj" + suffix) -> expert -> tensor
    stacked: dict[tuple[str, str], Tensor] = {}  # the same keys -> [E, ...], until gate meets up
    split: dict[tuple[str, str], dict[str, Tensor]] = {}  # (prefix, suffix) -> Qwen3.5 projection -> tensor
    for name, tensor in tensors:
        if name.startswith("mtp."):
            mtp[name] = tensor
            continue
        name = name.removeprefix("model.").removeprefix("language_model.")
        if match := _SPLIT_PROJECTION.match(name):
            prefix, part, suffix = match.groups()
            split.setdefault((prefix, suffix or ""), {})[part] = tensor
        elif match := _EXPERT.match(name):
            prefix, expert, kind, suffix = match.groups()
            key = (prefix, kind + (suffix or ""))
            pending.setdefault(key, {})[int(expert)] = tensor
            if len(pending[key]) == args.num_experts:
                per_expert = pending.pop(key)
                stacked[key] = torch.stack([per_expert.pop(e) for e in range(args.num_experts)])
                _join_experts(weights, stacked, prefix, suffix or "", args)
        elif match := _FUSED_EXPERTS.match(name):
            weights[f"{match.group(1)}.{match.group(2)}"] = tensor
        elif ".in_proj_qkvz.weight" in name or ".in_proj_ba.weight" in name:
            weights[name] = regroup_rows(tensor, name, args)
        elif name.endswith("linear_attn.conv1d.weight"):
            weights[name.replace("conv1d.weight", "conv_weight")] = tensor.squeeze(1)
        else:
            weights[name] = tensor
    for (prefix, suffix), parts in split.items():
        for name, tensor in stack_split_projections(parts, bool(suffix), args).items():
            weights[f"{prefix}.{name}.weight{suffix}"] = tensor
    if args.tie_word_embeddings:
        weights["lm_head.weight"] = weights["embed_tokens.weight"].to(weights["norm.weight"].device)
    return weights, mtp


def load_pretrained(
    cls: type["HybridLM"],
    args: "ModelArgs",
    path: Path,
    devices: Sequence[torch.device],
    dtype: torch.dtype,
) -> "HybridLM":
    """The model with its layers spread over `devices` (consecutive runs, see `layer_devices`)."""
    from model.speculative import MultiTokenPredictor

    per_layer = layer_devices(args.num_hidden_layers, devices)
    weights, mtp = convert_weights(read_tensors(path, dtype, per_layer), args)
    with torch.device("meta"):
        lm = cls(args)
        if args.weight_block_size is not None:
            use_fp8_modules(lm, weights, args.weight_block_size)
    lm.load_state_dict(weights, strict=True, assign=True)
    if mtp:
        head_args = replace(args, tie_word_embeddings=False)  # the head shares the main model's lm_head
        head, _ = convert_weights(((name.removeprefix("mtp."), t) for name, t in mtp.items()), head_args)
        with torch.device("meta"):
            lm.mtp = MultiTokenPredictor(args)
            if args.weight_block_size is not None:
                use_fp8_modules(lm.mtp, head, args.weight_block_size)
        lm.mtp.load_state_dict(head, strict=True, assign=True)
        lm.mtp.eval().requires_grad_(False)
    lm.place(per_layer)
    return lm.eval().requires_grad_(False)

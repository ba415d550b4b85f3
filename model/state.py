"""Streaming state of a partly read document: per linear layer its conv and recurrent states, per attention
layer its KV cache, and the number of tokens consumed. Saved and loaded as one safetensors file.

Shape letters: B batch, C conv channels, W conv width, HV value heads, K / V key / value head dims,
KVH key/value heads, S tokens per KV block, Dh attention head dim.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

if TYPE_CHECKING:
    from model.qwen3_next import ModelArgs

FORMAT_VERSION = "1"


@dataclass
class LinearAttentionState:
    conv: Tensor  # [B, C, W-1] in the model dtype: the last W-1 conv inputs
    recurrent: Tensor  # [B, HV, K, V] float32
    # While drafted tokens are verified: (conv, recurrent) after each token of the forward, to roll back to.
    steps: list[tuple[Tensor, Tensor]] | None = None

    def clone(self) -> "LinearAttentionState":
        return LinearAttentionState(self.conv.clone(), self.recurrent.clone())


class KVCache:
    """Append-only keys/values in fixed-size blocks [B, KVH, S, Dh], allocated as the document grows and never
    moved. Blocks live on `device` (host memory for offload: pinned, read block by block by the attention)."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        block_size: int,
        dtype: torch.dtype,
        device: torch.device,
        pin: bool,
    ) -> None:
        self.batch, self.kv_heads, self.head_dim = shape
        self.block_size, self.dtype, self.device, self.pin = block_size, dtype, device, pin
        self.keys: list[Tensor] = []
        self.values: list[Tensor] = []
        self.length = 0

    def _new_block(self) -> Tensor:
        shape = (self.batch, self.kv_heads, self.block_size, self.head_dim)
        return torch.empty(shape, dtype=self.dtype, device=self.device, pin_memory=self.pin)

    def append(self, k: Tensor, v: Tensor) -> None:
        """Writes k, v [B, KVH, T, Dh] after the cached tokens."""
        written, total = 0, k.shape[2]
        while written < total:
            offset = self.length % self.block_size
            if offset == 0:
                self.keys.append(self._new_block())
                self.values.append(self._new_block())
            n = min(self.block_size - offset, total - written)
            self.keys[-1][:, :, offset : offset + n].copy_(k[:, :, written : written + n])
            self.values[-1][:, :, offset : offset + n].copy_(v[:, :, written : written + n])
            written += n
            self.length += n

    def blocks(self, device: torch.device, dtype: torch.dtype) -> Iterator[tuple[Tensor, Tensor]]:
        """The filled part of each block as [B, KVH, S, Dh] on `device` in `dtype`, one block at a time."""
        for index, (keys, values) in enumerate(zip(self.keys, self.values, strict=True)):
            filled = min(self.block_size, self.length - index * self.block_size)
            yield (
                keys[:, :, :filled].to(device, dtype, non_blocking=True),
                values[:, :, :filled].to(device, dtype, non_blocking=True),
            )

    def truncate(self, length: int) -> None:
        """Forgets every token after the first `length` (rejected drafts). Blocks kept whole are untouched:
        only tokens appended since the last fork are ever dropped."""
        blocks = -(-length // self.block_size)
        del self.keys[blocks:], self.values[blocks:]
        self.length = length

    def fork(self) -> "KVCache":
        """An independent cache sharing the full blocks (never written again); the partial last is copied."""
        other = KVCache(
            (self.batch, self.kv_heads, self.head_dim), self.block_size, self.dtype, self.device, self.pin
        )
        other.keys, other.values, other.length = list(self.keys), list(self.values), self.length
        if self.length % self.block_size:
            other.keys[-1], other.values[-1] = self.keys[-1].clone(), self.values[-1].clone()
        return other

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)


LayerState = LinearAttentionState | KVCache


@dataclass
class HybridState:
    layers: list[LayerState]  # one per decoder layer
    position: int = 0  # tokens consumed

    @classmethod
    def empty(
        cls,
        args: "ModelArgs",
        batch_size: int,
        dtype: torch.dtype,
        devices: Sequence[torch.device],
        kv_dtype: torch.dtype,
        kv_device: torch.device | None,
        block_size: int,
    ) -> "HybridState":
        """Empty states, each on its layer's device (`devices`, one per layer); KV blocks on `kv_device`
        instead where given (host memory for offload)."""
        conv_channels = 2 * args.linear_num_key_heads * args.linear_key_head_dim + (
            args.linear_num_value_heads * args.linear_value_head_dim
        )
        layers: list[LayerState] = []
        for kind, device in zip(args.layer_types, devices, strict=True):
            if kind == "linear_attention":
                conv = torch.zeros(
                    batch_size, conv_channels, args.linear_conv_kernel_dim - 1, dtype=dtype, device=device
                )
                recurrent = torch.zeros(
                    batch_size,
                    args.linear_num_value_heads,
                    args.linear_key_head_dim,
                    args.linear_value_head_dim,
                    dtype=torch.float32,
                    device=device,
                )
                layers.append(LinearAttentionState(conv, recurrent))
            else:
                shape = (batch_size, args.num_key_value_heads, args.head_dim)
                blocks_on = kv_device or device
                pin = blocks_on.type == "cpu" and device.type == "cuda"
                layers.append(KVCache(shape, block_size, kv_dtype, blocks_on, pin))
        return cls(layers)

    def clone(self) -> "HybridState":
        """An independent copy to continue differently (e.g. a second question on the same document). KV
        blocks that are already full are shared, not copied, since appends never touch them."""
        return HybridState(
            [
                layer.clone() if isinstance(layer, LinearAttentionState) else layer.fork()
                for layer in self.layers
            ],
            self.position,
        )

    def record_steps(self) -> None:
        """Keep the linear layers' state after each token of the next forward, so that `roll_back` can return
        to any of them (speculative decoding verifies several drafted tokens in one forward)."""
        for layer in self.layers:
            if isinstance(layer, LinearAttentionState):
                layer.steps = []

    def roll_back(self, position: int) -> None:
        """Back to `position` tokens, a point within the forward run since `record_steps`; stops recording."""
        for layer in self.layers:
            if isinstance(layer, KVCache):
                layer.truncate(position)
                continue
            assert layer.steps is not None, "roll_back needs record_steps before the forward"
            index = len(layer.steps) - 1 - (self.position - position)
            assert 0 <= index < len(layer.steps), "roll_back reaches only into the recorded forward"
            (layer.conv, layer.recurrent), layer.steps = layer.steps[index], None
        self.position = position

    def nbytes(self) -> int:
        return sum(
            layer.nbytes() if isinstance(layer, KVCache) else layer.conv.nbytes + layer.recurrent.nbytes
            for layer in self.layers
        )

    def save(self, path: str | Path) -> None:
        tensors: dict[str, Tensor] = {}
        block_size = 0
        for i, layer in enumerate(self.layers):
            if isinstance(layer, LinearAttentionState):
                tensors[f"layers.{i}.conv"] = layer.conv.contiguous().cpu()
                tensors[f"layers.{i}.recurrent"] = layer.recurrent.contiguous().cpu()
                continue
            block_size = layer.block_size
            for j, (keys, values) in enumerate(layer.blocks(torch.device("cpu"), layer.dtype)):
                tensors[f"layers.{i}.keys.{j}"] = keys.contiguous()
                tensors[f"layers.{i}.values.{j}"] = values.contiguous()
        metadata = {"format": FORMAT_VERSION, "position": str(self.position), "block_size": str(block_size)}
        save_file(tensors, str(path), metadata=metadata)

    @classmethod
    def load(
        cls,
        path: str | Path,
        args: "ModelArgs",
        devices: Sequence[torch.device],
        dtype: torch.dtype,
        kv_device: torch.device | None = None,
    ) -> "HybridState":
        """Loads a saved state for a model with `args` whose layers lie on `devices` (one per layer); KV
        blocks keep their saved dtype."""
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT_VERSION:
                raise ValueError(f"{path}: not a docproc model state (format {metadata.get('format')!r})")
            names = set(f.keys())
            kv_dtype = next(
                (f.get_slice(name).get_dtype() for name in sorted(names) if ".keys." in name), None
            )
            state = cls.empty(
                args,
                batch_size=1,
                dtype=dtype,
                devices=devices,
                kv_dtype=_DTYPES[kv_dtype] if kv_dtype else dtype,
                kv_device=kv_device,
                block_size=int(metadata["block_size"]) or 4096,
            )
            for i, (layer, device) in enumerate(zip(state.layers, devices, strict=True)):
                if isinstance(layer, LinearAttentionState):
                    conv, recurrent = f.get_tensor(f"layers.{i}.conv"), f.get_tensor(f"layers.{i}.recurrent")
                    if (
                        conv.shape[1:] != layer.conv.shape[1:]
                        or recurrent.shape[1:] != layer.recurrent.shape[1:]
                    ):
                        raise ValueError(f"{path}: layer {i} state does not fit this model")
                    layer.conv, layer.recurrent = conv.to(device, dtype), recurrent.to(device)
                    continue
                if layer.block_size == 0:
                    raise ValueError(f"{path}: layer {i} is full attention but the file has no KV cache")
                j = 0
                while f"layers.{i}.keys.{j}" in names:
                    keys, values = (
                        f.get_tensor(f"layers.{i}.keys.{j}"),
                        f.get_tensor(f"layers.{i}.values.{j}"),
                    )
                    if keys.shape[1] != layer.kv_heads or keys.shape[3] != layer.head_dim:
                        raise ValueError(f"{path}: layer {i} KV cache does not fit this model")
                    if j == 0:
                        layer.batch = keys.shape[0]
                    layer.append(keys, values)
                    j += 1
            state.position = int(metadata["position"])
            return state


_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}

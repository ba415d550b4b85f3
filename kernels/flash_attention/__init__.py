"""Softmax attention over one block of keys that returns the log-sum-exp beside the output, so that blocks
can be merged by online softmax (the streaming attention of `model.qwen3_next`) without any kernel, or its
caller, holding a [Tq, Tk] score matrix.

Letters: B batch, H heads, Tq queries, Tk keys, Dh head dim.
"""

import torch

from kernels.dispatch import kernel_mode, use_triton
from kernels.flash_attention.reference import attention_with_lse_reference

# Head dims and dtypes PyTorch's CUDA flash kernel takes.
TORCH_FLASH_DTYPES = (torch.float16, torch.bfloat16)
TORCH_FLASH_MAX_HEAD_DIM = 256


def _check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> None:
    if q.dim() != 4:
        raise ValueError(f"q must be [B, H, Tq, Dh]; got {tuple(q.shape)}")
    B, H, Tq, Dh = q.shape
    if k.dim() != 4 or k.shape[:2] != (B, H) or k.shape[3] != Dh or k.shape[2] < 1:
        raise ValueError(f"k must be [B={B}, H={H}, Tk>=1, Dh={Dh}]; got {tuple(k.shape)}")
    if v.shape != k.shape:
        raise ValueError(f"v must have k's shape {tuple(k.shape)}; got {tuple(v.shape)}")
    if causal and k.shape[2] != Tq:
        raise ValueError(
            f"causal attention aligns query i with key i: Tq={Tq} needs Tk={Tq}, got {k.shape[2]}"
        )
    if len({q.dtype, k.dtype, v.dtype}) != 1 or not q.is_floating_point():
        raise ValueError(f"q, k, v must share one floating point dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if len({q.device, k.device, v.device}) != 1:
        raise ValueError(f"q, k, v must be on one device; got {q.device}, {k.device}, {v.device}")


def attention_with_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, causal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ · scale) v for one block of keys.

    Args:
        q: [B, H, Tq, Dh].
        k, v: [B, H, Tk, Dh] in q's dtype and on q's device.
        scale: the factor on the scores (Dh ** -0.5 usually).
        causal: query i sees keys 0..i only (needs Tq == Tk).
    Returns:
        out [B, H, Tq, Dh] in q's dtype, and lse [B, H, Tq] float32 (natural log of each row's softmax sum).

    CUDA tensors in half precision take PyTorch's flash kernel (which returns the log-sum-exp too; twice as
    fast as ours on an H200, bench/gpu/results.md), other CUDA tensors or DOCPROC_KERNELS=triton the Triton
    kernel; CPU tensors PyTorch's CPU flash kernel; the materialised reference is left for other devices
    and for tests.
    """
    _check_inputs(q, k, v, causal)
    torch_flash_fits = q.dtype in TORCH_FLASH_DTYPES and q.shape[-1] <= TORCH_FLASH_MAX_HEAD_DIM
    if q.is_cuda and kernel_mode() == "auto" and torch_flash_fits:
        return torch_flash_attention_with_lse(q, k, v, scale, causal)
    if use_triton(q):
        from kernels.flash_attention.triton import attention_with_lse_triton

        return attention_with_lse_triton(q, k, v, scale, causal)
    if q.device.type == "cpu":
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, is_causal=causal, scale=scale
        )
    return attention_with_lse_reference(q, k, v, scale, causal)


def torch_flash_attention_with_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, causal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch's CUDA flash attention: out [B, H, Tq, Dh] and lse [B, H, Tq] float32."""
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, is_causal=causal, scale=scale)[:2]
    return out, lse

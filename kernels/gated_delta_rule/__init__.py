"""Gated delta rule (Gated DeltaNet linear attention), forward only, with flash-linear-attention's call shape.

Letters: B batch, T time, H query/key heads, HV value heads (a multiple of H; value head i reads q/k head
i // (HV // H)), K key head dim, V value head dim.
"""

import torch

from kernels.dispatch import use_triton
from kernels.gated_delta_rule.reference import (
    chunk_gated_delta_rule_reference,
    fused_recurrent_gated_delta_rule_reference,
)

_INPUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _check_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    initial_state: torch.Tensor | None,
) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"q, k, v must be 4-D [B, T, H, K] / [B, T, HV, V]; got {tuple(q.shape)}, {tuple(k.shape)}, "
            f"{tuple(v.shape)}"
        )
    if q.shape != k.shape:
        raise ValueError(f"q and k must share one shape [B, T, H, K]; got {tuple(q.shape)}, {tuple(k.shape)}")
    B, T, H, K = q.shape
    HV, V = v.shape[2:]
    if v.shape[:2] != (B, T):
        raise ValueError(f"v must be [B={B}, T={T}, HV, V]; got {tuple(v.shape)}")
    if T < 1:
        raise ValueError("the sequence must hold at least one token (T >= 1)")
    if HV % H != 0:
        raise ValueError(f"value heads HV={HV} must be a multiple of query/key heads H={H}")
    if g.shape != (B, T, HV) or beta.shape != (B, T, HV):
        raise ValueError(
            f"g and beta must be [B={B}, T={T}, HV={HV}]; got {tuple(g.shape)}, {tuple(beta.shape)}"
        )
    if q.dtype not in _INPUT_DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(
            f"q, k, v must share one dtype among {_INPUT_DTYPES}; got {q.dtype}, {k.dtype}, {v.dtype}"
        )
    if not (g.is_floating_point() and beta.is_floating_point()):
        raise ValueError(f"g and beta must be floating point; got {g.dtype}, {beta.dtype}")
    tensors = [q, k, v, g, beta]
    if initial_state is not None:
        if initial_state.shape != (B, HV, K, V):
            raise ValueError(
                f"initial_state must be [B={B}, HV={HV}, K={K}, V={V}]; got {tuple(initial_state.shape)}"
            )
        if initial_state.dtype != torch.float32:
            raise ValueError(f"initial_state must be float32; got {initial_state.dtype}")
        tensors.append(initial_state)
    if len({t.device for t in tensors}) != 1:
        raise ValueError(f"all tensors must be on one device; got {sorted({str(t.device) for t in tensors})}")


def chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    use_qk_l2norm_in_kernel: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated delta rule over a whole sequence, in chunks of 64 (prefill).

    Args:
        q, k: [B, T, H, K], float32 / bfloat16 / float16 (one dtype with v).
        v: [B, T, HV, V].
        g: [B, T, HV] log decay per step (<= 0): the state is multiplied by exp(g_t) before step t's update.
        beta: [B, T, HV] delta-rule write strength, usually in (0, 1).
        scale: multiplies q; defaults to K ** -0.5.
        initial_state: [B, HV, K, V] float32 state to start from (zeros when None).
        output_final_state: return the state after the last token.
        use_qk_l2norm_in_kernel: L2-normalise q and k (in float32) before use.
    Returns:
        o: [B, T, HV, V] in v's dtype, and the final state [B, HV, K, V] float32 or None.
    """
    _check_inputs(q, k, v, g, beta, initial_state)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    if use_triton(q):
        from kernels.gated_delta_rule.chunk import chunk_gated_delta_rule_triton

        return chunk_gated_delta_rule_triton(
            q, k, v, g, beta, scale, initial_state, output_final_state, use_qk_l2norm_in_kernel
        )
    return chunk_gated_delta_rule_reference(
        q, k, v, g, beta, scale, initial_state, output_final_state, use_qk_l2norm_in_kernel
    )


def fused_recurrent_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    use_qk_l2norm_in_kernel: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated delta rule token by token (decoding, small T). Same arguments, shapes and results as
    `chunk_gated_delta_rule`."""
    _check_inputs(q, k, v, g, beta, initial_state)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    if use_triton(q):
        from kernels.gated_delta_rule.fused_recurrent import fused_recurrent_gated_delta_rule_triton

        return fused_recurrent_gated_delta_rule_triton(
            q, k, v, g, beta, scale, initial_state, output_final_state, use_qk_l2norm_in_kernel
        )
    return fused_recurrent_gated_delta_rule_reference(
        q, k, v, g, beta, scale, initial_state, output_final_state, use_qk_l2norm_in_kernel
    )

"""Token-by-token gated delta rule in Triton (decoding): one program per (batch, value head, V block) keeps
its [K, BV] slice of the state in registers across the T steps. Letters as in `kernels.gated_delta_rule`."""

import torch
import triton
import triton.language as tl


@triton.jit
def _fused_recurrent_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    g_ptr,
    beta_ptr,  # [B, T, H, K], [B, T, H, K], [B, T, HV, V], [B, T, HV], [B, T, HV]
    h0_ptr,  # [B, HV, K, V] float32 (read only when HAS_INITIAL_STATE)
    o_ptr,  # out: [B, T, HV, V] in v's dtype
    ht_ptr,  # out: [B, HV, K, V] float32 (written only when STORE_FINAL_STATE)
    scale,
    T,
    H: tl.constexpr,
    HV: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    L2NORM: tl.constexpr,
    HAS_INITIAL_STATE: tl.constexpr,
    STORE_FINAL_STATE: tl.constexpr,
):
    v_block, bh = tl.program_id(0), tl.program_id(1).to(tl.int64)  # int64: offsets pass 2**31 at long T
    b, hv = bh // HV, bh % HV
    h = hv // (HV // H)
    cols_k = tl.arange(0, BK)
    cols_v = v_block * BV + tl.arange(0, BV)
    k_ok, v_ok = cols_k < K, cols_v < V
    state_mask = k_ok[:, None] & v_ok[None, :]
    state_offsets = bh * K * V + cols_k[:, None] * V + cols_v[None, :]
    if HAS_INITIAL_STATE:
        state = tl.load(h0_ptr + state_offsets, mask=state_mask, other=0.0)  # [BK, BV]
    else:
        state = tl.zeros([BK, BV], dtype=tl.float32)

    for t in range(T):
        qk_offsets = ((b * T + t) * H + h) * K + cols_k
        q = tl.load(q_ptr + qk_offsets, mask=k_ok, other=0.0).to(tl.float32)  # [BK]
        k = tl.load(k_ptr + qk_offsets, mask=k_ok, other=0.0).to(tl.float32)
        if L2NORM:  # epsilon as in the reference's `l2norm`
            q = q * tl.rsqrt(tl.sum(q * q) + 1e-6)
            k = k * tl.rsqrt(tl.sum(k * k) + 1e-6)
        v_offsets = ((b * T + t) * HV + hv) * V + cols_v
        v = tl.load(v_ptr + v_offsets, mask=v_ok, other=0.0).to(tl.float32)  # [BV]
        g = tl.load(g_ptr + (b * T + t) * HV + hv).to(tl.float32)
        beta = tl.load(beta_ptr + (b * T + t) * HV + hv).to(tl.float32)
        state = state * tl.exp(g)
        delta = (v - tl.sum(state * k[:, None], axis=0)) * beta  # [BV]
        state = state + k[:, None] * delta[None, :]
        o = tl.sum(state * (q * scale)[:, None], axis=0)
        tl.store(o_ptr + v_offsets, o.to(o_ptr.dtype.element_ty), mask=v_ok)

    if STORE_FINAL_STATE:
        tl.store(ht_ptr + state_offsets, state, mask=state_mask)


def fused_recurrent_gated_delta_rule_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float,
    initial_state: torch.Tensor | None,
    output_final_state: bool,
    use_qk_l2norm_in_kernel: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Shapes as in `kernels.fused_recurrent_gated_delta_rule`; inputs already checked."""
    B, T, H, K = q.shape
    HV, V = v.shape[2:]
    BK = triton.next_power_of_2(K)
    BV = min(triton.next_power_of_2(V), 32)  # more V blocks: more programs for small decode batches
    q, k, v, g, beta = (x.contiguous() for x in (q, k, v, g, beta))
    o = torch.empty(B, T, HV, V, dtype=v.dtype, device=v.device)
    final_state = (
        torch.empty(B, HV, K, V, dtype=torch.float32, device=q.device) if output_final_state else None
    )
    h0 = initial_state.contiguous() if initial_state is not None else None
    _fused_recurrent_kernel[(triton.cdiv(V, BV), B * HV)](
        q,
        k,
        v,
        g,
        beta,
        h0,
        o,
        final_state,
        scale,
        T,
        H=H,
        HV=HV,
        K=K,
        V=V,
        BK=BK,
        BV=BV,
        L2NORM=use_qk_l2norm_in_kernel,
        HAS_INITIAL_STATE=initial_state is not None,
        STORE_FINAL_STATE=output_final_state,
    )
    return o, final_state

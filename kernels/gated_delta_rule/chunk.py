"""Chunked gated delta rule in Triton (forward), in flash-linear-attention's three-pass form.

1. `_chunk_prepare_kernel`, parallel over chunks: chunk-local cumulative log decay g_cum, the UT transform
   A = (I + strict_lower(diag(beta) K Kᵀ ⊙ decay))⁻¹ by forward substitution, and w = A (beta k exp(g_cum)),
   u = A (beta v).
2. `_chunk_state_kernel`, sequential over chunks per (batch, value head, V block), the state in registers:
   stores the state at each chunk start h_n and v_new = u - w h_n, then S = exp(g_last) S + k_decayedᵀ v_new.
3. `_chunk_output_kernel`, parallel over chunks: o = (q exp(g_cum)) h_n + tril(q kᵀ ⊙ decay) v_new.
Letters: B batch, T time, H q/k heads, HV value heads, K / V head dims, C chunk length, N chunks.
The UT transform works in float32; the other dots take the input dtype (bf16 on the production path) with
float32 accumulation, and float32 inputs use exact float32 dots ("ieee") so that they match the reference.
"""

import torch
import triton
import triton.language as tl

from kernels.gated_delta_rule.reference import CHUNK_SIZE
from kernels.triton_dot import dot, dot_arguments


@triton.jit
def _load_rows(ptr, row0, n_rows, row_stride, n_cols, R: tl.constexpr, D: tl.constexpr, L2NORM: tl.constexpr):
    """Rows row0 .. row0+R-1 of a [*, n_cols] view (zero past n_rows / n_cols) as float32 [R, D], optionally
    L2-normalised (epsilon as in the reference's `l2norm`)."""
    rows = (row0 + tl.arange(0, R)).to(tl.int64)
    cols = tl.arange(0, D)
    mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
    x = tl.load(ptr + rows[:, None] * row_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    if L2NORM:
        x = x * tl.rsqrt(tl.sum(x * x, axis=1) + 1e-6)[:, None]
    return x


@triton.jit
def _chunk_prepare_kernel(
    k_ptr,
    v_ptr,
    g_ptr,
    beta_ptr,  # [B, T, H, K], [B, T, HV, V], [B, T, HV], [B, T, HV]
    w_ptr,
    u_ptr,
    g_cum_ptr,  # out: [B, T, HV, K], [B, T, HV, V] in the input dtype, [B, T, HV] float32
    T,
    H: tl.constexpr,
    HV: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    C: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    L2NORM: tl.constexpr,
    PRECISION: tl.constexpr,
):
    chunk, bh = tl.program_id(0), tl.program_id(1).to(tl.int64)  # int64: offsets pass 2**31 at long T
    b, hv = bh // HV, bh % HV
    h = hv // (HV // H)
    t0 = chunk * C
    rows = t0 + tl.arange(0, C)
    row_ok = rows < T
    k = _load_rows(k_ptr + (b * T * H + h) * K, t0, T, H * K, K, C, BK, L2NORM)  # [C, BK]
    beta = tl.load(beta_ptr + (b * T + rows) * HV + hv, mask=row_ok, other=0.0).to(tl.float32)  # [C]
    g = tl.load(g_ptr + (b * T + rows) * HV + hv, mask=row_ok, other=0.0).to(tl.float32)
    g_cum = tl.cumsum(g, axis=0)  # [C]
    tl.store(g_cum_ptr + (b * T + rows) * HV + hv, g_cum, mask=row_ok)

    i = tl.arange(0, C)
    strictly_lower = i[:, None] > i[None, :]
    decay = tl.exp(tl.where(strictly_lower, g_cum[:, None] - g_cum[None, :], 0.0))
    k_beta = k * beta[:, None]
    system = tl.where(strictly_lower, tl.dot(k_beta, tl.trans(k), input_precision=PRECISION) * decay, 0.0)
    # Forward substitution: row i of A = e_i - system[i, :i] @ A[:i] (rows past i are still zero).
    a = tl.zeros([C, C], dtype=tl.float32)
    for r in range(C):
        system_row = tl.sum(tl.where(i[:, None] == r, system, 0.0), axis=0)  # [C]
        a_row = tl.where(i == r, 1.0, 0.0) - tl.sum(system_row[:, None] * a, axis=0)
        a = tl.where(i[:, None] == r, a_row[None, :], a)

    w = tl.dot(a, k_beta * tl.exp(g_cum)[:, None], input_precision=PRECISION)  # [C, BK]
    cols_k = tl.arange(0, BK)
    w_rows = w_ptr + ((b * T + rows) * HV + hv) * K
    tl.store(
        w_rows[:, None] + cols_k[None, :],
        w.to(w_ptr.dtype.element_ty),
        mask=row_ok[:, None] & (cols_k[None, :] < K),
    )
    for v0 in range(0, V, BV):
        v = _load_rows(v_ptr + (b * T * HV + hv) * V + v0, t0, T, HV * V, V - v0, C, BV, False)  # [C, BV]
        u = tl.dot(a, v * beta[:, None], input_precision=PRECISION)
        cols_v = v0 + tl.arange(0, BV)
        u_rows = u_ptr + ((b * T + rows) * HV + hv) * V
        tl.store(
            u_rows[:, None] + cols_v[None, :],
            u.to(u_ptr.dtype.element_ty),
            mask=row_ok[:, None] & (cols_v[None, :] < V),
        )


@triton.jit
def _chunk_state_kernel(
    k_ptr,
    w_ptr,
    u_ptr,
    g_cum_ptr,  # [B, T, H, K], [B, T, HV, K], [B, T, HV, V], [B, T, HV]
    h0_ptr,  # [B, HV, K, V] float32 (read only when HAS_INITIAL_STATE)
    h_ptr,
    v_new_ptr,  # out: [B, N, HV, K, V], [B, T, HV, V] in the input dtype
    ht_ptr,  # out: [B, HV, K, V] float32 (written only when STORE_FINAL_STATE)
    T,
    N,
    H: tl.constexpr,
    HV: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    C: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    L2NORM: tl.constexpr,
    PRECISION: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    EMULATE_DOT_DTYPE: tl.constexpr,
    HAS_INITIAL_STATE: tl.constexpr,
    STORE_FINAL_STATE: tl.constexpr,
):
    v_block, bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    b, hv = bh // HV, bh % HV
    h = hv // (HV // H)
    dtype = w_ptr.dtype.element_ty
    cols_k = tl.arange(0, BK)
    cols_v = v_block * BV + tl.arange(0, BV)
    state_mask = (cols_k[:, None] < K) & (cols_v[None, :] < V)
    state_offsets = cols_k[:, None] * V + cols_v[None, :]  # within one [K, V] state
    if HAS_INITIAL_STATE:
        state = tl.load(h0_ptr + bh * K * V + state_offsets, mask=state_mask, other=0.0)  # [BK, BV]
    else:
        state = tl.zeros([BK, BV], dtype=tl.float32)

    for n in range(N):
        t0 = n * C
        rows = t0 + tl.arange(0, C)
        row_ok = rows < T
        tl.store(h_ptr + ((b * N + n) * HV + hv) * K * V + state_offsets, state.to(dtype), mask=state_mask)
        w = _load_rows(w_ptr + (b * T * HV + hv) * K, t0, T, HV * K, K, C, BK, False)  # [C, BK]
        u = _load_rows(
            u_ptr + (b * T * HV + hv) * V + v_block * BV, t0, T, HV * V, V - v_block * BV, C, BV, False
        )  # [C, BV]
        v_new = u - dot(w, state, DOT_DTYPE, EMULATE_DOT_DTYPE, PRECISION)  # [C, BV]
        v_new_rows = v_new_ptr + ((b * T + rows) * HV + hv) * V
        tl.store(
            v_new_rows[:, None] + cols_v[None, :],
            v_new.to(dtype),
            mask=row_ok[:, None] & (cols_v[None, :] < V),
        )

        g_cum = tl.load(g_cum_ptr + (b * T + rows) * HV + hv, mask=row_ok, other=0.0)  # [C]
        g_last = tl.load(g_cum_ptr + (b * T + tl.minimum(t0 + C, T) - 1) * HV + hv)
        k = _load_rows(k_ptr + (b * T * H + h) * K, t0, T, H * K, K, C, BK, L2NORM)  # [C, BK]
        k_decayed = k * tl.exp(g_last - g_cum)[:, None]  # masked rows are zero
        state = state * tl.exp(g_last) + dot(
            tl.trans(k_decayed), v_new, DOT_DTYPE, EMULATE_DOT_DTYPE, PRECISION
        )

    if STORE_FINAL_STATE:
        tl.store(ht_ptr + bh * K * V + state_offsets, state, mask=state_mask)


@triton.jit
def _chunk_output_kernel(
    q_ptr,
    k_ptr,
    h_ptr,
    v_new_ptr,
    g_cum_ptr,  # as in _chunk_state_kernel
    o_ptr,  # out: [B, T, HV, V] in v's dtype
    scale,
    T,
    N,
    H: tl.constexpr,
    HV: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    C: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    L2NORM: tl.constexpr,
    PRECISION: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    EMULATE_DOT_DTYPE: tl.constexpr,
):
    chunk, bh, v_block = tl.program_id(0), tl.program_id(1).to(tl.int64), tl.program_id(2)
    b, hv = bh // HV, bh % HV
    h = hv // (HV // H)
    t0 = chunk * C
    rows = t0 + tl.arange(0, C)
    row_ok = rows < T
    cols_k = tl.arange(0, BK)
    cols_v = v_block * BV + tl.arange(0, BV)
    q = _load_rows(q_ptr + (b * T * H + h) * K, t0, T, H * K, K, C, BK, L2NORM) * scale  # [C, BK]
    k = _load_rows(k_ptr + (b * T * H + h) * K, t0, T, H * K, K, C, BK, L2NORM)  # [C, BK]
    g_cum = tl.load(g_cum_ptr + (b * T + rows) * HV + hv, mask=row_ok, other=0.0)  # [C]
    state_mask = (cols_k[:, None] < K) & (cols_v[None, :] < V)
    state = tl.load(
        h_ptr + ((b * N + chunk) * HV + hv) * K * V + cols_k[:, None] * V + cols_v[None, :],
        mask=state_mask,
        other=0.0,
    )  # [BK, BV], the state at the chunk start
    v_new = _load_rows(
        v_new_ptr + (b * T * HV + hv) * V + v_block * BV, t0, T, HV * V, V - v_block * BV, C, BV, False
    )  # [C, BV]

    i = tl.arange(0, C)
    causal = i[:, None] >= i[None, :]
    decay = tl.exp(tl.where(causal, g_cum[:, None] - g_cum[None, :], 0.0))
    attn = tl.where(causal, dot(q, tl.trans(k), DOT_DTYPE, EMULATE_DOT_DTYPE, PRECISION) * decay, 0.0)
    o = dot(q * tl.exp(g_cum)[:, None], state, DOT_DTYPE, EMULATE_DOT_DTYPE, PRECISION)
    o += dot(attn, v_new, DOT_DTYPE, EMULATE_DOT_DTYPE, PRECISION)
    o_rows = o_ptr + ((b * T + rows) * HV + hv) * V
    tl.store(
        o_rows[:, None] + cols_v[None, :],
        o.to(o_ptr.dtype.element_ty),
        mask=row_ok[:, None] & (cols_v[None, :] < V),
    )


def _block(n: int, cap: int) -> int:
    """A legal Triton block covering n (a power of two, >= 16 for tl.dot), at most cap."""
    return min(max(triton.next_power_of_2(n), 16), cap)


def chunk_gated_delta_rule_triton(
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
    """Shapes as in `kernels.chunk_gated_delta_rule`; inputs already checked."""
    B, T, H, K = q.shape
    HV, V = v.shape[2:]
    C = CHUNK_SIZE
    N = triton.cdiv(T, C)
    BK = _block(K, 256)
    if BK < K:
        raise ValueError(f"the Triton chunk kernel holds a whole key head in registers: K={K} must be <= 256")
    BV = _block(V, 64)
    # The state scan is the sequential part: smaller V blocks give it more programs (B * HV * V / BV).
    BV_SCAN = _block(V, 32)
    q, k, v, g, beta = (x.contiguous() for x in (q, k, v, g, beta))
    dots = dot_arguments(_chunk_state_kernel, q.dtype)
    common = {
        "H": H,
        "HV": HV,
        "K": K,
        "V": V,
        "C": C,
        "BK": BK,
        "L2NORM": use_qk_l2norm_in_kernel,
        "PRECISION": dots["PRECISION"],
    }
    dot_dtype = {"DOT_DTYPE": dots["DOT_DTYPE"], "EMULATE_DOT_DTYPE": dots["EMULATE_DOT_DTYPE"]}

    w = torch.empty(B, T, HV, K, dtype=q.dtype, device=q.device)
    u = torch.empty(B, T, HV, V, dtype=q.dtype, device=q.device)
    g_cum = torch.empty(B, T, HV, dtype=torch.float32, device=q.device)
    _chunk_prepare_kernel[(N, B * HV)](k, v, g, beta, w, u, g_cum, T, BV=BV, **common)

    h = torch.empty(B, N, HV, K, V, dtype=q.dtype, device=q.device)
    v_new = torch.empty_like(u)
    final_state = (
        torch.empty(B, HV, K, V, dtype=torch.float32, device=q.device) if output_final_state else None
    )
    h0 = initial_state.contiguous() if initial_state is not None else None
    _chunk_state_kernel[(triton.cdiv(V, BV_SCAN), B * HV)](
        k,
        w,
        u,
        g_cum,
        h0,
        h,
        v_new,
        final_state,
        T,
        N,
        BV=BV_SCAN,
        HAS_INITIAL_STATE=initial_state is not None,
        STORE_FINAL_STATE=output_final_state,
        **common,
        **dot_dtype,
    )

    o = torch.empty(B, T, HV, V, dtype=v.dtype, device=v.device)
    _chunk_output_kernel[(N, B * HV, triton.cdiv(V, BV))](
        q, k, h, v_new, g_cum, o, scale, T, N, BV=BV, **common, **dot_dtype
    )
    return o, final_state

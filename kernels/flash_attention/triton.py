"""Flash attention forward in Triton that also returns the log-sum-exp: one program per (query block, batch ×
head) streams key/value blocks through an online softmax, so no [Tq, Tk] score matrix exists anywhere.
Letters as in `kernels.flash_attention`."""

import torch
import triton
import triton.language as tl

from kernels.triton_dot import dot, dot_arguments

_LOG2_E = 1.4426950408889634


@triton.jit
def _flash_attention_kernel(
    q_ptr,  # [B, H, Tq, Dh], last dim contiguous
    k_ptr,
    v_ptr,  # [B, H, Tk, Dh], last dim contiguous
    o_ptr,  # out: [B, H, Tq, Dh] contiguous, q's dtype
    lse_ptr,  # out: [B, H, Tq] float32, natural log
    stride_qb,
    stride_qh,
    stride_qt,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_vb,
    stride_vh,
    stride_vt,
    H,
    Tq,
    Tk,
    scale_log2,  # scale × log2(e): the softmax runs in base 2
    Dh: tl.constexpr,
    BD: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    CAUSAL: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    EMULATE_DOT_DTYPE: tl.constexpr,
    PRECISION: tl.constexpr,
):
    m_block = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)  # int64: offsets pass 2**31 for long blocks
    b, h = bh // H, bh % H
    rows = m_block * BM + tl.arange(0, BM)
    dims = tl.arange(0, BD)
    row_ok, dim_ok = rows < Tq, dims < Dh
    q = tl.load(
        q_ptr + b * stride_qb + h * stride_qh + rows[:, None] * stride_qt + dims[None, :],
        mask=row_ok[:, None] & dim_ok[None, :],
        other=0.0,
    )  # [BM, BD]
    k_base = k_ptr + b * stride_kb + h * stride_kh
    v_base = v_ptr + b * stride_vb + h * stride_vh
    m_i = tl.full([BM], float("-inf"), dtype=tl.float32)  # running max (base-2 units)
    l_i = tl.zeros([BM], dtype=tl.float32)  # running sum of exp2(s - m_i)
    acc = tl.zeros([BM, BD], dtype=tl.float32)
    end = tl.minimum(Tk, (m_block + 1) * BM) if CAUSAL else Tk
    for start in range(0, end, BN):
        cols = start + tl.arange(0, BN)
        col_ok = cols < Tk
        k = tl.load(
            k_base + cols[None, :] * stride_kt + dims[:, None],
            mask=col_ok[None, :] & dim_ok[:, None],
            other=0.0,
        )  # [BD, BN]
        s = dot(q, k, DOT_DTYPE, EMULATE_DOT_DTYPE, PRECISION) * scale_log2  # [BM, BN]
        valid = col_ok[None, :]
        if CAUSAL:
            valid = valid & (cols[None, :] <= rows[:, None])
        s = tl.where(valid, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))  # finite: every row sees key 0 in the first block
        p = tl.math.exp2(s - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(
            v_base + cols[:, None] * stride_vt + dims[None, :],
            mask=col_ok[:, None] & dim_ok[None, :],
            other=0.0,
        )  # [BN, BD]
        acc = acc * alpha[:, None] + dot(p, v, DOT_DTYPE, EMULATE_DOT_DTYPE, PRECISION)  # p rounded as v
        m_i = m_new
    out = acc / l_i[:, None]
    o_rows = (bh * Tq + rows) * Dh
    tl.store(
        o_ptr + o_rows[:, None] + dims[None, :],
        out.to(o_ptr.dtype.element_ty),
        mask=row_ok[:, None] & dim_ok[None, :],
    )
    tl.store(lse_ptr + bh * Tq + rows, (m_i + tl.math.log2(l_i)) / 1.4426950408889634, mask=row_ok)


def attention_with_lse_triton(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, causal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    B, H, Tq, Dh = q.shape
    Tk = k.shape[2]
    out = torch.empty(B, H, Tq, Dh, dtype=q.dtype, device=q.device)
    lse = torch.empty(B, H, Tq, dtype=torch.float32, device=q.device)
    BD = max(16, triton.next_power_of_2(Dh))
    # [BM, BD] queries and an accumulator stay in registers; Dh = 256 (Qwen3-Next) takes 8 warps and BN = 32.
    BM, BN = 64, 64 if BD <= 128 else 32
    grid = (triton.cdiv(Tq, BM), B * H)
    _flash_attention_kernel[grid](
        q,
        k,
        v,
        out,
        lse,
        q.stride(0),
        q.stride(1),
        q.stride(2),
        k.stride(0),
        k.stride(1),
        k.stride(2),
        v.stride(0),
        v.stride(1),
        v.stride(2),
        H,
        Tq,
        Tk,
        scale * _LOG2_E,
        Dh=Dh,
        BD=BD,
        BM=BM,
        BN=BN,
        CAUSAL=causal,
        **dot_arguments(_flash_attention_kernel, q.dtype),
        num_warps=4 if BD <= 64 else 8,
        num_stages=2,
    )
    return out, lse

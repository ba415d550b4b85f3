"""Depthwise causal conv1d with fused SiLU in Triton: one program per (batch, time block, channel block).
Letters as in `kernels.causal_conv1d`."""

import torch
import triton
import triton.language as tl

from kernels.causal_conv1d.reference import last_inputs


@triton.jit
def _causal_conv1d_kernel(
    x_ptr,  # [B, T, D]
    weight_ptr,
    bias_ptr,  # [D, W], [D] (read only when HAS_BIAS)
    state_ptr,  # [B, D, W-1], the inputs before x (read only when HAS_STATE)
    y_ptr,  # out: [B, T, D] in x's dtype
    T,
    D,
    W: tl.constexpr,
    BT: tl.constexpr,
    BD: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_STATE: tl.constexpr,
    SILU: tl.constexpr,
):
    # int64: offsets b * T * D pass 2**31 for long batched inputs
    b, t_block, d_block = tl.program_id(0).to(tl.int64), tl.program_id(1), tl.program_id(2)
    t = t_block * BT + tl.arange(0, BT)
    d = d_block * BD + tl.arange(0, BD)
    t_ok, d_ok = t < T, d < D
    acc = tl.zeros([BT, BD], dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + d, mask=d_ok, other=0.0).to(tl.float32)[None, :]
    for tap in tl.static_range(W):
        src = t - (W - 1) + tap  # [BT], the input step this tap reads; < 0 reads the state
        weight = tl.load(weight_ptr + d * W + tap, mask=d_ok, other=0.0).to(tl.float32)  # [BD]
        from_x = (src >= 0) & t_ok
        x = tl.load(
            x_ptr + (b * T + src[:, None]) * D + d[None, :], mask=from_x[:, None] & d_ok[None, :], other=0.0
        ).to(tl.float32)
        if HAS_STATE:
            from_state = (src < 0) & t_ok
            state_col = tl.where(from_state, src + (W - 1), 0)
            x += tl.load(
                state_ptr + (b * D + d[None, :]) * (W - 1) + state_col[:, None],
                mask=from_state[:, None] & d_ok[None, :],
                other=0.0,
            ).to(tl.float32)
        acc += x * weight[None, :]
    if SILU:
        acc = acc * tl.sigmoid(acc)
    tl.store(
        y_ptr + (b * T + t[:, None]) * D + d[None, :],
        acc.to(y_ptr.dtype.element_ty),
        mask=t_ok[:, None] & d_ok[None, :],
    )


def causal_conv1d_triton(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    output_final_state: bool,
    activation: str | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Shapes as in `kernels.causal_conv1d`; inputs already checked."""
    B, T, D = x.shape
    W = weight.shape[1]
    x, weight = x.contiguous(), weight.contiguous()
    state = initial_state.contiguous() if initial_state is not None else None
    bias = bias.contiguous() if bias is not None else None
    y = torch.empty_like(x)
    BT, BD = min(triton.next_power_of_2(T), 64), 128
    _causal_conv1d_kernel[(B, triton.cdiv(T, BT), triton.cdiv(D, BD))](
        x,
        weight,
        bias,
        state,
        y,
        T,
        D,
        W=W,
        BT=BT,
        BD=BD,
        HAS_BIAS=bias is not None,
        HAS_STATE=state is not None,
        SILU=activation == "silu",
    )
    if not output_final_state:
        return y, None
    # Only the last W-1 steps are needed: a few small copies, not worth a kernel.
    tail = x[:, -(W - 1) :].transpose(1, 2)  # [B, D, min(T, W-1)]
    if T < W - 1:
        before = state if state is not None else torch.zeros(B, D, W - 1, dtype=x.dtype, device=x.device)
        tail = torch.cat([before, tail], dim=-1)
    return y, last_inputs(tail, W)

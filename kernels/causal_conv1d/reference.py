"""Plain-PyTorch depthwise causal conv1d: the reference for the Triton kernel and the CPU production path.

y[b, t, d] = act(bias[d] + sum_w weight[d, w] * x_ext[b, t + w, d]), where x_ext is the W-1 carried inputs
(the state) followed by x. Letters: B batch, T time, D channels, W kernel width.
"""

import torch
import torch.nn.functional as F


def causal_conv1d_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    output_final_state: bool,
    activation: str | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Shapes as in `kernels.causal_conv1d`; computes in float32.

    Time-major shifted multiply-adds rather than F.conv1d: for a width-4 depthwise filter these are four
    streaming passes over contiguous memory, where conv1d needs channel-major copies in and out.
    """
    B, T, D = x.shape
    W = weight.shape[1]
    if initial_state is None:
        x_ext = F.pad(x, (0, 0, W - 1, 0))  # [B, W-1+T, D]
    else:
        x_ext = torch.cat([initial_state.to(x.dtype).transpose(1, 2), x], dim=1)
    x32 = x_ext.to(torch.float32)  # [B, W-1+T, D]
    weight_t = weight.to(torch.float32).t().contiguous()  # [W, D]
    y = x32[:, :T] * weight_t[0] if bias is None else torch.addcmul(bias.float(), x32[:, :T], weight_t[0])
    for w in range(1, W):
        y = y.addcmul_(x32[:, w : w + T], weight_t[w])  # [B, T, D]
    if activation == "silu":
        y = F.silu(y)
    final_state = last_inputs(x_ext.transpose(1, 2), W) if output_final_state else None
    return y.to(x.dtype), final_state


def causal_conv1d_update_reference(
    x: torch.Tensor,
    conv_state: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step, shapes as in `kernels.causal_conv1d_update`: the W inputs ending at x times the filter
    (five operations: a decoding step is bound by their count, not their arithmetic)."""
    window = torch.cat([conv_state.to(x.dtype), x.unsqueeze(-1)], dim=-1)  # [B, D, W]
    y = (window.to(torch.float32) * weight.to(torch.float32)).sum(-1)  # [B, D]
    if bias is not None:
        y = y + bias.float()
    if activation == "silu":
        y = F.silu(y)
    return y.to(x.dtype), window[:, :, 1:].contiguous()


def last_inputs(x_ext: torch.Tensor, W: int) -> torch.Tensor:
    """The next conv state: the last W-1 steps of [B, D, T'] inputs (T' >= W-1), as [B, D, W-1]."""
    return x_ext[:, :, -(W - 1) :].contiguous()

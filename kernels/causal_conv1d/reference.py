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
    """Shapes as in `kernels.causal_conv1d`; computes in float32."""
    B, T, D = x.shape
    W = weight.shape[1]
    x_cf = x.transpose(1, 2)  # [B, D, T]
    if initial_state is None:
        x_ext = F.pad(x_cf, (W - 1, 0))  # [B, D, W-1+T]
    else:
        x_ext = torch.cat([initial_state.to(x.dtype), x_cf], dim=-1)
    y = F.conv1d(
        x_ext.to(torch.float32),
        weight.to(torch.float32).unsqueeze(1),  # [D, 1, W]
        None if bias is None else bias.to(torch.float32),
        groups=D,
    )  # [B, D, T]
    if activation == "silu":
        y = F.silu(y)
    final_state = last_inputs(x_ext, W) if output_final_state else None
    return y.transpose(1, 2).to(x.dtype), final_state


def last_inputs(x_ext: torch.Tensor, W: int) -> torch.Tensor:
    """The next conv state: the last W-1 steps of [B, D, T'] inputs (T' >= W-1), as [B, D, W-1]."""
    return x_ext[:, :, -(W - 1) :].contiguous()

"""Depthwise causal conv1d with a carried state and fused SiLU (the short conv in front of Gated DeltaNet).

Letters: B batch, T time, D channels, W kernel width (4 in Qwen3-Next).
"""

import torch

from kernels.causal_conv1d.reference import causal_conv1d_reference, causal_conv1d_update_reference
from kernels.dispatch import use_triton

_ACTIVATIONS = ("silu", None)


def _check_inputs(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    state: torch.Tensor | None,
    activation: str | None,
) -> None:
    if x.dim() != 3:
        raise ValueError(f"x must be [B, T, D]; got {tuple(x.shape)}")
    B, T, D = x.shape
    if T < 1:
        raise ValueError("x must hold at least one step (T >= 1)")
    if not x.is_floating_point():
        raise ValueError(f"x must be floating point; got {x.dtype}")
    if weight.dim() != 2 or weight.shape[0] != D or weight.shape[1] < 2:
        raise ValueError(f"weight must be [D={D}, W>=2]; got {tuple(weight.shape)}")
    W = weight.shape[1]
    if bias is not None and bias.shape != (D,):
        raise ValueError(f"bias must be [D={D}]; got {tuple(bias.shape)}")
    if state is not None:
        if state.shape != (B, D, W - 1):
            raise ValueError(f"conv state must be [B={B}, D={D}, W-1={W - 1}]; got {tuple(state.shape)}")
        if state.dtype != x.dtype:
            raise ValueError(f"conv state must have x's dtype {x.dtype}; got {state.dtype}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}; got {activation!r}")
    tensors = [t for t in (x, weight, bias, state) if t is not None]
    if len({t.device for t in tensors}) != 1:
        raise ValueError(f"all tensors must be on one device; got {sorted({str(t.device) for t in tensors})}")


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    activation: str | None = "silu",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Depthwise causal conv over a sequence: y_t = act(bias + sum_w weight[:, w] * x_{t-W+1+w}).

    Args:
        x: [B, T, D].
        weight: [D, W].
        bias: [D] or None.
        initial_state: [B, D, W-1] in x's dtype, the W-1 inputs before x (zeros when None).
        output_final_state: return the last W-1 inputs as the next state.
        activation: "silu" (fused) or None.
    Returns:
        y: [B, T, D] in x's dtype, and the final state [B, D, W-1] in x's dtype or None.
    """
    _check_inputs(x, weight, bias, initial_state, activation)
    if use_triton(x):
        from kernels.causal_conv1d.triton import causal_conv1d_triton

        return causal_conv1d_triton(x, weight, bias, initial_state, output_final_state, activation)
    return causal_conv1d_reference(x, weight, bias, initial_state, output_final_state, activation)


def causal_conv1d_update(
    x: torch.Tensor,
    conv_state: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = "silu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step of `causal_conv1d`.

    Args:
        x: [B, D], the new input.
        conv_state: [B, D, W-1] in x's dtype, the previous W-1 inputs (not modified).
        weight, bias, activation: as in `causal_conv1d`.
    Returns:
        y: [B, D] in x's dtype, and the new state [B, D, W-1].
    """
    if x.dim() != 2:
        raise ValueError(f"x must be [B, D] for one decoding step; got {tuple(x.shape)}")
    if use_triton(x):
        y, new_state = causal_conv1d(x.unsqueeze(1), weight, bias, conv_state, True, activation)
        return y.squeeze(1), new_state
    _check_inputs(x.unsqueeze(1), weight, bias, conv_state, activation)
    return causal_conv1d_update_reference(x, conv_state, weight, bias, activation)

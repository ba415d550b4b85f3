"""Random inputs for the kernels, shared by tests/kernels and bench/kernels."""

import torch
import torch.nn.functional as F


def gated_delta_rule_inputs(
    B: int,
    T: int,
    H: int,
    HV: int,
    K: int,
    V: int,
    with_state: bool,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor | None]:
    """q, k [B, T, H, K] and v [B, T, HV, V] in `dtype`; g, beta [B, T, HV] and initial_state [B, HV, K, V]
    (or None) in float32.

    k has unit rows (as after Qwen3-Next's L2 norm: the delta rule is only stable for beta * |k|² < 2), g is a
    log-sigmoid (mostly mild decay) and beta lies in (0, 1).
    """
    gen = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, device=device)

    return {
        "q": randn(B, T, H, K).to(dtype),
        "k": F.normalize(randn(B, T, H, K), dim=-1).to(dtype),
        "v": randn(B, T, HV, V).to(dtype),
        "g": F.logsigmoid(randn(B, T, HV) + 3),
        "beta": torch.rand(B, T, HV, generator=gen, device=device),
        "initial_state": randn(B, HV, K, V) if with_state else None,
    }

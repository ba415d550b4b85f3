"""Random inputs for the kernels, shared by tests/kernels and bench/kernels."""

import torch
import torch.nn.functional as F


def gated_delta_rule_inputs(
    B: int, T: int, H: int, HV: int, K: int, V: int, with_state: bool, seed: int = 0
) -> dict[str, torch.Tensor | None]:
    """q, k [B, T, H, K], v [B, T, HV, V], g, beta [B, T, HV] float32, initial_state [B, HV, K, V] or None.

    k has unit rows (as after Qwen3-Next's L2 norm: the delta rule is only stable for beta * |k|² < 2), g is a
    log-sigmoid (mostly mild decay) and beta lies in (0, 1).
    """
    gen = torch.Generator().manual_seed(seed)
    return {
        "q": torch.randn(B, T, H, K, generator=gen),
        "k": F.normalize(torch.randn(B, T, H, K, generator=gen), dim=-1),
        "v": torch.randn(B, T, HV, V, generator=gen),
        "g": F.logsigmoid(torch.randn(B, T, HV, generator=gen) + 3),
        "beta": torch.rand(B, T, HV, generator=gen),
        "initial_state": torch.randn(B, HV, K, V, generator=gen) if with_state else None,
    }

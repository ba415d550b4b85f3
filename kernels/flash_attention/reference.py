"""Plain-PyTorch attention with log-sum-exp: the scores of the whole block are materialised (the oracle).
Letters as in `kernels.flash_attention`."""

import torch


def attention_with_lse_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, causal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale  # [B, H, Tq, Tk]
    if causal:
        scores = scores.masked_fill(torch.ones_like(scores[0, 0], dtype=torch.bool).triu(1), float("-inf"))
    lse = scores.logsumexp(-1)  # [B, H, Tq]
    return ((scores - lse[..., None]).exp() @ v.float()).to(q.dtype), lse

"""Plain-PyTorch gated delta rule: the numerical reference for the Triton kernels and the CPU production path.

Recurrence per value head (S is [K, V], float32):
    S_t = exp(g_t) * S_{t-1}
    S_t = S_t + k_t ⊗ beta_t * (v_t - S_tᵀ k_t)
    o_t = S_tᵀ (scale * q_t)
Letters: B batch, T time, H query/key heads, HV value heads (a multiple of H), K key dim, V value dim,
N chunks in a block, C chunk length.
"""

import torch
import torch.nn.functional as F

CHUNK_SIZE = 64
# Chunks processed together by the batched (intra-chunk) part of the reference. Bounds working memory to
# O(CHUNKS_PER_BLOCK * C²) per head while keeping the batched matmuls large enough to be fast on CPU.
CHUNKS_PER_BLOCK = 16
# float32's least normal is e^-87.3: below it exp returns ~0 anyway, but through a path ~10x slower on CPU.
MIN_LOG_DECAY = -87.0


def l2norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / ||x|| over the last dim, with fla's epsilon placement (inside the square root)."""
    return x * torch.rsqrt((x * x).sum(dim=-1, keepdim=True) + eps)


def _decay(log_decay: torch.Tensor) -> torch.Tensor:
    """exp of a log decay (<= 0), clamped at MIN_LOG_DECAY to stay on exp's fast path."""
    return log_decay.clamp(min=MIN_LOG_DECAY).exp()


def _heads_first_fp32(x: torch.Tensor, group: int) -> torch.Tensor:
    """[B, T, H, D] -> [B, H*group, T, D] in float32, each head repeated for its `group` value heads."""
    if group > 1:
        x = x.repeat_interleave(group, dim=2)
    return x.transpose(1, 2).to(torch.float32)


def _initial_state_fp32(
    initial_state: torch.Tensor | None, shape: tuple[int, ...], device: torch.device
) -> torch.Tensor:
    if initial_state is None:
        return torch.zeros(shape, dtype=torch.float32, device=device)
    return initial_state.to(torch.float32, copy=True)


def chunk_gated_delta_rule_reference(
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
    """Chunked (UT transform) gated delta rule in float32; shapes as in `kernels.chunk_gated_delta_rule`."""
    B, T, H, K = q.shape
    HV, V = v.shape[2:]
    group = HV // H
    C = CHUNK_SIZE
    state = _initial_state_fp32(initial_state, (B, HV, K, V), q.device)  # [B, HV, K, V]
    o = torch.empty(B, T, HV, V, dtype=v.dtype, device=v.device)
    strictly_upper = torch.ones(C, C, dtype=torch.bool, device=q.device).triu(1)

    block_len = C * CHUNKS_PER_BLOCK
    for start in range(0, T, block_len):
        end = min(start + block_len, T)
        L = end - start
        pad = (-L) % C
        qb, kb = (_heads_first_fp32(x[:, start:end], group) for x in (q, k))  # [B, HV, L, K]
        if use_qk_l2norm_in_kernel:
            qb, kb = l2norm(qb), l2norm(kb)
        qb = qb * scale
        vb = _heads_first_fp32(v[:, start:end], 1)  # [B, HV, L, V]
        gb, betab = (x[:, start:end].transpose(1, 2).to(torch.float32) for x in (g, beta))  # [B, HV, L]
        # Padding with k = v = g = beta = 0 leaves the state untouched: the last chunk needs no special case.
        # [B, HV, N, C, K or V]
        qb, kb, vb = (F.pad(x, (0, 0, 0, pad)).unflatten(2, (-1, C)) for x in (qb, kb, vb))
        gb, betab = (F.pad(x, (0, pad)).unflatten(2, (-1, C)) for x in (gb, betab))  # [B, HV, N, C]

        g_cum = gb.cumsum(-1)  # [B, HV, N, C]: log decay from the chunk start to each position
        # decay[i, j] = exp(g_cum_i - g_cum_j) for j <= i, else 0; the exponent is clamped to <= 0 first so
        # that j > i cannot overflow.
        decay = _decay((g_cum.unsqueeze(-1) - g_cum.unsqueeze(-2)).clamp(max=0.0))
        decay = decay.masked_fill_(strictly_upper, 0.0)  # [B, HV, N, C, C]
        start_decay = _decay(g_cum).unsqueeze(-1)  # [B, HV, N, C, 1]: from the chunk start to each position
        k_beta = kb * betab.unsqueeze(-1)  # [B, HV, N, C, K]
        # UT transform: A = (I + strict_lower(diag(beta) K Kᵀ ⊙ decay))⁻¹,
        # u = A (beta v), w = A (beta k exp(g_cum)); solved by substitution instead of forming A.
        ut_system = (k_beta @ kb.transpose(-1, -2)) * decay  # [B, HV, N, C, C]
        rhs = torch.cat([vb * betab.unsqueeze(-1), k_beta * start_decay], dim=-1)
        uw = torch.linalg.solve_triangular(ut_system, rhs, upper=False, unitriangular=True)
        u, w = uw.split([V, K], dim=-1)  # [B, HV, N, C, V], [B, HV, N, C, K]
        attn = (qb @ kb.transpose(-1, -2)) * decay  # [B, HV, N, C, C], causal within the chunk
        q_decayed = qb * start_decay  # reads the state as it was at the chunk start
        k_decayed = kb * _decay(g_cum[..., -1:] - g_cum).unsqueeze(-1)  # writes decayed to the chunk end
        chunk_decay = _decay(g_cum[..., -1])[..., None, None]  # [B, HV, N, 1, 1]

        ob = torch.empty(B, HV, qb.shape[2], C, V, dtype=torch.float32, device=q.device)
        for n in range(qb.shape[2]):
            v_new = u[:, :, n] - w[:, :, n] @ state  # [B, HV, C, V]: the part of v the state does not predict
            ob[:, :, n] = q_decayed[:, :, n] @ state + attn[:, :, n] @ v_new
            state = state * chunk_decay[:, :, n] + k_decayed[:, :, n].transpose(-1, -2) @ v_new
        o[:, start:end] = ob.flatten(2, 3)[:, :, :L].transpose(1, 2)
    return o, (state if output_final_state else None)


def fused_recurrent_gated_delta_rule_reference(
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
    """Token-by-token gated delta rule in float32; shapes as in `kernels.fused_recurrent_gated_delta_rule`."""
    B, T, H, K = q.shape
    HV, V = v.shape[2:]
    group = HV // H
    qf, kf = (_heads_first_fp32(x, group) for x in (q, k))  # [B, HV, T, K]
    if use_qk_l2norm_in_kernel:
        qf, kf = l2norm(qf), l2norm(kf)
    qf = qf * scale
    vf = _heads_first_fp32(v, 1)  # [B, HV, T, V]
    gf, betaf = (x.transpose(1, 2).to(torch.float32) for x in (g, beta))  # [B, HV, T]
    state = _initial_state_fp32(initial_state, (B, HV, K, V), q.device)  # [B, HV, K, V]
    o = torch.empty(B, HV, T, V, dtype=torch.float32, device=q.device)
    for t in range(T):
        state = state * gf[:, :, t].exp()[..., None, None]
        k_t = kf[:, :, t]  # [B, HV, K]
        delta = (vf[:, :, t] - (k_t.unsqueeze(-1) * state).sum(-2)) * betaf[:, :, t, None]  # [B, HV, V]
        state = state + k_t.unsqueeze(-1) * delta.unsqueeze(-2)
        o[:, :, t] = (qf[:, :, t].unsqueeze(-1) * state).sum(-2)
    return o.transpose(1, 2).to(v.dtype), (state if output_final_state else None)

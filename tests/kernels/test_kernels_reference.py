"""The plain-PyTorch references (the CPU path of the public functions) against transformers' code."""

import pytest
import torch
from transformers.models.qwen3_next import modeling_qwen3_next

from kernels import (
    causal_conv1d,
    causal_conv1d_update,
    chunk_gated_delta_rule,
    fused_recurrent_gated_delta_rule,
)
from kernels.testing import gated_delta_rule_inputs

# The undecorated torch functions: the decorators would swap in fla / causal-conv1d where those are installed.
oracle_chunk = modeling_qwen3_next.torch_chunk_gated_delta_rule.__wrapped__
oracle_recurrent = modeling_qwen3_next.torch_recurrent_gated_delta_rule.__wrapped__
oracle_conv_update = modeling_qwen3_next.causal_conv1d_update.__wrapped__

pytestmark = pytest.mark.usefixtures("reference_path")


@pytest.mark.parametrize("T", [1, 63, 65, 200, 1100])
@pytest.mark.parametrize(("H", "HV"), [(2, 2), (2, 4)])
@pytest.mark.parametrize("with_state", [False, True])
def test_gated_delta_rule_matches_transformers(T: int, H: int, HV: int, with_state: bool) -> None:
    x = gated_delta_rule_inputs(B=2, T=T, H=H, HV=HV, K=16, V=32, with_state=with_state)
    q, k, v, g, beta, s0 = x["q"], x["k"], x["v"], x["g"], x["beta"], x["initial_state"]
    kwargs = {"initial_state": s0, "output_final_state": True, "use_qk_l2norm_in_kernel": True}
    o_oracle, s_oracle = oracle_chunk(q, k, v, g, beta, **kwargs)
    o_oracle_rec, s_oracle_rec = oracle_recurrent(q, k, v, g, beta, **kwargs)
    o_chunk, s_chunk = chunk_gated_delta_rule(q, k, v, g, beta, **kwargs)
    o_rec, s_rec = fused_recurrent_gated_delta_rule(q, k, v, g, beta, **kwargs)
    torch.testing.assert_close(o_chunk, o_oracle, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s_chunk, s_oracle, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(o_rec, o_oracle_rec, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s_rec, s_oracle_rec, atol=1e-5, rtol=1e-5)


def test_gated_delta_rule_strong_decay_underflows_cleanly() -> None:
    """Decays of e^-5..e^-20 a step drive in-chunk exponents far below float32's range (the reference clamps
    them to stay on exp's fast path): still the oracle's numbers, nothing infinite or NaN."""
    x = gated_delta_rule_inputs(B=1, T=130, H=2, HV=4, K=16, V=32, with_state=True)
    g = -5 - 15 * torch.rand(x["g"].shape, generator=torch.Generator().manual_seed(1))
    kwargs = {"initial_state": x["initial_state"], "output_final_state": True}
    kwargs["use_qk_l2norm_in_kernel"] = True
    o_oracle, s_oracle = oracle_chunk(x["q"], x["k"], x["v"], g, x["beta"], **kwargs)
    o, s = chunk_gated_delta_rule(x["q"], x["k"], x["v"], g, x["beta"], **kwargs)
    assert torch.isfinite(o).all() and torch.isfinite(s).all()
    torch.testing.assert_close(o, o_oracle, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s, s_oracle, atol=1e-5, rtol=1e-5)


def test_gated_delta_rule_scale_and_no_l2norm() -> None:
    # transformers always scales by K**-0.5: folding another scale into q gives the oracle for `scale`.
    x = gated_delta_rule_inputs(B=1, T=70, H=2, HV=2, K=16, V=16, with_state=False)
    scale = 0.3
    q_folded = x["q"] * (scale * 16**0.5)
    o_oracle, _ = oracle_chunk(q_folded, x["k"], x["v"], x["g"], x["beta"])
    for fn in (chunk_gated_delta_rule, fused_recurrent_gated_delta_rule):
        o, final_state = fn(x["q"], x["k"], x["v"], x["g"], x["beta"], scale=scale)
        assert final_state is None
        torch.testing.assert_close(o, o_oracle, atol=1e-5, rtol=1e-5)


def test_gated_delta_rule_bf16_keeps_dtypes() -> None:
    x = gated_delta_rule_inputs(B=1, T=65, H=1, HV=2, K=16, V=16, with_state=True)
    q, k, v = (x[name].to(torch.bfloat16) for name in ("q", "k", "v"))
    o, s = chunk_gated_delta_rule(
        q,
        k,
        v,
        x["g"],
        x["beta"],
        initial_state=x["initial_state"],
        output_final_state=True,
        use_qk_l2norm_in_kernel=True,
    )
    o_oracle, s_oracle = oracle_chunk(
        q,
        k,
        v,
        x["g"],
        x["beta"],
        initial_state=x["initial_state"],
        output_final_state=True,
        use_qk_l2norm_in_kernel=True,
    )
    assert o.dtype == torch.bfloat16 and s.dtype == torch.float32
    torch.testing.assert_close(o, o_oracle, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(s, s_oracle, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("fn", [chunk_gated_delta_rule, fused_recurrent_gated_delta_rule])
def test_gated_delta_rule_state_carries_across_calls(fn) -> None:
    x = gated_delta_rule_inputs(B=2, T=150, H=1, HV=2, K=16, V=16, with_state=True)
    names = ("q", "k", "v", "g", "beta")
    o_whole, s_whole = fn(*(x[n] for n in names), initial_state=x["initial_state"], output_final_state=True)
    state, outputs = x["initial_state"], []
    for start, end in ((0, 1), (1, 64), (64, 129), (129, 150)):
        o, state = fn(*(x[n][:, start:end] for n in names), initial_state=state, output_final_state=True)
        outputs.append(o)
    torch.testing.assert_close(torch.cat(outputs, dim=1), o_whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state, s_whole, atol=1e-5, rtol=1e-5)


def test_gated_delta_rule_rejects_bad_inputs() -> None:
    x = gated_delta_rule_inputs(B=1, T=4, H=2, HV=3, K=16, V=16, with_state=False)
    with pytest.raises(ValueError, match="multiple"):
        chunk_gated_delta_rule(x["q"], x["k"], x["v"], x["g"], x["beta"])
    x = gated_delta_rule_inputs(B=1, T=4, H=2, HV=2, K=16, V=16, with_state=True)
    with pytest.raises(ValueError, match="float32"):
        chunk_gated_delta_rule(**dict(x, initial_state=x["initial_state"].half()))
    with pytest.raises(ValueError, match="g and beta"):
        fused_recurrent_gated_delta_rule(x["q"], x["k"], x["v"], x["g"][:, :2], x["beta"])
    with pytest.raises(ValueError, match="one dtype"):
        chunk_gated_delta_rule(x["q"], x["k"], x["v"].double(), x["g"], x["beta"])


@pytest.mark.parametrize("T", [1, 3, 70])
@pytest.mark.parametrize("activation", ["silu", None])
@pytest.mark.parametrize("with_bias", [False, True])
def test_causal_conv1d_matches_transformers(T: int, activation: str | None, with_bias: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    B, D, W = 2, 24, 4
    x = torch.randn(B, T, D, generator=gen)
    weight = torch.randn(D, W, generator=gen)
    bias = torch.randn(D, generator=gen) if with_bias else None
    state = torch.randn(B, D, W - 1, generator=gen)
    oracle_state = state.clone()  # updated in place by the oracle
    y_oracle = oracle_conv_update(x.transpose(1, 2), oracle_state, weight, bias, activation).transpose(1, 2)
    y, final_state = causal_conv1d(x, weight, bias, state, output_final_state=True, activation=activation)
    torch.testing.assert_close(y, y_oracle)
    torch.testing.assert_close(final_state, oracle_state)
    # No state means zeros before the sequence.
    y_zero, no_state = causal_conv1d(x, weight, bias, activation=activation)
    y_zero_oracle = oracle_conv_update(x.transpose(1, 2), torch.zeros_like(state), weight, bias, activation)
    assert no_state is None
    torch.testing.assert_close(y_zero, y_zero_oracle.transpose(1, 2))


def test_causal_conv1d_update_steps_equal_one_call() -> None:
    gen = torch.Generator().manual_seed(2)
    B, T, D, W = 2, 5, 8, 4
    x = torch.randn(B, T, D, generator=gen).to(torch.bfloat16)
    weight, bias = torch.randn(D, W, generator=gen), torch.randn(D, generator=gen)
    y_whole, state_whole = causal_conv1d(x, weight, bias, output_final_state=True)
    state = torch.zeros(B, D, W - 1, dtype=torch.bfloat16)
    for t in range(T):
        y_t, state = causal_conv1d_update(x[:, t], state, weight, bias)
        assert y_t.dtype == torch.bfloat16
        torch.testing.assert_close(y_t, y_whole[:, t])
    torch.testing.assert_close(state, state_whole)


def test_causal_conv1d_rejects_bad_inputs() -> None:
    x, weight = torch.randn(1, 4, 8), torch.randn(8, 4)
    with pytest.raises(ValueError, match="weight"):
        causal_conv1d(x, weight[:4])
    with pytest.raises(ValueError, match="conv state"):
        causal_conv1d(x, weight, initial_state=torch.zeros(1, 8, 4))
    with pytest.raises(ValueError, match="activation"):
        causal_conv1d(x, weight, activation="gelu")
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        causal_conv1d_update(x, torch.zeros(1, 8, 3), weight)

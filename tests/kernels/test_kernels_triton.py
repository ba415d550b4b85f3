"""Each Triton kernel against its plain-PyTorch reference (on CPU in Triton's interpreter; see conftest)."""

import pytest
import torch
import torch.nn.functional as F

from kernels import (
    causal_conv1d,
    causal_conv1d_update,
    chunk_gated_delta_rule,
    fused_recurrent_gated_delta_rule,
)
from kernels.causal_conv1d.reference import causal_conv1d_reference
from kernels.gated_delta_rule.reference import (
    chunk_gated_delta_rule_reference,
    fused_recurrent_gated_delta_rule_reference,
)
from kernels.testing import gated_delta_rule_inputs

pytestmark = pytest.mark.usefixtures("triton_path")

GDR_NAMES = ("q", "k", "v", "g", "beta")
TOLERANCE = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.bfloat16: {"atol": 5e-2, "rtol": 5e-2}}


def assert_gdr_matches_reference(kernel, reference, x: dict, l2norm: bool = True) -> None:
    kwargs = {
        "initial_state": x["initial_state"],
        "output_final_state": True,
        "use_qk_l2norm_in_kernel": l2norm,
    }
    o, state = kernel(*(x[n] for n in GDR_NAMES), **kwargs)
    o_ref, state_ref = reference(*(x[n] for n in GDR_NAMES), scale=x["q"].shape[-1] ** -0.5, **kwargs)
    assert o.dtype == x["v"].dtype and state.dtype == torch.float32
    torch.testing.assert_close(o, o_ref, **TOLERANCE[x["q"].dtype])
    torch.testing.assert_close(state, state_ref, **TOLERANCE[x["q"].dtype])


@pytest.mark.parametrize("T", [1, 63, 65, 200])
@pytest.mark.parametrize(("H", "HV"), [(2, 2), (1, 2)])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunk_matches_reference(device: torch.device, T: int, H: int, HV: int, with_state: bool) -> None:
    x = gated_delta_rule_inputs(
        device=device, dtype=torch.float32, B=1, T=T, H=H, HV=HV, K=16, V=32, with_state=with_state
    )
    assert_gdr_matches_reference(chunk_gated_delta_rule, chunk_gated_delta_rule_reference, x)


@pytest.mark.parametrize("T", [65, 200])
def test_chunk_bf16_matches_reference(device: torch.device, T: int) -> None:
    x = gated_delta_rule_inputs(
        device=device, dtype=torch.bfloat16, B=2, T=T, H=1, HV=2, K=32, V=16, with_state=True
    )
    assert_gdr_matches_reference(chunk_gated_delta_rule, chunk_gated_delta_rule_reference, x)


def test_chunk_strong_decay_without_l2norm_wide_values(device: torch.device) -> None:
    # Decays of ~exp(-3) a step underflow within a chunk: nothing may turn into inf or NaN.
    # V=64 splits the state scan into V blocks.
    x = gated_delta_rule_inputs(
        device=device, dtype=torch.float32, B=1, T=130, H=1, HV=1, K=16, V=64, with_state=True
    )
    x["g"] = F.logsigmoid(torch.randn_like(x["g"])) * 4
    assert_gdr_matches_reference(chunk_gated_delta_rule, chunk_gated_delta_rule_reference, x, l2norm=False)


@pytest.mark.parametrize("T", [1, 63, 65, 200])
@pytest.mark.parametrize(("H", "HV", "with_state"), [(1, 1, False), (1, 2, True)])
def test_fused_recurrent_matches_reference(
    device: torch.device, T: int, H: int, HV: int, with_state: bool
) -> None:
    x = gated_delta_rule_inputs(
        device=device, dtype=torch.float32, B=1, T=T, H=H, HV=HV, K=16, V=16, with_state=with_state
    )
    assert_gdr_matches_reference(
        fused_recurrent_gated_delta_rule, fused_recurrent_gated_delta_rule_reference, x
    )


@pytest.mark.parametrize("T", [1, 65])
def test_fused_recurrent_bf16_matches_reference(device: torch.device, T: int) -> None:
    x = gated_delta_rule_inputs(
        device=device, dtype=torch.bfloat16, B=2, T=T, H=1, HV=2, K=16, V=16, with_state=True
    )
    assert_gdr_matches_reference(
        fused_recurrent_gated_delta_rule, fused_recurrent_gated_delta_rule_reference, x
    )


@pytest.mark.parametrize("fn", [chunk_gated_delta_rule, fused_recurrent_gated_delta_rule])
def test_state_carried_across_calls_equals_one_call(device: torch.device, fn) -> None:
    x = gated_delta_rule_inputs(
        device=device, dtype=torch.float32, B=1, T=150, H=1, HV=2, K=16, V=16, with_state=True
    )
    o_whole, s_whole = fn(
        *(x[n] for n in GDR_NAMES), initial_state=x["initial_state"], output_final_state=True
    )
    state, outputs = x["initial_state"], []
    for start, end in ((0, 1), (1, 64), (64, 129), (129, 150)):
        o, state = fn(*(x[n][:, start:end] for n in GDR_NAMES), initial_state=state, output_final_state=True)
        outputs.append(o)
    torch.testing.assert_close(torch.cat(outputs, dim=1), o_whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state, s_whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("T", [1, 2, 70])
@pytest.mark.parametrize(
    ("with_state", "with_bias", "activation"), [(False, True, "silu"), (True, False, None)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_causal_conv1d_matches_reference(
    device: torch.device,
    T: int,
    with_state: bool,
    with_bias: bool,
    activation: str | None,
    dtype: torch.dtype,
) -> None:
    gen = torch.Generator().manual_seed(3)
    B, D, W = 2, 160, 4  # D spans two channel blocks, the second partial
    x = torch.randn(B, T, D, generator=gen).to(device, dtype)
    weight = torch.randn(D, W, generator=gen).to(device, dtype)
    bias = torch.randn(D, generator=gen).to(device, dtype) if with_bias else None
    state = torch.randn(B, D, W - 1, generator=gen).to(device, dtype) if with_state else None
    y, final_state = causal_conv1d(x, weight, bias, state, output_final_state=True, activation=activation)
    y_ref, final_ref = causal_conv1d_reference(x, weight, bias, state, True, activation)
    assert y.dtype == dtype
    torch.testing.assert_close(y, y_ref, **TOLERANCE[dtype])
    torch.testing.assert_close(final_state, final_ref, atol=0, rtol=0)


def test_causal_conv1d_update_matches_reference(device: torch.device) -> None:
    gen = torch.Generator().manual_seed(4)
    B, D, W = 3, 48, 4
    x = torch.randn(B, D, generator=gen).to(device)
    state = torch.randn(B, D, W - 1, generator=gen).to(device)
    weight, bias = torch.randn(D, W, generator=gen).to(device), torch.randn(D, generator=gen).to(device)
    y, new_state = causal_conv1d_update(x, state, weight, bias)
    y_ref, new_ref = causal_conv1d_reference(x.unsqueeze(1), weight, bias, state, True, "silu")
    torch.testing.assert_close(y, y_ref.squeeze(1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(new_state, new_ref, atol=0, rtol=0)

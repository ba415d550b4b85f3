"""Attention with log-sum-exp: the Triton kernel (interpreted on CPU) and the CPU flash path against the
materialised reference, at lengths that are not multiples of the kernel's blocks."""

import pytest
import torch

from kernels import attention_with_lse
from kernels.flash_attention.reference import attention_with_lse_reference

TOLERANCE = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2}}


def qkv(Tq: int, Tk: int, Dh: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
    generator = torch.Generator(device=device).manual_seed(Tq * 1000 + Tk)
    shapes = [(2, 3, Tq, Dh), (2, 3, Tk, Dh), (2, 3, Tk, Dh)]
    return [torch.randn(*shape, generator=generator, device=device).to(dtype) for shape in shapes]


def assert_matches_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> None:
    scale = q.shape[-1] ** -0.5
    out, lse = attention_with_lse(q, k, v, scale, causal)
    expected_out, expected_lse = attention_with_lse_reference(q, k, v, scale, causal)
    assert out.dtype == q.dtype and lse.dtype == torch.float32 and lse.shape == q.shape[:3]
    torch.testing.assert_close(out, expected_out, **TOLERANCE[q.dtype])
    torch.testing.assert_close(lse, expected_lse, **TOLERANCE[torch.float32])


@pytest.mark.parametrize(("Tq", "Tk"), [(1, 1), (1, 130), (37, 53), (100, 29)])
@pytest.mark.parametrize("Dh", [16, 40])
def test_triton_block_matches_reference(
    triton_path: None, device: torch.device, Tq: int, Tk: int, Dh: int
) -> None:
    assert_matches_reference(*qkv(Tq, Tk, Dh, torch.float32, device), causal=False)


@pytest.mark.parametrize("T", [1, 37, 100])
def test_triton_causal_matches_reference(triton_path: None, device: torch.device, T: int) -> None:
    assert_matches_reference(*qkv(T, T, 16, torch.float32, device), causal=True)


def test_triton_bf16_and_strided_queries_match_reference(triton_path: None, device: torch.device) -> None:
    q, k, v = qkv(70, 70, 32, torch.bfloat16, device)
    # The streaming attention passes views: queries transposed from [B, T, H, Dh], a block's filled part.
    q = q.transpose(1, 2).contiguous().transpose(1, 2)
    assert_matches_reference(q, k[:, :, :45], v[:, :, :45], causal=False)
    assert_matches_reference(q, k, v, causal=True)


@pytest.mark.parametrize("causal", [False, True])
def test_cpu_flash_path_matches_reference(causal: bool) -> None:
    assert_matches_reference(*qkv(9, 9, 16, torch.float32, torch.device("cpu")), causal=causal)


def test_bad_shapes_are_refused() -> None:
    q, k, v = qkv(5, 7, 16, torch.float32, torch.device("cpu"))
    with pytest.raises(ValueError, match="causal attention aligns"):
        attention_with_lse(q, k, v, 0.25, causal=True)
    with pytest.raises(ValueError, match="v must have k's shape"):
        attention_with_lse(q, k, v[:, :, :3], 0.25, causal=False)

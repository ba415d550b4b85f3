"""The model on CUDA (skipped elsewhere; bench/gpu/run.sh runs these on a GPU machine): parity with
transformers in float32 and bfloat16 through the Triton kernels, FP8 parity, a layer split between the GPU and
the host, attention over a 4096-token block without a score matrix, Qwen3.5 parity and MTP drafts."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from kernels import attention_with_lse
from model import GREEDY, HybridLM
from model.fp8 import dequantize_checkpoint, quantize_checkpoint
from model.testing import add_mtp_head
from tests.model.conftest import assert_logits_close, reference_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

LENGTH, CHUNK, BLOCK = 300, 130, 128  # chunks over several KV blocks, none a multiple of the kernels' blocks


def chunked_logits(lm: HybridLM, ids: torch.Tensor) -> torch.Tensor:
    state = lm.new_state(block_size=BLOCK)
    return torch.cat(
        [lm(ids[:, s : s + CHUNK].to(lm.device), state).cpu() for s in range(0, LENGTH, CHUNK)], 1
    )


def random_ids(lm: HybridLM) -> torch.Tensor:
    return torch.randint(0, lm.config.vocab_size, (1, LENGTH), generator=torch.Generator().manual_seed(0))


def test_float32_on_cuda_matches_transformers(checkpoint: Callable[..., Path]) -> None:
    path = checkpoint()
    lm = HybridLM.from_pretrained(path, device="cuda")
    ids = random_ids(lm)
    with torch.no_grad():
        expected = reference_model(path)(ids).logits
    assert_logits_close(chunked_logits(lm, ids), expected, relative=1e-3)


def test_bfloat16_on_cuda_drifts_no_more_than_transformers_bfloat16(checkpoint: Callable[..., Path]) -> None:
    path = checkpoint()
    lm = HybridLM.from_pretrained(path, device="cuda", dtype=torch.bfloat16)
    ids = random_ids(lm)
    with torch.no_grad():
        exact = reference_model(path)(ids).logits
        reference_bf16 = reference_model(path, torch.bfloat16).cuda()(ids.cuda()).logits.float().cpu()
    our_error = (chunked_logits(lm, ids) - exact).abs().mean().item()
    # Our Triton kernels multiply bf16 operands on the tensor cores; transformers' fallback kernels upcast
    # to float32 inside: a few times its drift is expected, a broken kernel is far off.
    assert 0 < our_error <= 4 * (reference_bf16 - exact).abs().mean().item()


def test_fp8_on_cuda_matches_its_dequantized_weights(checkpoint: Callable[..., Path], tmp_path: Path) -> None:
    fp8_path = quantize_checkpoint(checkpoint(), tmp_path / "fp8")
    lm = HybridLM.from_pretrained(fp8_path, device="cuda", dtype=torch.bfloat16)
    oracle = HybridLM.from_pretrained(
        dequantize_checkpoint(fp8_path, tmp_path / "dequantized"), device="cuda", dtype=torch.bfloat16
    )
    ids = random_ids(lm)
    assert_logits_close(chunked_logits(lm, ids), chunked_logits(oracle, ids), relative=1e-2)


def test_layers_split_between_gpu_and_host_match_transformers(checkpoint: Callable[..., Path]) -> None:
    path = checkpoint()
    lm = HybridLM.from_pretrained(path, device=["cuda", "cpu"])
    assert [d.type for d in lm.layer_devices] == ["cuda", "cuda", "cpu", "cpu"]
    ids = random_ids(lm)
    with torch.no_grad():
        expected = reference_model(path)(ids).logits
    assert_logits_close(chunked_logits(lm, ids), expected, relative=1e-3)


def test_a_4096_chunk_over_a_4096_block_never_holds_its_scores() -> None:
    q, k, v = (torch.randn(1, 16, 4096, 256, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    out, lse = attention_with_lse(q, k, v, 256**-0.5, causal=False)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - before
    scores = 16 * 4096 * 4096 * 4  # the [heads × 4096 × 4096] float32 matrix: 1 GiB
    assert extra <= out.nbytes + lse.nbytes + 2**20 < scores / 16


def test_qwen3_5_moe_on_cuda_matches_transformers(checkpoint: Callable[..., Path]) -> None:
    import transformers

    if not hasattr(transformers, "Qwen3_5MoeForCausalLM"):
        pytest.skip(f"transformers {transformers.__version__} has no Qwen3.5")
    path = checkpoint(model_type="qwen3_5_moe_text")
    lm = HybridLM.from_pretrained(path, device="cuda")
    ids = random_ids(lm)
    with torch.no_grad():
        expected = reference_model(path)(ids).logits
    assert_logits_close(chunked_logits(lm, ids), expected, relative=1e-3)


def test_mtp_drafts_give_the_same_tokens_on_cuda(checkpoint: Callable[..., Path]) -> None:
    path = checkpoint(num_hidden_layers=8)
    if not (path / "mtp.safetensors").exists():
        add_mtp_head(path)
    lm = HybridLM.from_pretrained(path, device="cuda")
    prompt = random_ids(lm)[0, :40]
    plain = lm.generate(lm.new_state(block_size=16), prompt, 32, GREEDY, stop_token_ids=[])
    drafted = lm.generate(lm.new_state(block_size=16), prompt, 32, GREEDY, stop_token_ids=[], draft_tokens=3)
    assert drafted == plain

"""The model's parity with transformers holds with the Triton kernels in its path (interpreted on CPU)."""

from pathlib import Path

import torch
from transformers import Qwen3NextForCausalLM

from model import GREEDY, HybridLM
from model.testing import make_random_checkpoint

LENGTH, CHUNK = 70, 37  # a chunk that does not divide the length, and neither is a multiple of 64


def test_chunked_prefill_and_generation_match_transformers(triton_path: None, tmp_path: Path) -> None:
    path = make_random_checkpoint(tmp_path, num_hidden_layers=4)
    lm = HybridLM.from_pretrained(path)
    reference = Qwen3NextForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    ids = torch.randint(0, lm.config.vocab_size, (1, LENGTH), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(ids).logits
    state = lm.new_state()
    ours = torch.cat([lm(ids[:, start : start + CHUNK], state) for start in range(0, LENGTH, CHUNK)], dim=1)
    bound = 1e-4 * expected.abs().max().item()
    assert (ours - expected).abs().max().item() <= bound

    with torch.no_grad():
        greedy = reference.generate(ids, do_sample=False, max_new_tokens=6)[0, LENGTH:].tolist()
    produced = lm.generate(lm.new_state(), ids[0], max_new_tokens=6, sampling=GREEDY, chunk_size=CHUNK)
    assert produced == greedy[: len(produced)] and len(produced) >= 1

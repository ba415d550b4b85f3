"""Prefill throughput and memory of a mid-size random model with Qwen3-Next-80B's head layout on one GPU.

hidden 2048, 16 query / 2 KV heads of 256, 16 / 32 linear-attention heads of 128, 512 experts top-10 of 512
and a shared expert, vocab 151936: the 80B model's layers, fewer of them (--layers, 3 linear : 1 full). The
weights are random, made on the GPU in bf16 (`model.testing.random_model`); so are the token ids.

    python bench/gpu/prefill.py --budget-s 150 --out bench/out/prefill.md

Reads documents of doubling length (from --start tokens) while the next one is expected to end within the
budget; each row: tokens/s, the peak memory beyond the weights, that per token, and the state it ends with.
"""

import argparse
import time
from pathlib import Path

import torch

from model.qwen3_next import ModelArgs
from model.testing import random_model

CONFIG = {
    "model_type": "qwen3_next",
    "vocab_size": 151936,
    "hidden_size": 2048,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 32,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "num_experts": 512,
    "num_experts_per_tok": 10,
    "moe_intermediate_size": 512,
    "shared_expert_intermediate_size": 512,
    "max_position_embeddings": 1 << 24,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--experts", type=int, default=512, help="fewer for a dry run on a small machine")
    parser.add_argument("--start", type=int, default=8192, help="first document length")
    parser.add_argument("--max-tokens", type=int, default=1 << 22)
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--budget-s", type=float, default=150, help="seconds for all measurements together")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=Path("bench/out/prefill.md"))
    cli = parser.parse_args()

    started = time.perf_counter()
    cli.out.parent.mkdir(parents=True, exist_ok=True)
    device = torch.device(cli.device)
    cuda = device.type == "cuda"
    args = ModelArgs.from_hf(CONFIG | {"num_hidden_layers": cli.layers, "num_experts": cli.experts})
    lm = random_model(args, device, torch.bfloat16)
    weights = sum(t.numel() * t.element_size() for t in lm.state_dict().values())
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    lines = [
        f"# Prefill on {name}: {cli.layers} layers of Qwen3-Next-80B's layout ({cli.experts} experts), "
        "random weights, bf16",
        "",
        f"{weights / 2**30:.1f} GiB of weights, {sum(t == 'full_attention' for t in args.layer_types)} "
        f"full-attention layers, chunks of {cli.chunk} tokens, KV blocks of 4096 in bf16 on the GPU.",
        "",
        "| tokens | seconds | tokens/s | peak beyond weights (GiB) | per token (KiB) | state at end (GiB) |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    lm.prefill(torch.randint(0, args.vocab_size, (cli.chunk,)), lm.new_state())  # compile the kernels
    tokens, last_seconds = cli.start, None
    while tokens <= cli.max_tokens:
        spent = time.perf_counter() - started
        # Attention work grows with the square of the length: expect up to 2.5× the last time for 2× tokens.
        if last_seconds is not None and spent + 2.5 * last_seconds > cli.budget_s:
            break
        ids = torch.randint(0, args.vocab_size, (tokens,), generator=torch.Generator().manual_seed(tokens))
        state = lm.new_state()
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        begin = time.perf_counter()
        logits = lm.prefill(ids, state, chunk_size=cli.chunk)
        if cuda:
            torch.cuda.synchronize(device)
        last_seconds = time.perf_counter() - begin
        peak = torch.cuda.max_memory_allocated(device) - weights if cuda else float("nan")
        assert torch.isfinite(logits).all(), "non-finite logits"
        row = (
            f"| {tokens:,} | {last_seconds:.1f} | {tokens / last_seconds:,.0f} | {peak / 2**30:.2f} | "
            f"{peak / tokens / 1024:.1f} | {state.nbytes() / 2**30:.2f} |"
        )
        print(row, flush=True)
        lines.append(row)
        cli.out.write_text("\n".join(lines) + "\n")  # after every row: a run stopped later keeps them
        del state, logits
        tokens *= 2
    print(f"wrote {cli.out}")


if __name__ == "__main__":
    main()

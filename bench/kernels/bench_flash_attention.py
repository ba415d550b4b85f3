"""Attention with log-sum-exp over one KV block, as the streaming attention calls it on Qwen3-Next's layout
(16 query heads, 2 KV heads, head dim 256, bf16): our Triton kernel against the materialised reference and
PyTorch's CUDA flash op (which returns the log-sum-exp too).

    python bench/kernels/bench_flash_attention.py          # GPU
    python bench/kernels/bench_flash_attention.py --smoke  # CPU, tiny sizes, reference column only

Cases: a chunk's causal self-attention [1, 16, T, 256]; and a chunk against one cached block, queries grouped
per KV head [1, 2, 8·T, 256] over [1, 2, 4096, 256]. "peak MiB" is the memory allocated beyond the inputs.
"""

import argparse
from collections.abc import Callable
from pathlib import Path

import torch

from bench.kernels.bench_gated_delta_rule import time_ms
from kernels.flash_attention import torch_flash_attention_with_lse
from kernels.flash_attention.reference import attention_with_lse_reference

OUT_PATH = Path(__file__).resolve().parents[1] / "out" / "bench_flash_attention.md"
Attention = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, float, bool], tuple[torch.Tensor, torch.Tensor]
]


def columns(device: torch.device) -> dict[str, Attention]:
    found: dict[str, Attention] = {"reference": attention_with_lse_reference}
    if device.type == "cuda":
        from kernels.flash_attention.triton import attention_with_lse_triton

        found["ours (Triton)"] = attention_with_lse_triton
        found["torch flash"] = torch_flash_attention_with_lse
    return found


def measure(
    fn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, device: torch.device
):  # noqa: ANN201
    """(ms, peak MiB beyond the inputs, output, lse)."""
    scale = q.shape[-1] ** -0.5
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    out, lse = fn(q, k, v, scale, causal)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == "cuda" else float("nan")
    return time_ms(lambda: fn(q, k, v, scale, causal), device), peak, out, lse


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on CPU: checks that the script runs")
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    cli = parser.parse_args()
    device = torch.device("cpu" if cli.smoke or not torch.cuda.is_available() else "cuda")
    H, KVH, Dh, block, lengths = (4, 2, 32, 128, [64]) if cli.smoke else (16, 2, 256, 4096, [1024, 4096])
    dtype = torch.bfloat16
    lines = [
        f"# Attention with log-sum-exp on {torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}",
        "",
        f"{H} query heads, {KVH} KV heads, head dim {Dh}, {dtype}; Δ against the reference (float32 scores).",
        "",
        "| case | queries | keys | impl | ms | TFLOP/s | peak MiB | max abs Δout | max abs Δlse |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    generator = torch.Generator(device=device).manual_seed(0)
    for T in lengths:
        cases = [
            ("causal chunk", (1, H, T, Dh), (1, H, T, Dh), True),
            ("chunk × block", (1, KVH, (H // KVH) * T, Dh), (1, KVH, block, Dh), False),
        ]
        for name, q_shape, kv_shape, causal in cases:
            q = torch.randn(q_shape, generator=generator, device=device, dtype=dtype)
            k, v = (torch.randn(kv_shape, generator=generator, device=device, dtype=dtype) for _ in range(2))
            flops = 4 * q.shape[1] * q.shape[2] * k.shape[2] * Dh / (2 if causal else 1)
            expected = None
            for impl, fn in columns(device).items():
                try:
                    ms, peak, out, lse = measure(fn, q, k, v, causal, device)
                except Exception as error:  # one column failing (out of memory, say) leaves the others
                    print(f"  {impl} failed: {type(error).__name__}: {error}")
                    continue
                expected = expected or (out.float(), lse.float())
                d_out = (out.float() - expected[0]).abs().max().item()
                d_lse = (lse.float().reshape(expected[1].shape) - expected[1]).abs().max().item()
                row = (
                    f"| {name} | {q.shape[1]}×{q.shape[2]} | {k.shape[2]} | {impl} | {ms:.3f} | "
                    f"{flops / ms / 1e9:.3g} | {peak:.0f} | {d_out:.2e} | {d_lse:.2e} |"
                )
                print(row, flush=True)
                lines.append(row)
            del q, k, v
    cli.out.parent.mkdir(parents=True, exist_ok=True)
    cli.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {cli.out}")


if __name__ == "__main__":
    main()

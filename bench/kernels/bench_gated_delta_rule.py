"""Gated delta rule timings: our Triton kernels against fla (PyPI `fla-core`, where it imports) and our
plain-PyTorch reference, at Qwen3-Next's layout (H=16 q/k heads, HV=32 value heads, K=V=128, bf16, B=1).

    python bench/kernels/bench_gated_delta_rule.py          # GPU: prefill T = 8K, 32K, 128K; decode B = 1..64
    python bench/kernels/bench_gated_delta_rule.py --smoke  # CPU, tiny sizes, reference column only

Prints each row and writes a markdown table to bench/out/bench_gated_delta_rule.md. TFLOP/s count the chunk
algorithm's nominal work (one count for every column): they compare implementations, not hardware peaks.
"""

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch

from kernels.gated_delta_rule.reference import (
    CHUNK_SIZE,
    chunk_gated_delta_rule_reference,
    fused_recurrent_gated_delta_rule_reference,
)
from kernels.testing import gated_delta_rule_inputs

OUT_PATH = Path(__file__).resolve().parents[1] / "out" / "bench_gated_delta_rule.md"
GDR_NAMES = ("q", "k", "v", "g", "beta")
GdrFn = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]
# A column: given the inputs, returns the call to time (any one-off preparation done outside it).
Column = Callable[[dict], Callable[[], tuple[torch.Tensor, torch.Tensor | None]]]


def call_with(fn: GdrFn, x: dict) -> Callable[[], tuple[torch.Tensor, torch.Tensor | None]]:
    return lambda: fn(
        *(x[n] for n in GDR_NAMES),
        scale=x["q"].shape[-1] ** -0.5,
        initial_state=x["initial_state"],
        output_final_state=True,
        use_qk_l2norm_in_kernel=True,
    )


def chunk_flops(T: int, HV: int, K: int, V: int, C: int = CHUNK_SIZE) -> float:
    """Per token and value head: K Kᵀ, w, u, q Kᵀ and attn·v_new within the chunk (2C(3K+2V)), plus the
    state's w·S, kᵀ·v_new and q·S (6KV)."""
    return T * HV * (2 * C * (3 * K + 2 * V) + 6 * K * V)


def recurrent_flops(B: int, HV: int, K: int, V: int) -> float:
    """Per step and value head: decay, kᵀS, rank-1 update and qᵀS, about 7KV."""
    return B * HV * 7 * K * V


def time_ms(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        import triton.testing

        return triton.testing.do_bench(fn, warmup=25, rep=100)
    fn()  # warm-up
    runs, start = 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - start < 0.2:
        fn()
        runs += 1
    return (time.perf_counter() - start) / runs * 1e3


def fla_column(fla_fn: GdrFn) -> Column:
    """fla with our inputs; where it rejects more value than q/k heads, q and k are repeated beforehand."""

    def prepare(x: dict) -> Callable[[], tuple[torch.Tensor, torch.Tensor | None]]:
        call = call_with(fla_fn, x)
        try:
            o, _ = call()
            if o.shape == x["v"].shape:
                return call
        except Exception as error:
            print(f"  fla rejects HV != H ({type(error).__name__}); repeating q, k for it")
        group = x["v"].shape[2] // x["q"].shape[2]
        return call_with(
            fla_fn, dict(x, q=x["q"].repeat_interleave(group, 2), k=x["k"].repeat_interleave(group, 2))
        )

    return prepare


def implementations(device: torch.device, kind: str) -> dict[str, Column]:
    """The columns available here, for kind "chunk" or "recurrent"; the reference comes first."""
    reference = (
        chunk_gated_delta_rule_reference if kind == "chunk" else fused_recurrent_gated_delta_rule_reference
    )
    columns: dict[str, Column] = {"reference": lambda x: call_with(reference, x)}
    if device.type != "cuda":
        return columns
    if kind == "chunk":
        from kernels.gated_delta_rule.chunk import chunk_gated_delta_rule_triton as ours
    else:
        from kernels.gated_delta_rule.fused_recurrent import fused_recurrent_gated_delta_rule_triton as ours
    columns["ours"] = lambda x: call_with(ours, x)
    try:
        from fla.ops import gated_delta_rule as fla_gdr
    except Exception as error:  # fla missing or broken: the column is skipped
        print(f"fla not available ({type(error).__name__}: {error}); skipping its column")
        return columns
    columns["fla"] = fla_column(
        fla_gdr.chunk_gated_delta_rule if kind == "chunk" else fla_gdr.fused_recurrent_gated_delta_rule
    )
    return columns


def run_case(columns: dict[str, Column], x: dict, device: torch.device) -> dict[str, tuple[float, float]]:
    """ms per call and max |o - reference o| for each column; a column that fails is reported and skipped."""
    o_ref = None
    results = {}
    for name, prepare in columns.items():
        try:
            call = prepare(x)
            o = call()[0].float()
            o_ref = o if o_ref is None else o_ref
            results[name] = (time_ms(call, device), (o - o_ref).abs().max().item())
        except Exception as error:
            print(f"  {name} failed: {type(error).__name__}: {error}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on CPU: checks that the script runs")
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    cli = parser.parse_args()

    device = torch.device("cpu" if cli.smoke or not torch.cuda.is_available() else "cuda")
    if cli.smoke:
        H, HV, K, V, lengths, batches = 2, 4, 32, 32, [256], [1, 2]
    else:
        H, HV, K, V, lengths, batches = 16, 32, 128, 128, [8192, 32768, 131072], [1, 4, 16, 64]
    dtype = torch.bfloat16
    lines = [
        f"# Gated delta rule on {torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}",
        "",
        f"H={H}, HV={HV}, K={K}, V={V}, {dtype}, q/k L2-normalised in kernel, initial state given. "
        "max|Δo| is against the first column (the reference).",
        "",
        "| op | T | B | impl | ms | TFLOP/s | max abs Δo |",
        "|---|---|---|---|---|---|---|",
    ]

    def record(op: str, T: int, B: int, flops: float, results: dict[str, tuple[float, float]]) -> None:
        for name, (ms, diff) in results.items():
            row = f"| {op} | {T} | {B} | {name} | {ms:.3f} | {flops / ms / 1e9:.3g} | {diff:.2e} |"
            print(row, flush=True)
            lines.append(row)

    chunk_columns = implementations(device, "chunk")
    for T in lengths:
        x = gated_delta_rule_inputs(
            B=1, T=T, H=H, HV=HV, K=K, V=V, with_state=True, device=device, dtype=dtype
        )
        record("chunk", T, 1, chunk_flops(T, HV, K, V), run_case(chunk_columns, x, device))
        del x
    recurrent_columns = implementations(device, "recurrent")
    for B in batches:
        x = gated_delta_rule_inputs(
            B=B, T=1, H=H, HV=HV, K=K, V=V, with_state=True, device=device, dtype=dtype
        )
        record("decode", 1, B, recurrent_flops(B, HV, K, V), run_case(recurrent_columns, x, device))

    cli.out.parent.mkdir(parents=True, exist_ok=True)
    cli.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {cli.out}")


if __name__ == "__main__":
    main()

"""Prefill throughput and peak memory against document length: HybridLM vs transformers' Qwen3-Next.

Each measurement runs in a fresh subprocess so that its RSS high-water mark (VmHWM) is its own. Rows:
- ours: `HybridLM.prefill` in chunks (bounded working memory), then greedy decode;
- ours + MTP: the same, decoding with speculative drafts from the checkpoint's MTP head (random here, so
  its drafts are rarely accepted: the row shows the cost of verifying them and the acceptance rate);
- transformers, chunked: its model fed the same chunks with a DynamicCache (`logits_to_keep=1`), then decode;
- transformers, single forward: the whole document in one call.
Tokens: the King James Bible (Debian's `bible-kjv`: `apt-get install bible-kjv`; 2.09M tokens through the
test tokenizer, so 1M needs no repetition); and uniform random ids. Writes results/prefill.md and prefill.png.

    python bench/model/bench_prefill.py                      # the default plan, ~55 min on 2 cores
    python bench/model/bench_prefill.py --lengths 16384 --ours-only
    python bench/model/bench_prefill.py --lengths 65536 --hf-single-max 0 --random-max 0 --repeats 3
"""

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
# hidden 256, 4 layers in Qwen3-Next's 3:1 linear/full pattern, 8 experts (top-2) with a shared expert. One
# full-attention layer, because at 1M tokens its quadratic cost is nearly all of the run (~50 min here).
BENCH_CONFIG = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 64,
    "linear_value_head_dim": 64,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 128,
    "shared_expert_intermediate_size": 128,
}
CHUNK = 4096
DECODE_TOKENS = 64
MTP_DRAFT_TOKENS = 2
IMPLEMENTATIONS = {
    "ours": "HybridLM (chunked)",
    "ours_mtp": f"HybridLM + MTP (k={MTP_DRAFT_TOKENS})",
    "hf_chunked": "transformers chunked",
    "hf_single": "transformers single",
}


@dataclass
class Measurement:
    implementation: str
    source: str
    length: int
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    peak_rss_mib: float | None = None
    loaded_rss_mib: float | None = None
    state_mib: float | None = None
    draft_acceptance: float | None = None
    note: str = ""


def rss_high_water_mib() -> float:
    """This process's RSS high-water mark (VmHWM: per address space, unlike ru_maxrss, which survives exec
    and so would report the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def kjv_text() -> str:
    if not shutil.which("bible"):
        raise SystemExit("the King James Bible text is read with Debian's `bible`: apt-get install bible-kjv")
    bible = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True)
    return bible.stdout


def prepare(workdir: Path, max_length: int) -> tuple[Path, dict[str, Path]]:
    from transformers import AutoTokenizer

    from model.testing import add_mtp_head, make_random_checkpoint

    checkpoint = make_random_checkpoint(workdir / "checkpoint", **BENCH_CONFIG)
    add_mtp_head(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    text_ids = torch.tensor(tokenizer.encode(kjv_text(), add_special_tokens=False), dtype=torch.long)
    repeats = -(-max_length // text_ids.numel())
    sources = {
        "kjv": text_ids.repeat(repeats)[:max_length],
        "random": torch.randint(0, len(tokenizer), (max_length,), generator=torch.Generator().manual_seed(0)),
    }
    paths = {}
    for name, ids in sources.items():
        paths[name] = workdir / f"{name}.pt"
        torch.save(ids, paths[name])
    print(f"KJV: {text_ids.numel():,} tokens (repeated x{repeats} for {max_length:,})", flush=True)
    return checkpoint, paths


def worker(implementation: str, checkpoint: str, tokens: str, length: int, threads: int) -> dict[str, float]:
    """Runs one measurement in this (fresh) process and returns its figures."""
    torch.set_num_threads(threads)
    # HybridLM flushes denormals to zero on CPU (x86 computes them ~100x slower); the anchor gets the same,
    # so that the table compares the code, not the setting.
    torch.set_flush_denormal(True)
    ids = torch.load(tokens)[:length]
    if implementation in ("ours", "ours_mtp"):
        from model import GREEDY, HybridLM

        lm = HybridLM.from_pretrained(checkpoint)
        loaded = rss_high_water_mib()
        state = lm.new_state()
        start = time.perf_counter()
        lm.prefill(ids, state, chunk_size=CHUNK)
        prefill_s = time.perf_counter() - start
        state_mib = state.nbytes() / 2**20
        start = time.perf_counter()
        drafts = MTP_DRAFT_TOKENS if implementation == "ours_mtp" else 0
        lm.generate(state, ids[-1:], DECODE_TOKENS, sampling=GREEDY, stop_token_ids=[], draft_tokens=drafts)
        decode_s = time.perf_counter() - start
        assert lm.mtp is not None
        return {
            "prefill_tokens_per_s": length / prefill_s,
            "decode_tokens_per_s": DECODE_TOKENS / decode_s,
            "peak_rss_mib": rss_high_water_mib(),
            "loaded_rss_mib": loaded,
            "state_mib": state_mib,
            "draft_acceptance": lm.mtp.accepted / lm.mtp.drafted if drafts else None,
        }
    from transformers import DynamicCache, Qwen3NextForCausalLM

    model = Qwen3NextForCausalLM.from_pretrained(checkpoint).eval()
    loaded = rss_high_water_mib()
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        start = time.perf_counter()
        step = CHUNK if implementation == "hf_chunked" else length
        for begin in range(0, length, step):
            out = model(ids[None, begin : begin + step], cache=cache, use_cache=True, logits_to_keep=1)
        prefill_s = time.perf_counter() - start
        figures = {"prefill_tokens_per_s": length / prefill_s, "loaded_rss_mib": loaded}
        if implementation == "hf_chunked":
            start = time.perf_counter()
            for _ in range(DECODE_TOKENS):
                token = out.logits[:, -1].argmax(-1, keepdim=True)
                out = model(token, cache=cache, use_cache=True)
            figures["decode_tokens_per_s"] = DECODE_TOKENS / (time.perf_counter() - start)
    figures["peak_rss_mib"] = rss_high_water_mib()
    return figures


def measure(
    implementation: str,
    source: str,
    length: int,
    checkpoint: Path,
    tokens: Path,
    timeout: float,
    threads: int,
    repeats: int,
) -> Measurement:
    command = [
        sys.executable,
        __file__,
        "--worker",
        implementation,
        str(checkpoint),
        str(tokens),
        str(length),
    ]
    command.append(str(threads))
    label = f"{IMPLEMENTATIONS[implementation]:22s} {source:6s} {length:>9,}"
    runs = []
    for _ in range(repeats):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"{label}: timeout after {timeout:.0f}s", flush=True)
            return Measurement(implementation, source, length, note=f"timeout >{timeout:.0f}s")
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["?"])[-1][:80]
            print(f"{label}: failed: {reason}", flush=True)
            return Measurement(implementation, source, length, note=f"failed: {reason}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    # Each figure is its median over the runs (decode speed in particular varies from process to process).
    figures = {
        key: None if runs[0][key] is None else statistics.median(run[key] for run in runs) for key in runs[0]
    }
    result = Measurement(implementation, source, length, **figures)
    print(
        f"{label}: {result.prefill_tokens_per_s:8.0f} tok/s, peak {result.peak_rss_mib:7.0f} MiB", flush=True
    )
    return result


def cell(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def write_table(results: list[Measurement], path: Path, header: str) -> None:
    lines = [
        header,
        "",
        "| implementation | tokens | length | prefill tok/s | decode tok/s | peak RSS MiB "
        "| peak − loaded MiB | state MiB | drafts accepted | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        above = None if r.peak_rss_mib is None else r.peak_rss_mib - r.loaded_rss_mib
        lines.append(
            f"| {IMPLEMENTATIONS[r.implementation]} | {r.source} | {r.length:,} "
            f"| {cell(r.prefill_tokens_per_s)} | {cell(r.decode_tokens_per_s, '{:,.1f}')} "
            f"| {cell(r.peak_rss_mib)} | {cell(above)} "
            f"| {cell(r.state_mib)} | {cell(r.draft_acceptance, '{:.0%}')} | {r.note} |"
        )
    lines.append("")
    for ours in (r for r in results if r.implementation == "ours" and r.prefill_tokens_per_s):
        baseline = next(
            (
                r
                for r in results
                if r.implementation == "hf_chunked" and (r.source, r.length) == (ours.source, ours.length)
            ),
            None,
        )
        if baseline is not None and baseline.prefill_tokens_per_s:
            speedup = ours.prefill_tokens_per_s / baseline.prefill_tokens_per_s
            decode = (ours.decode_tokens_per_s or 0) / (baseline.decode_tokens_per_s or float("inf"))
            lines.append(
                f"- {ours.length:,} tokens ({ours.source}): HybridLM prefill {speedup:.2f}x "
                f"and decode {decode:.2f}x transformers chunked; "
                f"working memory {ours.peak_rss_mib - ours.loaded_rss_mib:,.0f} MiB vs "
                f"{baseline.peak_rss_mib - baseline.loaded_rss_mib:,.0f} MiB."
            )
    measured = [r for r in results if r.implementation == "ours" and r.source == "kjv" and r.peak_rss_mib]
    for shorter, longer in itertools.pairwise(measured):
        lines.append(
            f"- HybridLM from {shorter.length:,} to {longer.length:,} tokens: peak memory grew "
            f"{longer.peak_rss_mib - shorter.peak_rss_mib:,.0f} MiB while its state (the KV cache) grew "
            f"{longer.state_mib - shorter.state_mib:,.0f} MiB."
        )
    path.write_text("\n".join(lines) + "\n")


def plot(results: list[Measurement], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (speed, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    for implementation, label in IMPLEMENTATIONS.items():
        for source, style in (("kjv", "-o"), ("random", "--x")):
            rows = [r for r in results if r.implementation == implementation and r.source == source]
            rows = [r for r in rows if r.prefill_tokens_per_s is not None]
            if not rows:
                continue
            lengths = [r.length for r in rows]
            speed.plot(lengths, [r.prefill_tokens_per_s for r in rows], style, label=f"{label} ({source})")
            above = [r.peak_rss_mib - r.loaded_rss_mib for r in rows]
            memory.plot(lengths, above, style, label=f"{label} ({source})")
            if implementation == "ours" and source == "kjv":
                memory.plot(lengths, [r.state_mib for r in rows], ":", color="grey", label="its KV cache")
    speed.set_yscale("log")
    # linear memory axis: growth in MiB is the point, and the KV cache line shows what growth is owed
    for axis, title in ((speed, "prefill tokens/s"), (memory, "peak RSS above loaded model (MiB)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("document length (tokens)")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    speed.legend(fontsize=7)
    memory.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="16384,65536,262144,1048576")
    parser.add_argument("--ours-max", type=int, default=1048576, help="longest document for HybridLM")
    parser.add_argument("--mtp-max", type=int, default=65536, help="longest document for HybridLM + MTP")
    parser.add_argument("--hf-chunked-max", type=int, default=65536)
    parser.add_argument("--hf-single-max", type=int, default=16384)
    parser.add_argument("--random-max", type=int, default=16384, help="longest random-id document")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads per run")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per measurement")
    parser.add_argument("--ours-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement; figures are medians")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    limits = {
        "ours": args.ours_max,
        "ours_mtp": args.mtp_max,
        "hf_chunked": args.hf_chunked_max,
        "hf_single": args.hf_single_max,
    }
    if args.ours_only:
        limits = {"ours": args.ours_max, "ours_mtp": args.mtp_max}
    threads = args.threads
    started = time.time()
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, tokens = prepare(Path(tmp), max(lengths))
        for length in lengths:
            for implementation in IMPLEMENTATIONS:
                for source in ("kjv", "random"):
                    if source == "random" and length > args.random_max:
                        continue
                    if implementation not in limits:
                        continue
                    if length > limits[implementation]:
                        results.append(
                            Measurement(
                                implementation,
                                source,
                                length,
                                note="not run: over the time budget of this CPU (see --*-max)",
                            )
                        )
                        continue
                    results.append(
                        measure(
                            implementation,
                            source,
                            length,
                            checkpoint,
                            tokens[source],
                            args.timeout,
                            threads,
                            args.repeats,
                        )
                    )
    args.out.mkdir(parents=True, exist_ok=True)
    header = (
        f"Prefill on {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{threads} threads, float32, denormals flushed to zero in every run, chunk {CHUNK}, "
        f"median of {args.repeats} run(s) per row, "
        f"decode {DECODE_TOKENS} tokens after the document. Config: "
        + ", ".join(f"{k}={v}" for k, v in BENCH_CONFIG.items())
        + f". Total bench time {(time.time() - started) / 60:.1f} min."
    )
    write_table(results, args.out / "prefill.md", header)
    plot(results, args.out / "prefill.png")
    print((args.out / "prefill.md").read_text())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))))
    else:
        main()

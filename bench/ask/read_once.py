"""Read once, ask many (issue 10, item 7): what a second question on the same document costs.

- streaming (`hybrid`): a random Qwen3-Next checkpoint of bench/model's bench config reads ≥ 256K tokens of
  real text (the King James Bible: `apt-get install bible-kjv`); time to the first answer (read + answer)
  against a second question on the same document, the kept state's bytes (API and disk), cached_tokens;
- passages (`smollm2`, the default model): a long generated text; the passage index's build time, the first
  question (index built at first use + answer) against a second (index loaded + answer).

Every question goes through the service (real API server and worker): POST /v1/jobs with task "ask".

    python bench/ask/read_once.py [--only hybrid|smollm2] [--tokens 262144] [--smollm-chars 2000000]

"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.ask import service  # noqa: E402
from bench.ask.dataset import planted_document, planted_text  # noqa: E402
from bench.model.bench_prefill import BENCH_CONFIG, kjv_text  # noqa: E402
from docproc.retrieval import PassageIndex  # noqa: E402

QUESTIONS = ("Who was the father of Isaac?", "Where was the garden that God planted?")
PLANTED_QUESTIONS = ("What code opens the old lighthouse door?", "Which city is the town's twin city?")


def table(title: str, first: service.Answer, second: service.Answer, extra: list[tuple[str, str]]) -> None:
    print(f"\n{title}\n")
    print("| | first question | second question, same document |\n|---|---:|---:|")
    print(f"| time to the answer | {first.seconds:.1f} s | {second.seconds:.1f} s |")
    for key in ("input_tokens", "cached_tokens", "output_tokens"):
        print(f"| usage.{key} | {first.usage.get(key, 'n/a')} | {second.usage.get(key, 'n/a')} |")
    for name, value in extra:
        print(f"| {name} | {value} | |")
    print(f"\nSecond question {first.seconds / max(second.seconds, 1e-9):.1f}x faster.")


def streaming(tokens: int, workdir: Path) -> None:
    from transformers import AutoTokenizer

    from model.testing import make_random_checkpoint

    checkpoint = make_random_checkpoint(workdir / "checkpoint", **BENCH_CONFIG)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    text = kjv_text()
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) < tokens:
        raise SystemExit(f"the text has {len(ids)} tokens, fewer than {tokens}")
    document = tokenizer.decode(ids[:tokens])
    live = service.start(workdir, DOCPROC_MODEL=str(checkpoint), DOCPROC_CHUNK_TOKENS="4096")
    try:
        with live.client() as client:
            uploaded = service.upload(client, "kjv.txt", document.encode())
            first = service.ask(live, client, uploaded["id"], QUESTIONS[0])
            state = client.get(f"/v1/documents/{uploaded['id']}").json()["state"]
            second = service.ask(live, client, uploaded["id"], QUESTIONS[1])
    finally:
        live.stop()
    on_disk = sum(
        path.stat().st_size for path in (workdir / "data" / "states" / "documents").rglob("*.safetensors")
    )
    config = ", ".join(f"{key}={value}" for key, value in BENCH_CONFIG.items())
    kept = f"{state['bytes'] / 2**20:,.1f} MiB, {state['tokens']:,} tokens" if state else "none"
    table(
        f"Streaming engine, bench config ({config}); {uploaded['tokens']:,} document tokens (KJV).",
        first,
        second,
        [
            ("kept state (GET /v1/documents/{id})", kept),
            ("state files on disk", f"{on_disk / 2**20:,.1f} MiB"),
        ],
    )


def passages(chars: int, workdir: Path) -> None:
    pages = planted_document(chars)
    started = time.perf_counter()
    index = PassageIndex.build(pages)
    build_s = time.perf_counter() - started
    index.save(workdir / "index")
    index_bytes = sum(path.stat().st_size for path in (workdir / "index").iterdir())
    live = service.start(workdir)
    try:
        with live.client() as client:
            uploaded = service.upload(client, "planted.txt", planted_text(chars).encode())
            first = service.ask(live, client, uploaded["id"], PLANTED_QUESTIONS[0])
            second = service.ask(live, client, uploaded["id"], PLANTED_QUESTIONS[1])
    finally:
        live.stop()
    table(
        f"SmolLM2-135M (passages); {uploaded['tokens']:,} document tokens, {len(pages)} pages.",
        first,
        second,
        [
            ("passage index build (in process)", f"{build_s:.2f} s, {len(index.passages):,} passages"),
            ("index on disk", f"{index_bytes / 2**20:,.1f} MiB"),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["hybrid", "smollm2"])
    parser.add_argument(
        "--tokens", type=int, default=262_144, help="document tokens for the streaming engine"
    )
    parser.add_argument("--smollm-chars", type=int, default=2_000_000, help="size of SmolLM2's long document")
    args = parser.parse_args()
    if args.only in (None, "hybrid"):
        with tempfile.TemporaryDirectory() as workdir:
            streaming(args.tokens, Path(workdir))
    if args.only in (None, "smollm2"):
        with tempfile.TemporaryDirectory() as workdir:
            passages(args.smollm_chars, Path(workdir))


if __name__ == "__main__":
    main()

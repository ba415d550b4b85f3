"""Which grammar library constrains JSON output best here: xgrammar, llguidance or outlines-core.

For each library, on the default model's tokenizer (SmolLM2): whether it imports, the one-off tokenizer
preparation, the compile time of each schema in schemas.json, and the time to compute one token mask,
walking a valid instance of each schema token by token. Run: python bench/grammar/measure.py
"""

import json
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from docproc.engine import resolve_model

SCHEMAS = json.loads((Path(__file__).parent / "schemas.json").read_text())
INSTANCES = [
    {"title": "Solar report", "year": 2024, "published": True},
    {"company": {"name": "Sunrise Cooperative", "country": "Germany"}, "revenue": 1250000.5},
    {"people": [{"name": "Anna Berg", "role": "chair"}, {"name": "Tom Lee", "role": "treasurer"}]},
    {"sentiment": "positive", "topics": ["solar", "members"]},
    {"report": {"kind": "annual", "figures": [{"label": "output", "value": 4200, "unit": "kWh"}]}},
]


def walk(
    tokenizer: Any, make_matcher: Callable[[dict], Any], mask: Callable[[Any], None], accept: Callable
) -> tuple[list[float], list[float]]:
    """(compile ms per schema, mask µs per token over all instances)."""
    compiles, masks = [], []
    for schema, instance in zip(SCHEMAS, INSTANCES, strict=True):
        started = time.perf_counter()
        matcher = make_matcher(schema)
        compiles.append((time.perf_counter() - started) * 1e3)
        for token in tokenizer.encode(json.dumps(instance), add_special_tokens=False):
            started = time.perf_counter()
            mask(matcher)
            masks.append((time.perf_counter() - started) * 1e6)
            assert accept(matcher, token) is not False, "valid instance refused"
    return compiles, masks


def xgrammar_run(tokenizer: Any) -> tuple[float, list[float], list[float]]:
    import xgrammar as xgr

    started = time.perf_counter()
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=len(tokenizer))
    compiler = xgr.GrammarCompiler(info, cache_enabled=False)
    prepare = (time.perf_counter() - started) * 1e3
    bitmask = xgr.allocate_token_bitmask(1, info.vocab_size)
    compiles, masks = walk(
        tokenizer,
        lambda schema: xgr.GrammarMatcher(compiler.compile_json_schema(json.dumps(schema))),
        lambda matcher: matcher.fill_next_token_bitmask(bitmask),
        lambda matcher, token: matcher.accept_token(token),
    )
    return prepare, compiles, masks


def llguidance_run(tokenizer: Any) -> tuple[float, list[float], list[float]]:
    import llguidance
    import llguidance.hf
    import llguidance.torch

    started = time.perf_counter()
    lltokenizer = llguidance.hf.from_tokenizer(tokenizer)
    prepare = (time.perf_counter() - started) * 1e3
    bitmask = llguidance.torch.allocate_token_bitmask(1, lltokenizer.vocab_size)
    compiles, masks = walk(
        tokenizer,
        lambda schema: llguidance.LLMatcher(
            lltokenizer, llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema))
        ),
        lambda matcher: llguidance.torch.fill_next_token_bitmask(matcher, bitmask, 0),
        lambda matcher, token: matcher.consume_token(token),
    )
    return prepare, compiles, masks


def outlines_run(tokenizer: Any) -> tuple[float, list[float], list[float]]:
    from outlines_core import Guide, Index, Vocabulary
    from outlines_core.json_schema import build_regex_from_schema

    started = time.perf_counter()
    # outlines-core wants each token's text (byte-level BPE pieces decoded: "Ġa" is " a").
    tokens: dict[str, list[int]] = {}
    for piece, token_id in tokenizer.get_vocab().items():
        if token_id != tokenizer.eos_token_id:
            tokens.setdefault(tokenizer.convert_tokens_to_string([piece]), []).append(token_id)
    vocabulary = Vocabulary(tokenizer.eos_token_id, tokens)
    prepare = (time.perf_counter() - started) * 1e3
    compiles, masks = walk(
        tokenizer,
        lambda schema: Guide(Index(build_regex_from_schema(json.dumps(schema)), vocabulary)),
        lambda guide: guide.get_tokens(),
        lambda guide, token: guide.advance(token),
    )
    return prepare, compiles, masks


def main() -> None:
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2"))
    print(
        f"SmolLM2 tokenizer, {len(tokenizer)} tokens; {len(SCHEMAS)} schemas (bench/grammar/schemas.json)\n"
    )
    print(
        "| library | version | tokenizer prep ms | compile ms per schema (median, max) "
        "| mask µs/token (median, p99) |"
    )
    print("|---|---|---:|---:|---:|")
    for name, run in (
        ("xgrammar", xgrammar_run),
        ("llguidance", llguidance_run),
        ("outlines-core", outlines_run),
    ):
        package = name.replace("-", "_") if name == "outlines-core" else name
        try:
            prepare, compiles, masks = run(tokenizer)
        except Exception as exc:  # a library that does not install or work here is reported, not fatal
            print(f"| {name} | – | failed: {type(exc).__name__}: {str(exc)[:80]} | | |")
            continue
        masks.sort()
        print(
            f"| {name} | {version(package)} | {prepare:.0f} "
            f"| {statistics.median(compiles):.1f}, {max(compiles):.1f} "
            f"| {statistics.median(masks):.0f}, {masks[int(len(masks) * 0.99)]:.0f} |"
        )


if __name__ == "__main__":
    main()

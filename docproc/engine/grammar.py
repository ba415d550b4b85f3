"""Constrained decoding: a JSON Schema as a mask over the next token, with llguidance.

llguidance was chosen by measurement (bench/grammar/measure.py, README): on the SmolLM2 tokenizer it compiles
a schema in about a millisecond, six times faster than xgrammar and eighty times faster than outlines-core,
and computes a mask in tens of microseconds, far below a token's forward pass.
"""

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import llguidance
import llguidance.hf
import llguidance.numpy
import torch
from torch import Tensor

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Compact JSON: a small model offered free whitespace may spend its whole budget on newlines.
GRAMMAR_OPTIONS = {"whitespace_flexible": False}


class UnsupportedSchema(ValueError):
    code = "invalid_schema"


def grammar_tokenizer(tokenizer: "PreTrainedTokenizerBase", vocab_size: int) -> llguidance.LLTokenizer:
    """The tokenizer as llguidance sees it (about half a second: build once per engine); `vocab_size` is the
    width of the model's logits, which may exceed the tokenizer's."""
    return llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)


class JsonGrammar:
    """Masks logits so that the generated tokens always continue a JSON text valid against the schema, and
    only end (EOS) once it is complete."""

    def __init__(self, tokenizer: llguidance.LLTokenizer, schema: dict[str, Any]) -> None:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema), overrides=GRAMMAR_OPTIONS)
        self.matcher = llguidance.LLMatcher(tokenizer, grammar)
        if self.matcher.is_error():
            raise UnsupportedSchema(f"The schema cannot be turned into a grammar: {self.matcher.get_error()}")
        self.bitmask = llguidance.numpy.allocate_token_bitmask(1, tokenizer.vocab_size)  # [1, ceil(V / 32)]
        self.consumed = 0

    def mask(self, generated: Sequence[int], logits: Tensor) -> Tensor:
        """`logits` [vocab] or [1, vocab], with every token the grammar forbids after `generated`
        (the tokens generated so far, prompt excluded) at -inf."""
        for token in generated[self.consumed :]:
            self.matcher.consume_token(token)
        self.consumed = len(generated)
        llguidance.numpy.fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        # Unpacked here rather than with llguidance.torch, whose torch.compile'd kernel imports Triton (and
        # compiles C++ on CPU) for what is a few vector operations.
        words = torch.from_numpy(self.bitmask[0]).unsqueeze(1)  # [W, 1] int32
        allowed = ((words >> torch.arange(32, dtype=torch.int32)) & 1).flatten().bool()  # [W * 32]
        vocab = logits.shape[-1]
        allowed = torch.nn.functional.pad(allowed[:vocab], (0, max(0, vocab - allowed.numel())))  # [V]
        return logits.masked_fill(~allowed.to(logits.device), float("-inf"))

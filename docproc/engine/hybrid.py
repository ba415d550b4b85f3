"""An engine on our Qwen3-Next hybrid model (model/): it reads a whole document in one streamed pass.

The prompt is laid out so that the document comes before the instruction:
``[system, user turn opening] + document`` is read into the model's state once, and any instruction
(``suffix``) continues from a copy of that state. So a crashed read resumes from a saved state, and a second
task on the same document skips the read entirely.
"""

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import llguidance
import torch

from docproc.engine.base import Generation, StreamingEngine, stopping_between_layers
from docproc.engine.grammar import JsonGrammar, grammar_tokenizer
from docproc.engine.tokenizer import HFTokenizer
from model import INSTRUCT, THINKING, HybridLM, HybridState, Sampling
from model.chat import THINK_END, build_prompt, split_thinking
from model.qwen3_next import QWEN3_5_MULTIMODAL, SUPPORTED_MODEL_TYPES

HYBRID_MODEL_TYPES = SUPPORTED_MODEL_TYPES + QWEN3_5_MULTIMODAL

DOCUMENT_SLOT = "\x00DOCUMENT\x00"


class HybridEngine(StreamingEngine):
    def __init__(
        self, path: Path, *, name: str, device: str | list[str] = "cpu", draft_tokens: int = 0
    ) -> None:
        """`device`: one device, or several to spread the layers over (DOCPROC_DEVICES)."""
        on_cpu = all(d == "cpu" for d in ([device] if isinstance(device, str) else device))
        dtype = torch.float32 if on_cpu else torch.bfloat16
        self.model = HybridLM.from_pretrained(path, device=device, dtype=dtype)
        # Speculative decoding needs the checkpoint's MTP head; without one, plain decoding.
        self.draft_tokens = draft_tokens if self.model.mtp is not None else 0
        self.tokenizer = HFTokenizer.from_path(path)
        self.name = name
        self.context_tokens = self.model.config.max_position_embeddings
        self.tokens_read = 0
        thinking = THINK_END in (self.tokenizer.hf.chat_template or "") and "thinking" in name.lower()
        self.default_sampling = THINKING if thinking else INSTRUCT
        # Saved states are only valid for the exact weights they were computed with.
        self.fingerprint = hashlib.sha256(f"{path.resolve()}:{_weights_stamp(path)}".encode()).hexdigest()[
            :16
        ]

    @cached_property
    def grammar_tokenizer(self) -> llguidance.LLTokenizer:
        return grammar_tokenizer(self.tokenizer.hf, self.model.config.vocab_size)

    def generate(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        sampling: Sampling | None = None,
        stop: threading.Event | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Generation:
        prompt = build_prompt(self.tokenizer.hf, messages)
        return self._continue(self.model.new_state(), prompt, max_new_tokens, sampling, stop, json_schema)

    def document_prompt(self, system: str, document: str, instruction: str) -> tuple[list[int], list[int]]:
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": f"{DOCUMENT_SLOT}\n\n{instruction}"},
        ]
        text = self.tokenizer.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        head, tail = text.split(DOCUMENT_SLOT)
        return self.encode(head) + self.encode(document), self.encode(tail)

    def new_state(self) -> HybridState:
        return self.model.new_state()

    def load_state(self, path: Path) -> HybridState:
        return self.model.load_state(path)

    def read(
        self,
        ids: Sequence[int],
        state: HybridState,
        chunk_tokens: int,
        on_chunk: Callable[[int], None],
        stop: threading.Event | None = None,
    ) -> None:
        start = state.position
        if start < len(ids):
            with stopping_between_layers(self.model.layers, stop):
                self.model.prefill(
                    ids[start:], state, chunk_size=chunk_tokens, on_chunk=lambda n: on_chunk(start + n)
                )
            self.tokens_read += len(ids) - start

    def answer(
        self,
        state: HybridState,
        suffix: Sequence[int],
        max_new_tokens: int,
        sampling: Sampling | None,
        stop: threading.Event | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Generation:
        generation = self._continue(state.clone(), suffix, max_new_tokens, sampling, stop, json_schema)
        return Generation(
            generation.text,
            generation.thinking,
            state.position + generation.input_tokens,
            generation.output_tokens,
        )

    def _continue(
        self,
        state: HybridState,
        prompt: Sequence[int],
        max_new_tokens: int,
        sampling: Sampling | None,
        stop: threading.Event | None,
        json_schema: dict[str, Any] | None = None,
    ) -> Generation:
        grammar = JsonGrammar(self.grammar_tokenizer, json_schema) if json_schema is not None else None
        with stopping_between_layers(self.model.layers, stop):
            new_ids = self.model.generate(
                state,
                prompt,
                max_new_tokens,
                sampling or self.default_sampling,
                draft_tokens=self.draft_tokens,
                token_mask=grammar.mask if grammar is not None else None,
            )
        thinking, answer = split_thinking(self.decode(new_ids))
        return Generation(answer, thinking or None, len(prompt), len(new_ids))


def _weights_stamp(path: Path) -> str:
    return ",".join(
        f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(path.glob("*.safetensors"))
    )


def is_hybrid_checkpoint(path: Path) -> bool:
    config = path / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") in HYBRID_MODEL_TYPES

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
from pathlib import Path

import torch
from transformers import AutoTokenizer

from docproc.engine.base import Engine, Generation, stopping_between_layers
from model import INSTRUCT, THINKING, HybridLM, HybridState, Sampling
from model.chat import THINK_END, build_prompt, split_thinking
from model.qwen3_next import QWEN3_5_MULTIMODAL, SUPPORTED_MODEL_TYPES

HYBRID_MODEL_TYPES = SUPPORTED_MODEL_TYPES + QWEN3_5_MULTIMODAL

DOCUMENT_SLOT = "\x00DOCUMENT\x00"


class HybridEngine(Engine):
    streams_documents = True

    def __init__(
        self, path: Path, *, name: str, device: str | list[str] = "cpu", draft_tokens: int = 0
    ) -> None:
        """`device`: one device, or several to spread the layers over (DOCPROC_DEVICES)."""
        on_cpu = all(d == "cpu" for d in ([device] if isinstance(device, str) else device))
        dtype = torch.float32 if on_cpu else torch.bfloat16
        self.model = HybridLM.from_pretrained(path, device=device, dtype=dtype)
        # Speculative decoding needs the checkpoint's MTP head; without one, plain decoding.
        self.draft_tokens = draft_tokens if self.model.mtp is not None else 0
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.name = name
        self.context_tokens = self.model.config.max_position_embeddings
        thinking = THINK_END in (self.tokenizer.chat_template or "") and "thinking" in name.lower()
        self.default_sampling = THINKING if thinking else INSTRUCT
        # Saved states are only valid for the exact weights they were computed with.
        self.fingerprint = hashlib.sha256(f"{path.resolve()}:{_weights_stamp(path)}".encode()).hexdigest()[
            :16
        ]

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def generate(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        sampling: Sampling | None = None,
        stop: threading.Event | None = None,
    ) -> Generation:
        prompt = build_prompt(self.tokenizer, messages)
        return self._continue(self.model.new_state(), prompt, max_new_tokens, sampling, stop)

    def document_prompt(self, system: str, document: str, instruction: str) -> tuple[list[int], list[int]]:
        """(ids to read into the state: system turn + document, ids of the instruction that follows)."""
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": f"{DOCUMENT_SLOT}\n\n{instruction}"},
        ]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
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
        """Read ids[state.position:] into the state; on_chunk(position) after each chunk.

        Once `stop` is set, raises `Stopped` before the next layer; the state is then half-way through a chunk
        and must be dropped (the checkpoints on_chunk saved stay valid)."""
        start = state.position
        if start < len(ids):
            with stopping_between_layers(self.model.layers, stop):
                self.model.prefill(
                    ids[start:], state, chunk_size=chunk_tokens, on_chunk=lambda n: on_chunk(start + n)
                )

    def answer(
        self,
        state: HybridState,
        suffix: Sequence[int],
        max_new_tokens: int,
        sampling: Sampling | None,
        stop: threading.Event | None = None,
    ) -> Generation:
        """Continue a copy of a document's state with the instruction; the document state stays reusable."""
        generation = self._continue(state.clone(), suffix, max_new_tokens, sampling, stop)
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
    ) -> Generation:
        with stopping_between_layers(self.model.layers, stop):
            sampling = sampling or self.default_sampling
            new_ids = self.model.generate(
                state, prompt, max_new_tokens, sampling, draft_tokens=self.draft_tokens
            )
        thinking, answer = split_thinking(self.tokenizer.decode(new_ids, skip_special_tokens=True))
        return Generation(answer, thinking or None, len(prompt), len(new_ids))


def _weights_stamp(path: Path) -> str:
    return ",".join(
        f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(path.glob("*.safetensors"))
    )


def is_hybrid_checkpoint(path: Path) -> bool:
    config = path / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") in HYBRID_MODEL_TYPES

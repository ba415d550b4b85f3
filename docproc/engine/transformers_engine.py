"""An engine on Hugging Face transformers: any local causal-LM checkpoint directory or GGUF file."""

import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from docproc.engine.base import Engine, Generation, stopping_between_layers
from model.chat import split_thinking
from model.sampling import GREEDY, Sampling

# Small models loop without it.
REPETITION_PENALTY = 1.15


class TransformersEngine(Engine):
    def __init__(self, path: Path, *, name: str, device: str = "cpu") -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval()
        self.name = name
        self.default_sampling = GREEDY
        self.context_tokens = int(getattr(self.model.config, "max_position_embeddings", 4096))
        self.parameters = self.model.num_parameters()
        self.device = device
        # Decoder layers: the stop signal is checked before each one. A model without the usual `layers`
        # list is checked once per forward (each generated token), though not within its prefill.
        self.layers = getattr(self.model.get_decoder(), "layers", [self.model])

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    @torch.inference_mode()
    def generate(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        sampling: Sampling | None = None,
        stop: threading.Event | None = None,
    ) -> Generation:
        sampling = sampling or self.default_sampling
        prompt = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)
        torch.manual_seed(sampling.seed or 0)
        greedy = sampling.temperature == 0
        with stopping_between_layers(self.layers, stop):
            output = self.model.generate(
                **prompt,
                max_new_tokens=max_new_tokens,
                do_sample=not greedy,
                temperature=None if greedy else sampling.temperature,
                top_p=None if greedy else sampling.top_p,
                top_k=None if greedy else sampling.top_k or None,
                repetition_penalty=REPETITION_PENALTY,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        new_ids = output[0, prompt["input_ids"].shape[1] :]
        thinking, answer = split_thinking(self.tokenizer.decode(new_ids, skip_special_tokens=True))
        return Generation(answer, thinking or None, int(prompt["input_ids"].shape[1]), int(new_ids.shape[0]))

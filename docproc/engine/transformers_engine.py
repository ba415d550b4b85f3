"""An engine on Hugging Face transformers: any local causal-LM checkpoint directory or GGUF file."""

import threading
from functools import cached_property
from pathlib import Path
from typing import Any

import llguidance
import torch
from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

from docproc.engine.base import Engine, Generation, stopping_between_layers
from docproc.engine.grammar import JsonGrammar, grammar_tokenizer
from docproc.engine.tokenizer import HFTokenizer
from model.chat import split_thinking
from model.sampling import GREEDY, Sampling

# Small models loop without it.
REPETITION_PENALTY = 1.15


class GrammarLogitsProcessor(LogitsProcessor):
    """Constrained decoding in transformers' generate: each step's scores masked by the grammar."""

    def __init__(self, grammar: JsonGrammar, prompt_tokens: int) -> None:
        self.grammar, self.prompt_tokens = grammar, prompt_tokens

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return self.grammar.mask(input_ids[0, self.prompt_tokens :].tolist(), scores)


class TransformersEngine(Engine):
    def __init__(self, path: Path, *, name: str, device: str = "cpu") -> None:
        self.tokenizer = HFTokenizer.from_path(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval()
        self.name = name
        self.default_sampling = GREEDY
        self.context_tokens = int(getattr(self.model.config, "max_position_embeddings", 4096))
        self.parameters = self.model.num_parameters()
        self.device = device
        # Decoder layers: the stop signal is checked before each one. A model without the usual `layers`
        # list is checked once per forward (each generated token), though not within its prefill.
        self.layers = getattr(self.model.get_decoder(), "layers", [self.model])

    @cached_property
    def grammar_tokenizer(self) -> llguidance.LLTokenizer:
        return grammar_tokenizer(self.tokenizer.hf, self.model.config.vocab_size)

    @torch.inference_mode()
    def generate(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        sampling: Sampling | None = None,
        stop: threading.Event | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Generation:
        sampling = sampling or self.default_sampling
        prompt = self.tokenizer.hf.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)
        prompt_tokens = int(prompt["input_ids"].shape[1])
        processors = LogitsProcessorList()
        if json_schema is not None:
            processors.append(
                GrammarLogitsProcessor(JsonGrammar(self.grammar_tokenizer, json_schema), prompt_tokens)
            )
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
                # The grammar already rules out loops; a penalty would only push JSON off its keys.
                repetition_penalty=None if json_schema is not None else REPETITION_PENALTY,
                logits_processor=processors,
                pad_token_id=self.tokenizer.hf.pad_token_id or self.tokenizer.hf.eos_token_id,
            )
        new_ids = output[0, prompt_tokens:]
        thinking, answer = split_thinking(self.decode(new_ids.tolist()))
        return Generation(answer, thinking or None, prompt_tokens, int(new_ids.shape[0]))

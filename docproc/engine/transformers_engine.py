"""An engine on Hugging Face transformers: any local causal-LM checkpoint directory or GGUF file."""

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import llguidance
import torch
from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList, StaticCache

from docproc.engine.base import BatchEngine, Generation, GenerationRequest, stopping_between_layers
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


class TransformersEngine(BatchEngine):
    def __init__(self, path: Path, *, name: str, device: str = "cpu", batch_size: int = 1) -> None:
        self.tokenizer = HFTokenizer.from_path(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval()
        self.name = name
        self.default_sampling = GREEDY
        self.context_tokens = int(getattr(self.model.config, "max_position_embeddings", 4096))
        self.parameters = self.model.num_parameters()
        self.device = device
        self.batch_size = batch_size
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos) if isinstance(eos, list) else {eos}
        # Decoder layers: the stop signal is checked before each one. A model without the usual `layers`
        # list is checked once per forward (each generated token), though not within its prefill.
        self.layers = getattr(self.model.get_decoder(), "layers", [self.model])

    @cached_property
    def grammar_tokenizer(self) -> llguidance.LLTokenizer:
        return grammar_tokenizer(self.tokenizer.hf, self.model.config.vocab_size)

    def generate_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Requests with equal sampling and length limit run in batches of `batch_size`, prompts of similar
        length together (less padding); a grammar-constrained one runs alone (its grammar follows one
        sequence)."""
        prompts = [
            self.tokenizer.hf.apply_chat_template(request.messages, add_generation_prompt=True)["input_ids"]
            for request in requests
        ]
        groups: dict[tuple[Sampling, int] | int, list[int]] = {}
        for index, request in enumerate(requests):
            key = (
                index
                if request.json_schema is not None
                else (self._sampling(request), request.max_new_tokens)
            )
            groups.setdefault(key, []).append(index)
        results: dict[int, Generation] = {}
        for indices in groups.values():
            indices.sort(key=lambda index: len(prompts[index]))
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                generations = self._generate_batch([requests[i] for i in batch], [prompts[i] for i in batch])
                results.update(zip(batch, generations, strict=True))
        return [results[index] for index in range(len(requests))]

    def _sampling(self, request: GenerationRequest) -> Sampling:
        return request.sampling or self.default_sampling

    @torch.inference_mode()
    def _generate_batch(
        self, requests: list[GenerationRequest], prompts: list[list[int]]
    ) -> list[Generation]:
        """One `generate` over prompts padded on the left, so that every answer starts at the same column."""
        sampling, json_schema = self._sampling(requests[0]), requests[0].json_schema
        longest = max(len(prompt) for prompt in prompts)
        # The pad is the token the chat template's generation prompt ends with: every prompt holds it already,
        # so the repetition penalty (over all input ids) treats a padded row as it would the prompt alone.
        pad = prompts[0][-1]
        input_ids = torch.tensor([[pad] * (longest - len(p)) + p for p in prompts], device=self.device)
        attention_mask = torch.tensor(
            [[0] * (longest - len(p)) + [1] * len(p) for p in prompts], device=self.device
        )
        processors = LogitsProcessorList()
        if json_schema is not None:
            processors.append(
                GrammarLogitsProcessor(JsonGrammar(self.grammar_tokenizer, json_schema), longest)
            )
        torch.manual_seed(sampling.seed or 0)
        greedy = sampling.temperature == 0
        max_new_tokens = requests[0].max_new_tokens
        # Preallocated for exactly this generation: the default cache concatenates every layer's keys and
        # values at each step, which for a batch of 8 costs more than the step's matrix products.
        cache = StaticCache(config=self.model.config, max_cache_len=longest + max_new_tokens)
        with stopping_between_layers(self.layers, [request.stop for request in requests]):
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                cache=cache,
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
        generations = []
        for prompt, row in zip(prompts, output[:, longest:].tolist(), strict=True):
            # A row that ended early is filled with pads after its end-of-sequence token: cut there.
            end = next((i + 1 for i, token in enumerate(row) if token in self.eos_ids), len(row))
            new_ids = row[:end]
            thinking, answer = split_thinking(self.decode(new_ids))
            generations.append(Generation(answer, thinking or None, len(prompt), len(new_ids)))
        return generations

"""An engine on Hugging Face transformers: any local causal-LM checkpoint directory or GGUF file.

Batched rows get the numbers a batch of one gets, so batched greedy text is one-at-a-time text (no near tie
goes the other way): each prompt is read alone; on the CPU the linear layers multiply on oneDNN's packed
weights (a row's product is then the same whatever the others) and in a decoding step each row attends to its
own cached tokens alone."""

import copy
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path

import llguidance
import torch
from jinja2 import TemplateError
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from docproc.engine.base import (
    BatchEngine,
    Generation,
    GenerationRequest,
    in_order,
    stopping_between_layers,
)
from docproc.engine.grammar import JsonGrammar, grammar_tokenizer
from docproc.engine.tokenizer import HFTokenizer
from model.chat import split_thinking
from model.sampling import GREEDY

# Small models loop without it.
REPETITION_PENALTY = 1.15
ATTENTION = "docproc_rows"


class PackedLinear(nn.Module):
    """A linear layer on oneDNN's packed copy of the weights (on the CPU). Its products give a row the same
    numbers whatever the number of rows beside it, once a lone row is doubled (in a wider layer a lone row
    takes another path); and they read the weights once for all of a decoding step's rows, 2-3x faster than
    plain products at 8-32 rows, as fast for one."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach())  # oneDNN's own layout
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)  # [N, K]
        lone = len(rows) == 1
        out = torch.ops.mkldnn._linear_pointwise(
            rows.expand(2, -1) if lone else rows, self.packed, self.bias, "none", [], ""
        )  # [N, M], or [2, M] for a lone row
        return out[: len(rows)].view(*x.shape[:-1], self.out_features)


def pack_linear_layers(model: nn.Module) -> None:
    """Every plain linear layer of `model` (on the CPU) becomes a `PackedLinear`; the dense weights are freed
    unless another module shares them (tied embeddings)."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Linear:
                setattr(parent, name, PackedLinear(child))


class RowCache:
    """Each layer's keys ([R, H, K, S]: a decoding step's few queries multiply keys laid out so 15-20% faster)
    and values ([R, H, S, K]) of a batch, every row from slot 0 and as long as its own sequence. In a decoding
    step the rows attend one by one to their own slots."""

    def __init__(self, rows: int, slots: int) -> None:
        self.rows, self.slots = rows, slots
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.lengths: list[list[int]] = []  # [layer][row]
        #: The cache rows of this step's batch rows, in order.
        self.stepping: list[int] = []

    def fill(self, row: int, read: DynamicCache) -> None:
        """Row `row` takes a prompt read alone."""
        for layer, own in enumerate(read.layers):
            if layer == len(self.keys):
                heads, head_dim = own.keys.shape[1], own.keys.shape[-1]
                self.keys.append(own.keys.new_zeros(self.rows, heads, head_dim, self.slots))
                self.values.append(own.values.new_zeros(self.rows, heads, self.slots, own.values.shape[-1]))
                self.lengths.append([0] * self.rows)
            length = own.keys.shape[2]
            self.keys[layer][row, :, :, :length] = own.keys[0].transpose(1, 2)  # [H, K, T]
            self.values[layer][row, :, :length] = own.values[0]
            self.lengths[layer][row] = length

    def attend(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        scaling: float | None,
        window: int | None,
    ) -> torch.Tensor:
        """One step: query [W, H, 1, K], the new key and value [W, H_kv, 1, K] → [W, 1, H, K]."""
        rows, lengths = self.stepping, self.lengths[layer]
        heads, kv_heads, head_dim = query.shape[1], key.shape[1], query.shape[-1]
        ends = [lengths[row] + 1 for row in rows]
        where = torch.tensor(rows, device=key.device), torch.tensor(ends, device=key.device) - 1
        self.keys[layer][where[0], :, :, where[1]] = key[:, :, 0]  # [W, H_kv, K] into each row's slot
        self.values[layer][where[0], :, where[1]] = value[:, :, 0]
        scaling = head_dim**-0.5 if scaling is None else scaling
        # Head h reads key-value head h // (heads / kv_heads), as transformers' repeat_kv has it.
        grouped = (query * scaling).view(len(rows), kv_heads, heads // kv_heads, head_dim)
        mixed = []
        for index, (row, end) in enumerate(zip(rows, ends, strict=True)):
            lengths[row] = end
            start = 0 if window is None else max(0, end - window)
            scores = grouped[index] @ self.keys[layer][row, :, :, start:end]  # [H_kv, G, T]
            mixed.append(scores.softmax(-1) @ self.values[layer][row, :, start:end])  # [H_kv, G, K]
        return torch.stack(mixed).view(len(rows), 1, heads, head_dim)


def rows_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    rows: RowCache | None = None,
    sliding_window: int | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, but in a decoding step (`rows` given) each row attends alone."""
    if rows is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    return rows.attend(module.layer_idx, query, key, value, scaling, sliding_window), None


def register_rows_attention() -> None:
    """`ATTENTION` for transformers' models, with SDPA's masks. Called when an engine loads its model: the
    registries' modules import Triton, which the kernels' tests must import themselves (after they set
    TRITON_INTERPRET), so not on importing this module."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(ATTENTION, rows_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)


class GrammarLogitsProcessor(LogitsProcessor):
    """Constrained decoding: each step's scores of one row masked by its grammar."""

    def __init__(self, grammar: JsonGrammar, prompt_tokens: int) -> None:
        self.grammar, self.prompt_tokens = grammar, prompt_tokens

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return self.grammar.mask(input_ids[0, self.prompt_tokens :].tolist(), scores)


class TransformersEngine(BatchEngine):
    def __init__(
        self,
        path: Path,
        *,
        name: str,
        device: str = "cpu",
        batch_size: int = 1,
        cache_bytes: int = 1 << 30,
    ) -> None:
        self.tokenizer = HFTokenizer.from_path(path)
        register_rows_attention()
        self.model = (
            AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=ATTENTION)
            .to(device)
            .eval()
        )
        self.parameters = self.model.num_parameters()  # before packing: packed weights are not parameters
        if device == "cpu" and torch.backends.mkldnn.is_available():
            pack_linear_layers(self.model)
        self.name = name
        self.default_sampling = GREEDY
        self.context_tokens = int(getattr(self.model.config, "max_position_embeddings", 4096))
        self.device = device
        self.batch_size = batch_size
        self.cache_bytes = cache_bytes
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos) if isinstance(eos, list) else {eos}
        # Decoder layers: the stop signal is checked before each one. A model without the usual `layers`
        # list is checked once per forward (each generated token), though not within its prefill.
        self.layers = getattr(self.model.get_decoder(), "layers", [self.model])
        #: The last system turn read alone, and its keys and values.
        self.system_read: tuple[list[int], DynamicCache | None] = ([], None)

    @cached_property
    def grammar_tokenizer(self) -> llguidance.LLTokenizer:
        return grammar_tokenizer(self.tokenizer.hf, self.model.config.vocab_size)

    @cached_property
    def cache_bytes_per_token(self) -> int:
        """Keys and values of one token in every layer."""
        config = self.model.config
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        return config.num_hidden_layers * 2 * heads * head_dim * self.model.dtype.itemsize

    def rows_for(self, slots: int, requests: int) -> int:
        """Rows decoded together: at most `batch_size` and `requests`, and no more than `cache_bytes` holds at
        `slots` tokens a row; at least one."""
        fitting = self.cache_bytes // (slots * self.cache_bytes_per_token)
        return max(1, min(self.batch_size, requests, fitting))

    def generate_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return in_order(self.generate_each(requests), len(requests))

    @torch.inference_mode()
    def generate_each(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Generation]]:
        """Continuous batching: the requests in order take the batch's rows (`rows_for` the longest), each
        prompt but its last token read alone into its row's cache; decoding steps run the rows together, and
        a row that ends (its end-of-sequence token or length limit) gives its place to the next request."""
        prompts = [
            self.tokenizer.hf.apply_chat_template(request.messages, add_generation_prompt=True)["input_ids"]
            for request in requests
        ]
        ends = [
            len(prompt) + request.max_new_tokens for prompt, request in zip(prompts, requests, strict=True)
        ]
        cache = RowCache(self.rows_for(max(ends, default=1), len(requests)), max(ends, default=1))
        stops = [request.stop for request in requests]
        waiting = deque(range(len(requests)))
        held: dict[int, int] = {}  # row → request
        choosers: dict[int, Callable[[list[int], torch.Tensor], int]] = {}
        sequences = [list(prompt) for prompt in prompts]
        while waiting or held:
            free = [row for row in range(cache.rows) if row not in held]
            while free and waiting:
                index = waiting.popleft()
                if len(prompts[index]) >= ends[index]:  # no new token asked for
                    yield index, self._generation(prompts[index], sequences[index])
                    continue
                with stopping_between_layers(self.layers, stops):
                    read = self._read(prompts[index][:-1], self._system_turn(requests[index]))
                row = free.pop(0)
                cache.fill(row, read)
                held[row] = index
                choosers[index] = self._chooser(requests[index], len(prompts[index]))
            if not held:
                continue
            cache.stepping = sorted(held)
            with stopping_between_layers(self.layers, stops):
                logits = self._step(cache, [sequences[held[row]] for row in cache.stepping])  # [W, V]
            for position, row in enumerate(cache.stepping):
                index = held[row]
                sequence = sequences[index]
                sequence.append(choosers[index](sequence, logits[position : position + 1]))
                if sequence[-1] in self.eos_ids or len(sequence) >= ends[index]:
                    del held[row]
                    yield index, self._generation(prompts[index], sequence)

    def _system_turn(self, request: GenerationRequest) -> list[int]:
        """The prompt's first tokens that are its system message's turn (none without one, or where the chat
        template will not render a system message alone)."""
        if not request.messages or request.messages[0]["role"] != "system":
            return []
        try:
            return self.tokenizer.hf.apply_chat_template(request.messages[:1])["input_ids"]
        except TemplateError:  # a template that asks for a user turn, say
            return []

    def _read(self, ids: list[int], system_turn: list[int]) -> DynamicCache:
        """The keys and values of `ids`. A prompt that starts with a system turn is always read in two parts,
        so that its numbers do not depend on what was read before: the system turn (kept: the engine's prompts
        share one), then the rest onto a copy of it."""
        decoder = self.model.get_decoder()
        system = len(system_turn)
        split = system if len(ids) > system and ids[:system] == system_turn else 0
        if split and self.system_read[0] != system_turn:
            kept = DynamicCache(config=self.model.config)
            decoder(input_ids=torch.tensor([system_turn], device=self.device), cache=kept, use_cache=True)
            self.system_read = (system_turn, kept)
        read = copy.deepcopy(self.system_read[1]) if split else DynamicCache(config=self.model.config)
        rest = torch.tensor([ids[split:]], device=self.device)  # [1, T - split]
        decoder(input_ids=rest, cache=read, use_cache=True)  # no logits needed
        return read

    def _step(self, cache: RowCache, sequences: list[list[int]]) -> torch.Tensor:
        """One decoding step of the rows `cache.stepping` (their sequences) → their next tokens' logits
        [W, V]."""
        ids = [sequence[-1] for sequence in sequences]
        positions = [len(sequence) - 1 for sequence in sequences]
        return self.model(
            input_ids=torch.tensor(ids, device=self.device)[:, None],  # [W, 1]
            position_ids=torch.tensor(positions, device=self.device)[:, None],
            rows=cache,
            use_cache=False,
        ).logits[:, -1]

    def _generation(self, prompt: list[int], sequence: list[int]) -> Generation:
        new_ids = sequence[len(prompt) :]
        thinking, answer = split_thinking(self.decode(new_ids))
        return Generation(answer, thinking or None, len(prompt), len(new_ids))

    def _chooser(
        self, request: GenerationRequest, prompt_tokens: int
    ) -> Callable[[list[int], torch.Tensor], int]:
        """The next token of one row from its sequence so far and its logits [1, V]: transformers' processors
        (the grammar, or else the repetition penalty; temperature, top-k, top-p), then the greedy choice or a
        draw from the row's own generator, so that a row draws what it would alone."""
        sampling = request.sampling or self.default_sampling
        processors = LogitsProcessorList()
        if request.json_schema is not None:
            grammar = JsonGrammar(self.grammar_tokenizer, request.json_schema)
            processors.append(GrammarLogitsProcessor(grammar, prompt_tokens))
        else:  # the grammar already rules out loops; a penalty would only push JSON off its keys
            processors.append(RepetitionPenaltyLogitsProcessor(REPETITION_PENALTY))
        greedy = sampling.temperature == 0
        if not greedy:
            processors.append(TemperatureLogitsWarper(sampling.temperature))
            if sampling.top_k:
                processors.append(TopKLogitsWarper(sampling.top_k))
            processors.append(TopPLogitsWarper(sampling.top_p))
        generator = torch.Generator(self.device).manual_seed(sampling.seed or 0)

        def choose(sequence: list[int], logits: torch.Tensor) -> int:
            scores = processors(torch.tensor([sequence], device=self.device), logits)  # [1, V]
            if greedy:
                return int(scores.argmax())
            return int(torch.multinomial(scores.softmax(-1), 1, generator=generator))

        return choose

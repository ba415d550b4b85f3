"""The transformers engine with the default model: batched generation answers as one at a time does."""

import threading
from pathlib import Path

import pytest
import torch

from docproc.engine import GenerationRequest, Stopped
from docproc.engine.transformers_engine import PackedLinear, TransformersEngine
from model.sampling import GREEDY, Sampling

# Of different lengths, so that rows end at different steps and the batch refills them.
TEXTS = [
    "Water boils at 100 degrees Celsius at sea level.",
    "The committee approved a budget of 4.2 million euros for the new library, which opens in 2026, and "
    "postponed the vote on parking until the spring.",
    "The cooperative's solar roofs produced 1.2 GWh in 2025, 14% more than planned.",
    "The report describes three failures of the pump in one winter, traces them to worn seals, and "
    "recommends replacing the seals every six months; maintenance costs rose by 12% last year.",
]
SYSTEM = "You are a careful assistant that reads documents and answers faithfully and concisely."
ANOTHER_SYSTEM = "You summarize reports for a town council."
SCHEMA = {
    "type": "object",
    "properties": {"year": {"type": "integer"}},
    "required": ["year"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def engine(default_model: Path) -> TransformersEngine:
    return TransformersEngine(default_model, name="SmolLM2-135M-Instruct", batch_size=3)


def request(
    text: str,
    max_new_tokens: int = 32,
    stop: threading.Event | None = None,
    json_schema: dict[str, object] | None = None,
    sampling: Sampling = GREEDY,
    system: str | None = None,
) -> GenerationRequest:
    messages = [{"role": "user", "content": f"Summarize in one sentence: {text}"}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return GenerationRequest(messages, max_new_tokens, sampling, stop, json_schema)


def test_batched_answers_equal_one_at_a_time(engine: TransformersEngine) -> None:
    # Eight requests of different lengths in batches of three: greedy ones, one with a JSON Schema, one with
    # another length limit, one sampled (its own seeded draws); with a system turn (kept, read once) or not.
    requests = [request(text, system=SYSTEM if n % 2 else None) for n, text in enumerate(TEXTS)] + [
        request(TEXTS[2], json_schema=SCHEMA, system=SYSTEM),
        request(TEXTS[0], max_new_tokens=8),
        request(TEXTS[3], sampling=Sampling(temperature=0.9, top_p=0.95, seed=7)),
        request(TEXTS[1], system="Answer in French."),
    ]
    together = engine.generate_many(requests)
    alone = [engine.generate_many([one])[0] for one in requests]
    assert [g.text for g in together] == [g.text for g in alone]
    assert [(g.input_tokens, g.output_tokens) for g in together] == [
        (g.input_tokens, g.output_tokens) for g in alone
    ]
    assert all(g.text for g in together) and together[5].output_tokens <= 8
    assert '"year"' in together[4].text


def test_prompts_with_one_system_turn_read_it_once(engine: TransformersEngine) -> None:
    read: list[int] = []  # tokens of each prefill (a forward without `rows`, which decoding steps have)
    decoder = engine.model.get_decoder()
    hook = decoder.register_forward_pre_hook(
        lambda _, args, kwargs: read.append(kwargs["input_ids"].shape[1]) if "rows" not in kwargs else None,
        with_kwargs=True,
    )
    requests = [request(text, max_new_tokens=2, system=ANOTHER_SYSTEM) for text in TEXTS]
    try:
        engine.generate_many(requests)
    finally:
        hook.remove()
    system_turn = engine.system_read[0]
    prompts = [
        engine.tokenizer.hf.apply_chat_template(r.messages, add_generation_prompt=True) for r in requests
    ]
    assert system_turn == prompts[0]["input_ids"][: len(system_turn)] and len(system_turn) > 5
    # The system turn once, then each prompt's rest but its last token (the first decoding step's).
    assert read == [len(system_turn)] + [len(p["input_ids"]) - len(system_turn) - 1 for p in prompts]


def test_a_template_that_will_not_render_a_system_turn_alone_reads_the_prompt_whole(
    engine: TransformersEngine,
) -> None:
    hf = engine.tokenizer.hf
    template = hf.chat_template
    hf.chat_template = (
        "{% if messages[-1]['role'] == 'system' %}{{ raise_exception('a user turn is needed') }}{% endif %}"
        + template
    )
    try:
        alone = request(TEXTS[0], max_new_tokens=4, system=SYSTEM)
        assert engine._system_turn(alone) == []
        assert engine.generate_many([alone])[0].output_tokens > 0
    finally:
        hf.chat_template = template


def test_a_stop_ends_the_whole_batch(engine: TransformersEngine) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped):
        engine.generate_many([request(TEXTS[0]), request(TEXTS[1], stop=stop)])


def test_an_ended_row_takes_the_next_request(engine: TransformersEngine) -> None:
    # Three rows: the two short answers end first and the fourth request takes a row while the long one runs.
    requests = [request(TEXTS[3])] + [request(text, max_new_tokens=2) for text in TEXTS[:3]]
    order = [index for index, _ in engine.generate_each(requests)]
    assert order == [1, 2, 3, 0]


def test_a_batch_takes_as_many_rows_as_its_cache_holds(engine: TransformersEngine) -> None:
    cache_tokens = engine.cache_bytes // engine.cache_bytes_per_token
    assert engine.rows_for(100, requests=10) == engine.batch_size == 3
    assert engine.rows_for(100, requests=2) == 2
    assert engine.rows_for(cache_tokens // 2, requests=10) == 2
    # A request longer than the cache still runs, alone.
    assert engine.rows_for(cache_tokens * 2, requests=10) == 1


def test_a_rows_product_does_not_depend_on_the_other_rows() -> None:
    # What batched text equal to one-at-a-time text rests on: a decoding step's rows come out of a linear
    # layer bit for bit as a row alone does, at every width; SmolLM2's widest product (its MLP's down
    # projection), where a row alone would take another path, and a layer with a bias.
    torch.manual_seed(0)
    for dense in (torch.nn.Linear(1536, 576, bias=False), torch.nn.Linear(576, 192)):
        layer = PackedLinear(dense)
        rows = torch.randn(40, 1, dense.in_features)  # [W, 1, K]: one token per row
        with torch.inference_mode():
            alone = [layer(rows[i : i + 1]) for i in range(len(rows))]
            for width in range(2, len(rows) + 1):
                together = layer(rows[:width])
                assert all(torch.equal(together[i], alone[i][0]) for i in range(width)), width
            # A prefill (many tokens of one row) is the linear layer's product.
            torch.testing.assert_close(layer(rows[:, 0][None]), dense(rows[:, 0][None]))

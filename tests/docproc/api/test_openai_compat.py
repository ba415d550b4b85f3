"""The OpenAI-compatible API, driven by OpenAI's own Python SDK against a live server and worker running the
default model (SmolLM2-135M) on SQLite and Redis."""

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletion

from tests.conftest import CORPUS, Service, service_env

LINK_PDF = CORPUS / "016-libre-office-link" / "libre-office-link.pdf"
LOREM_PDF = CORPUS / "002-trivial-libre-office-writer" / "002-trivial-libre-office-writer.pdf"
# SmolLM2-135M answers it, greedily, "The capital of France is Paris."
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Iterator[Service]:
    """An API with two keys (`service.keys`) and one worker."""
    tmp_path = tmp_path_factory.mktemp("openai")
    keys = [f"key-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}"]
    env = service_env(
        tmp_path / "data", f"sqlite:///{tmp_path / 'docproc.db'}", DOCPROC_API_KEYS=",".join(keys)
    )
    running = Service(env, tmp_path)
    running.keys = keys
    running.start_api()
    running.start_worker()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(service: Service) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{service.url}/openai/v1", api_key=service.keys[0], max_retries=0)


@pytest.fixture(scope="module")
def model(client: openai.OpenAI) -> str:
    (served,) = client.models.list().data
    return served.id


def ask(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


@pytest.fixture(scope="module")
def plain(client: openai.OpenAI, model: str) -> ChatCompletion:
    return client.chat.completions.create(model=model, messages=ask(QUESTION), max_tokens=16, temperature=0)


def test_chat_completion_answers_and_counts_usage(plain: ChatCompletion, model: str) -> None:
    assert plain.id.startswith("job_")
    assert plain.model == model == "SmolLM2-135M-Instruct"
    (choice,) = plain.choices
    assert "Paris" in choice.message.content
    assert choice.finish_reason == "stop"
    usage = plain.usage
    assert usage.prompt_tokens > 10 and 0 < usage.completion_tokens < 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0  # the transformers engine keeps no state


def test_max_tokens_ends_with_length_and_stop_cuts(
    client: openai.OpenAI, model: str, plain: ChatCompletion
) -> None:
    cut = client.chat.completions.create(
        model=model, messages=ask(QUESTION), max_completion_tokens=3, temperature=0
    )
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 3
    stopped = client.chat.completions.create(
        model=model, messages=ask(QUESTION), max_tokens=16, temperature=0, stop=["Paris", "Lyon"]
    )
    assert stopped.choices[0].message.content == plain.choices[0].message.content.split("Paris")[0]
    assert stopped.choices[0].finish_reason == "stop"


def test_streamed_completion_matches_the_plain_one(
    client: openai.OpenAI, model: str, plain: ChatCompletion
) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=ask(QUESTION),
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(chunk.object == "chat.completion.chunk" and chunk.id == chunks[0].id for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == plain.choices[0].message.content
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_json_schema_output_is_valid_or_the_request_fails_clearly(client: openai.OpenAI, model: str) -> None:
    # SmolLM2-135M rarely writes JSON; shown one answer, it gives a JSON string here.
    shown = [
        {"role": "user", "content": "What is the capital of Germany?"},
        {"role": "assistant", "content": '{"city": "Berlin"}'},
        {"role": "user", "content": QUESTION},
    ]
    string = {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "string"}}}
    completion = client.chat.completions.create(
        model=model, messages=shown, max_tokens=12, temperature=0, response_format=string
    )
    assert json.loads(completion.choices[0].message.content) == "Paris"
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "capital", "schema": schema}}
    with pytest.raises(openai.UnprocessableEntityError) as cut_short:  # one token cannot hold the object
        client.chat.completions.create(
            model=model, messages=ask(QUESTION), max_tokens=1, response_format=response_format
        )
    assert cut_short.value.code in ("json_output_invalid", "json_schema_mismatch")
    bad_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 12}}}
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.chat.completions.create(model=model, messages=ask(QUESTION), response_format=bad_schema)
    assert invalid.value.code == "invalid_request" and "JSON schema" in invalid.value.message


def test_a_file_part_puts_the_whole_pdf_in_the_prompt(client: openai.OpenAI, model: str) -> None:
    with LOREM_PDF.open("rb") as pdf:
        uploaded = client.files.create(file=pdf, purpose="user_data")
    assert uploaded.id.startswith("doc_") and uploaded.purpose == "user_data"
    assert uploaded.bytes == LOREM_PDF.stat().st_size
    assert client.files.retrieve(uploaded.id).filename == LOREM_PDF.name
    question = "What is the title of this document?"
    with_file = client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "file", "file": {"file_id": uploaded.id}},
                    {"type": "text", "text": question},
                ],
            }
        ],
        max_tokens=8,
        temperature=0,
    )
    without = client.chat.completions.create(model=model, messages=ask(question), max_tokens=1)
    # Its page of Lorem ipsum, about 230 tokens, is all in the prompt (SmolLM2-135M says little to check).
    assert with_file.usage.prompt_tokens > without.usage.prompt_tokens + 200
    assert with_file.choices[0].message.content


def test_batch_from_jsonl_to_output_and_error_files(client: openai.OpenAI, model: str) -> None:
    def line(custom_id: str, content: str | list) -> dict:
        body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 12}
        return {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": body | {"temperature": 0},
        }

    missing = {"type": "file", "file": {"file_id": f"doc_{uuid.uuid4().hex}"}}
    lines = [line("france", QUESTION), line("missing-document", [missing]), line("hello", "Say hello.")]
    jsonl = "".join(json.dumps(item) + "\n" for item in lines).encode()
    input_file = client.files.create(file=("requests.jsonl", jsonl), purpose="batch")
    assert input_file.purpose == "batch" and input_file.bytes == len(jsonl)
    assert client.files.content(input_file.id).content == jsonl

    batch = client.batches.create(
        input_file_id=input_file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "in_progress" and batch.input_file_id == input_file.id
    batch = wait_batch(client, batch.id)
    assert batch.status == "completed"
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (
        3,
        2,
        1,
    )

    outputs = [json.loads(text) for text in client.files.content(batch.output_file_id).text.splitlines()]
    assert [output["custom_id"] for output in outputs] == ["france", "hello"]
    assert all(output["response"]["status_code"] == 200 for output in outputs)
    assert "Paris" in outputs[0]["response"]["body"]["choices"][0]["message"]["content"]
    assert outputs[0]["response"]["body"]["object"] == "chat.completion"
    (error,) = [json.loads(text) for text in client.files.content(batch.error_file_id).text.splitlines()]
    assert error["custom_id"] == "missing-document"
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["code"] == "not_found"
    assert client.files.retrieve(batch.output_file_id).purpose == "batch_output"
    assert batch.id in [listed.id for listed in client.batches.list()]


def test_cancel_a_batch(client: openai.OpenAI, model: str) -> None:
    lines = [
        {
            "custom_id": f"request-{number}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": ask("Write a long story about a cat."), "max_tokens": 400},
        }
        for number in range(3)
    ]
    jsonl = "".join(json.dumps(item) + "\n" for item in lines).encode()
    input_file = client.files.create(file=("requests.jsonl", jsonl), purpose="batch")
    batch = client.batches.create(
        input_file_id=input_file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status in ("cancelling", "cancelled")
    batch = wait_batch(client, batch.id)
    assert batch.status == "cancelled" and batch.cancelled_at is not None
    assert batch.output_file_id is None and batch.request_counts.completed == 0
    errors = [json.loads(text) for text in client.files.content(batch.error_file_id).text.splitlines()]
    assert [error["error"]["code"] for error in errors] == ["batch_cancelled"] * 3


def test_keys_and_ownership_use_the_sdk_exceptions(
    service: Service, client: openai.OpenAI, model: str
) -> None:
    stranger = openai.OpenAI(base_url=f"{service.url}/openai/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        stranger.models.list()
    assert refused.value.code == "unauthorized"
    assert refused.value.body["type"] == "authentication_error"

    with LINK_PDF.open("rb") as pdf:
        mine = client.files.create(file=pdf, purpose="user_data")
    other = openai.OpenAI(base_url=f"{service.url}/openai/v1", api_key=service.keys[1], max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.files.retrieve(mine.id)
    part = {"type": "file", "file": {"file_id": mine.id}}
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.create(model=model, messages=[{"role": "user", "content": [part]}])
    with pytest.raises(openai.NotFoundError) as unknown_model:
        client.chat.completions.create(model="gpt-4o", messages=ask(QUESTION))
    assert unknown_model.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as too_long:  # SmolLM2's context is 8,192 tokens
        client.chat.completions.create(model=model, messages=ask("word " * 9000))
    assert too_long.value.code == "context_length_exceeded"
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.chat.completions.create(model=model, messages=ask(QUESTION), temperature=7)
    assert invalid.value.code == "invalid_options" and invalid.value.param == "temperature"


def wait_batch(client: openai.OpenAI, batch_id: str, timeout: float = 300) -> openai.types.Batch:
    deadline = time.monotonic() + timeout
    while (batch := client.batches.retrieve(batch_id)).status not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, batch
        time.sleep(0.3)
    return batch

"""The remote engine against a real OpenAI-compatible HTTP server on loopback (tests/.../openai_server.py)."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from docproc.engine import GenerationRequest, Stopped
from docproc.engine.remote import RemoteEngine
from docproc.engine.tokenizer import CharEstimate, EngineUnavailable
from docproc.ingestion import Page
from model.sampling import GREEDY, INSTRUCT, THINKING
from tests.conftest import SAMPLE_PDF, Service, free_port, service_env
from tests.docproc.engine.conftest import OpenAIServer

MESSAGES = [{"role": "user", "content": "Name one planet of the solar system."}]
TEXT = "The cooperative's solar roofs produced 1.2 GWh in 2025, 14% more than planned."
# As a Qwen3 thinking model replies: its chat template opens `<think>` in the prompt.
THINKING_REPLY = "The planets: Mercury, Venus, Earth, Mars. Mars is the red one.</think>\n\nMars."
# From setting `stop` to `Stopped`: the engine reacts at once; the rest is a busy machine's slack.
STOP_WITHIN_S = 5.0


@pytest.fixture
def tokenize_off(server_config: Callable[..., None]) -> None:
    server_config(tokenize=False)


def test_generation_with_the_server_tokenizer(openai_server: OpenAIServer, default_model: Path) -> None:
    engine = RemoteEngine(openai_server.url)
    assert engine.name == "smollm2" and engine.context_tokens == 8192
    assert engine.default_sampling == INSTRUCT
    local = AutoTokenizer.from_pretrained(default_model)
    assert engine.encode(TEXT) == local.encode(TEXT, add_special_tokens=False)
    assert engine.decode(engine.encode(TEXT)) == TEXT

    generation = engine.generate(MESSAGES, max_new_tokens=12)
    assert generation.text and generation.thinking is None
    assert generation.input_tokens > 10 and 0 < generation.output_tokens <= 12
    sent = openai_server.stats()["last_request"]
    # The Instruct preset, top_k through the request body.
    assert (sent["temperature"], sent["top_p"], sent["top_k"], sent["max_tokens"]) == (0.7, 0.8, 20, 12)

    greedy = [engine.generate(MESSAGES, max_new_tokens=12, sampling=GREEDY).text for _ in range(2)]
    assert greedy[0] == greedy[1]
    assert openai_server.stats()["last_request"]["temperature"] == 0


def test_streamed_answer_equals_the_whole_answer(openai_server: OpenAIServer) -> None:
    engine = RemoteEngine(openai_server.url)
    before = openai_server.stats()
    streamed = engine.generate(MESSAGES, max_new_tokens=12, sampling=GREEDY)
    after = openai_server.stats()
    assert after["last_request"]["stream"] and after["streams_completed"] == before["streams_completed"] + 1

    # The same request, answered whole.
    whole = engine.client.chat.completions.create(
        model=engine.name,
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=12,
        temperature=0,
    )
    assert whole.usage is not None
    assert streamed.text == (whole.choices[0].message.content or "").strip() and streamed.thinking is None
    assert (streamed.input_tokens, streamed.output_tokens) == (
        whole.usage.prompt_tokens,
        whole.usage.completion_tokens,
    )


@pytest.mark.parametrize("reasoning_parser", [False, True], ids=["thinking-in-content", "reasoning-content"])
def test_thinking_is_split_from_the_streamed_answer(
    openai_server: OpenAIServer, server_config: Callable[..., None], reasoning_parser: bool
) -> None:
    server_config(reply=THINKING_REPLY, reasoning_parser=reasoning_parser)
    engine = RemoteEngine(openai_server.url, model="smollm2-thinking")
    generation = engine.generate(MESSAGES, max_new_tokens=64)
    assert generation.thinking == "The planets: Mercury, Venus, Earth, Mars. Mars is the red one."
    assert generation.text == "Mars."
    assert generation.output_tokens == engine.count_tokens(THINKING_REPLY)


def test_usage_is_counted_when_the_server_sends_none(
    openai_server: OpenAIServer, server_config: Callable[..., None]
) -> None:
    server_config(reply=TEXT, usage=False)
    engine = RemoteEngine(openai_server.url)
    generation = engine.generate(MESSAGES, max_new_tokens=64)
    assert generation.text == TEXT
    assert generation.input_tokens == engine.count_tokens(MESSAGES[0]["content"])
    assert generation.output_tokens == engine.count_tokens(TEXT)


@pytest.mark.parametrize("chunk_delay_s", [0.2, 120.0], ids=["between-chunks", "silent-server"])
def test_stop_while_the_answer_streams(
    openai_server: OpenAIServer, server_config: Callable[..., None], chunk_delay_s: float
) -> None:
    """A slow stream (a token every 0.2 s: a minute in all), or a server silent for two minutes (a long
    prefill): either way the call ends soon after `stop`, and the server sees the connection closed."""
    server_config(reply=TEXT * 20, chunk_delay_s=chunk_delay_s)
    engine = RemoteEngine(openai_server.url)
    before = openai_server.stats()
    stop, signalled = threading.Event(), []

    def signal() -> None:
        signalled.append(time.monotonic())
        stop.set()

    threading.Timer(1.0, signal).start()
    with pytest.raises(Stopped):
        engine.generate(MESSAGES, max_new_tokens=1000, stop=stop)
    took = time.monotonic() - signalled[0]
    print(f"stopped {took:.3f} s after the signal")
    assert took < STOP_WITHIN_S, f"stopped {took:.2f} s after the signal"

    deadline = time.monotonic() + 10
    while (stats := openai_server.stats())["streams_abandoned"] == before["streams_abandoned"]:
        assert time.monotonic() < deadline, "the server did not see the connection closed"
        time.sleep(0.1)
    assert stats["streams_completed"] == before["streams_completed"]


def test_thinking_model_gets_the_thinking_preset(openai_server: OpenAIServer) -> None:
    engine = RemoteEngine(openai_server.url, model="smollm2-thinking")
    assert engine.name == "smollm2-thinking" and engine.default_sampling == THINKING
    engine.generate(MESSAGES, max_new_tokens=4)
    sent = openai_server.stats()["last_request"]
    assert (sent["model"], sent["temperature"], sent["top_p"], sent["top_k"]) == (
        "smollm2-thinking",
        0.6,
        0.95,
        20,
    )


def test_unknown_model_name_is_refused(openai_server: OpenAIServer) -> None:
    with pytest.raises(EngineUnavailable, match="does not serve 'nope'"):
        RemoteEngine(openai_server.url, model="nope")


def test_retries_when_the_server_answers_503(openai_server: OpenAIServer) -> None:
    engine = RemoteEngine(openai_server.url)
    before = openai_server.stats()["chat_requests"]
    openai_server.fail_next(2)
    assert engine.generate(MESSAGES, max_new_tokens=4, sampling=GREEDY).output_tokens > 0
    assert openai_server.stats()["chat_requests"] - before == 3

    openai_server.fail_next(10)  # more than the client retries
    with pytest.raises(EngineUnavailable, match=f"{openai_server.url} answered 503"):
        engine.generate(MESSAGES, max_new_tokens=4)
    openai_server.fail_next(0)


def test_many_requests_go_concurrently_and_answer_in_order(
    openai_server: OpenAIServer, server_config: Callable[..., None]
) -> None:
    # Replies as slow as a model's (a token every 0.1 s), so that the requests overlap on the server.
    server_config(reply="Mars is the red planet.", chunk_delay_s=0.1)
    engine = RemoteEngine(openai_server.url, concurrency=3)
    questions = [[{"role": "user", "content": f"Question {n}?"}] for n in range(5)]
    requests = [GenerationRequest(messages, 8, GREEDY) for messages in questions]
    generations = engine.generate_many(requests)
    assert [g.text for g in generations] == ["Mars is the red planet."] * 5
    assert openai_server.stats()["most_streams_open"] == 3


def test_answers_come_as_each_ends_and_a_reader_that_stops_sends_no_more(
    openai_server: OpenAIServer, server_config: Callable[..., None]
) -> None:
    server_config(reply="Mars is the red planet.", chunk_delay_s=0.1)
    engine = RemoteEngine(openai_server.url, concurrency=2)
    sent_before = openai_server.stats()["chat_requests"]
    questions = [[{"role": "user", "content": f"Question {n}?"}] for n in range(6)]
    answers = engine.generate_each([GenerationRequest(messages, 8, GREEDY) for messages in questions])
    index, first = next(answers)
    assert index in (0, 1) and first.text == "Mars is the red planet."
    answers.close()  # waits for the requests in flight; the ones not yet sent are dropped
    assert openai_server.stats()["chat_requests"] - sent_before <= 4


def test_many_requests_retry_and_fail_as_one_does(openai_server: OpenAIServer) -> None:
    engine = RemoteEngine(openai_server.url, concurrency=4)
    requests = [GenerationRequest(MESSAGES, 4, GREEDY)] * 4
    openai_server.fail_next(2)
    assert all(g.output_tokens > 0 for g in engine.generate_many(requests))

    openai_server.fail_next(100)  # more than the client retries, for every request
    with pytest.raises(EngineUnavailable, match=f"{openai_server.url} answered 503"):
        engine.generate_many(requests)
    openai_server.fail_next(0)


def test_server_down() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(EngineUnavailable, match=f"{url} is unreachable after 2 attempts") as raised:
        RemoteEngine(url, reconnect_waits_s=[0.2])
    assert raised.value.code == "engine_unavailable"
    assert time.monotonic() - started < 10


def test_stop_before_a_request_and_while_waiting_to_reconnect(openai_server: OpenAIServer) -> None:
    engine = RemoteEngine(openai_server.url, reconnect_waits_s=[60.0])
    stop = threading.Event()
    stop.set()
    before = openai_server.stats()["chat_requests"]
    with pytest.raises(Stopped):
        engine.generate(MESSAGES, max_new_tokens=4, stop=stop)
    assert openai_server.stats()["chat_requests"] == before

    # The server goes away: the engine waits a minute to reconnect, unless stopped meanwhile.
    engine.client = engine.client.with_options(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        engine.generate(MESSAGES, max_new_tokens=4, stop=stop)
    assert time.monotonic() - started < 30


@pytest.mark.usefixtures("tokenize_off")
def test_estimate_without_a_tokenize_endpoint(openai_server: OpenAIServer) -> None:
    engine = RemoteEngine(openai_server.url)
    assert isinstance(engine.tokenizer.backend(), CharEstimate)
    assert engine.count_tokens("abcdefgh") == 2 and engine.count_tokens(TEXT) == -(-len(TEXT) // 4)
    assert engine.decode(engine.encode(TEXT)) == TEXT
    pages = [Page(1, "α" * 10), Page(2, "b" * 30)]
    chunks = list(engine.chunks(pages, max_tokens=5))
    assert "".join(chunk.text for chunk in chunks) == "α" * 10 + "\n\n" + "b" * 30 + "\n\n"
    assert [(c.first_page, c.last_page, c.tokens) for c in chunks] == [(1, 2, 5), (2, 2, 5), (2, 2, 1)]


@pytest.mark.usefixtures("tokenize_off")
def test_local_tokenizer(openai_server: OpenAIServer, default_model: Path) -> None:
    engine = RemoteEngine(openai_server.url, tokenizer_path=default_model)
    local = AutoTokenizer.from_pretrained(default_model)
    assert engine.encode(TEXT) == local.encode(TEXT, add_special_tokens=False)


@contextmanager
def remote_service(model_url: str, data_dir: Path) -> Iterator[Service]:
    """API and worker on the remote engine: neither loads a model."""
    env = service_env(data_dir, f"sqlite:///{data_dir}.db", DOCPROC_MODEL=model_url)
    with Service(env, data_dir.parent).running() as service:
        yield service


@pytest.fixture(scope="class")
def remote(openai_server: OpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for a class's tests: gone before other tests start workers on the same broker."""
    with remote_service(openai_server.url, tmp_path_factory.mktemp("remote") / "data") as service:
        yield service


class TestJobsThroughTheRemoteEngine:
    def test_summary_job(self, remote: Service) -> None:
        with remote.client() as client:
            document = client.post(
                "/v1/documents", files={"file": ("report.pdf", SAMPLE_PDF.read_bytes())}
            ).json()
            assert document["tokens"] > 500
            options = {"max_words": 10, "temperature": 0}
            job = client.post("/v1/jobs", json={"document_id": document["id"], "options": options}).json()
            done = remote.wait_job(client, job["id"], {"succeeded", "failed"})
            assert done["status"] == "succeeded", done
            result = client.get(f"/v1/jobs/{job['id']}/result").json()
            assert result["model"] == "smollm2" and result["source_pages"]
            assert all(1 <= first <= last <= 3 for first, last in result["source_pages"])
            assert result["usage"]["input_tokens"] > 500 and result["summary"]

    def test_cancel_breaks_off_the_request(
        self, remote: Service, openai_server: OpenAIServer, server_config: Callable[..., None]
    ) -> None:
        # Headers at once, then silent for two minutes, as vLLM in the prefill of a long prompt. (The test
        # server generates before it answers: only a scripted reply sends the headers at once.)
        server_config(reply=TEXT, chunk_delay_s=120.0)
        before = openai_server.stats()
        with remote.client() as client:
            document = client.post("/v1/documents", files={"file": ("note.txt", TEXT.encode())}).json()
            job = client.post("/v1/jobs", json={"document_id": document["id"]}).json()
            deadline = time.monotonic() + 120
            while openai_server.stats()["chat_requests"] == before["chat_requests"]:
                assert time.monotonic() < deadline, client.get(f"/v1/jobs/{job['id']}").json()
                time.sleep(0.1)
            asked = time.monotonic()
            assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "running"
            stopped = remote.wait_job(client, job["id"], {"cancelled", "succeeded", "failed"}, timeout=120)
            took = time.monotonic() - asked
            print(f"job cancelled {took:.2f} s after the request")
            assert stopped["status"] == "cancelled", stopped
            # The worker checks the cancel flag every DOCPROC_CANCEL_POLL_S (1 s); the rest is slack.
            assert took < 10, f"cancelled after {took:.1f} s"
            deadline = time.monotonic() + 10
            while openai_server.stats()["streams_abandoned"] == before["streams_abandoned"]:
                assert time.monotonic() < deadline, "the server did not see the connection closed"
                time.sleep(0.1)


def test_job_fails_clearly_when_the_server_is_down(tmp_path: Path) -> None:
    down_url = f"http://127.0.0.1:{free_port()}/v1"
    with remote_service(down_url, tmp_path / "data") as service, service.client() as client:
        document = client.post(
            "/v1/documents", files={"file": ("report.pdf", SAMPLE_PDF.read_bytes())}
        ).json()
        assert document["tokens"] > 500  # counted by the estimate while the server is away
        job = client.post("/v1/jobs", json={"document_id": document["id"]}).json()
        failed = service.wait_job(client, job["id"], {"succeeded", "failed"}, timeout=120)
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "engine_unavailable" and down_url in failed["error"]["message"]

"""An engine on an OpenAI-compatible server (vLLM, SGLang, ...): generation over HTTP, official client.

Token counts: see docproc.engine.tokenizer.
"""

import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
from openai.types.chat import ChatCompletionChunk

from docproc.engine.base import Engine, Generation, GenerationRequest, Stopped, in_order
from docproc.engine.tokenizer import EngineUnavailable, RemoteTokenizer
from model.chat import split_thinking
from model.sampling import INSTRUCT, THINKING, Sampling

# When the server reports no context length (vLLM does, as max_model_len).
DEFAULT_CONTEXT_TOKENS = 32768
# The client retries timeouts, connection errors, 429 and 5xx with exponential backoff (0.5 s, 1 s, ...);
# on top, a server that stays unreachable (restarting, say) is tried again after these many seconds.
CLIENT_MAX_RETRIES = 2
RECONNECT_WAITS_S = (1.0, 2.0, 4.0)
# The thread that breaks off a stream on `stop` wakes at once when it is set; it also wakes this often to see
# whether the stream has ended, and so outlives a request by at most this long.
STOP_WATCH_WAKE_S = 0.5

T = TypeVar("T")


class EngineRequestRefused(RuntimeError):
    code = "engine_error"


class RemoteEngine(Engine):
    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str = "EMPTY",
        tokenizer_path: Path | None = None,
        reconnect_waits_s: Sequence[float] = RECONNECT_WAITS_S,
        concurrency: int = 1,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.batch_size = concurrency
        self.reconnect_waits_s = tuple(reconnect_waits_s)
        self.client = openai.OpenAI(base_url=self.base_url, api_key=api_key, max_retries=CLIENT_MAX_RETRIES)
        served = self._call(lambda: self.client.models.list().data)
        card = next((m for m in served if m.id == model), None) if model else (served[0] if served else None)
        if card is None:
            names = ", ".join(m.id for m in served) or "none"
            raise EngineUnavailable(
                f"The model server at {self.base_url} does not serve {model!r} (serves {names})."
            )
        self.name = card.id
        self.context_tokens = int((card.model_extra or {}).get("max_model_len") or DEFAULT_CONTEXT_TOKENS)
        self.default_sampling = THINKING if "thinking" in self.name.lower() else INSTRUCT
        self.tokenizer = RemoteTokenizer(self.base_url, self.name, tokenizer_path, api_key)
        self.tokenizer.backend()

    def generate(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        sampling: Sampling | None = None,
        stop: threading.Event | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Generation:
        """One streamed request. Once `stop` is set it is abandoned: before it is sent, while waiting to
        reconnect, between chunks and while waiting for one; the server sees the connection closed.
        `json_schema` goes as `response_format` (vLLM and SGLang constrain their decoding with it)."""
        sampling = sampling or self.default_sampling
        response_format = (
            {"type": "json_schema", "json_schema": {"name": "output", "schema": json_schema, "strict": True}}
            if json_schema is not None
            else openai.NOT_GIVEN
        )
        stop = stop or threading.Event()  # never set
        stream = self._call(
            lambda: self.client.chat.completions.create(
                model=self.name,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_new_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                seed=sampling.seed,
                response_format=response_format,  # type: ignore[arg-type]
                # top_k is not an OpenAI parameter; vLLM and SGLang read it from the body.
                extra_body={"top_k": sampling.top_k} if sampling.top_k else None,
                stream=True,
                stream_options={"include_usage": True},
            ),
            stop,
        )
        content: list[str] = []
        reasoning: list[str] = []
        usage = None
        with stream, _shut_on_stop(stream.response, stop):
            for chunk in self._chunks(stream, stop):
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    content.append(choice.delta.content or "")
                    # vLLM and SGLang with a reasoning parser send the thinking apart from the answer.
                    reasoning.append((choice.delta.model_extra or {}).get("reasoning_content") or "")
        thinking, answer = split_thinking("".join(content))
        thinking = "".join(reasoning) or thinking
        if usage is None:  # a server that ignores `stream_options`: counted here, without the chat template
            input_tokens = self.count_tokens("\n".join(message["content"] for message in messages))
            output_tokens = self.count_tokens("".join(reasoning + content))
        else:
            input_tokens, output_tokens = usage.prompt_tokens, usage.completion_tokens
        return Generation(answer, thinking or None, input_tokens, output_tokens)

    def generate_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Up to `batch_size` requests in flight at once, so that the server batches them. Each is retried
        as `generate` retries; the first failure (or `Stopped`) is raised once the others in flight have
        ended."""
        return in_order(self.generate_each(requests), len(requests))

    def generate_each(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Generation]]:
        """Up to `batch_size` requests in flight; a waiting one is sent as soon as another is answered. The
        requests not yet sent are dropped when the caller stops reading (or one fails)."""
        pool = ThreadPoolExecutor(self.batch_size, "remote-generate")
        try:
            sent = {
                pool.submit(self.generate_request, request): index for index, request in enumerate(requests)
            }
            for answered in as_completed(sent):
                yield sent[answered], answered.result()
        finally:
            pool.shutdown(cancel_futures=True)

    def _chunks(
        self, stream: openai.Stream[ChatCompletionChunk], stop: threading.Event
    ) -> Iterator[ChatCompletionChunk]:
        """The stream's chunks until `stop` is set; a stream broken off part way is not retried."""
        try:
            for chunk in stream:
                if stop.is_set():
                    raise Stopped
                yield chunk
        except openai.APIError as exc:  # the connection lost, or an error event
            if stop.is_set():  # `_shut_on_stop` broke the connection
                raise Stopped from None
            raise EngineUnavailable(
                f"The model server at {self.base_url} broke off its answer: {exc.message}"
            ) from exc

    def _call(self, request: Callable[[], T], stop: threading.Event | None = None) -> T:
        """Run a request; the client retries on its own, then this waits out a server that is away a while."""
        stop = stop or threading.Event()  # never set: the waits are plain sleeps
        for wait in self.reconnect_waits_s:
            try:
                return self._once(request, stop)
            except openai.APIConnectionError:  # timeouts too
                if stop.wait(wait):
                    raise Stopped from None
        try:
            return self._once(request, stop)
        except openai.APIConnectionError as exc:
            attempts = len(self.reconnect_waits_s) + 1
            raise EngineUnavailable(
                f"The model server at {self.base_url} is unreachable after {attempts} attempts: {exc}"
            ) from exc

    def _once(self, request: Callable[[], T], stop: threading.Event) -> T:
        if stop.is_set():
            raise Stopped
        try:
            return request()
        except openai.APIStatusError as exc:
            reason = f"The model server at {self.base_url} answered {exc.status_code}: {exc.message}"
            if exc.status_code >= 500 or exc.status_code == 429:
                raise EngineUnavailable(reason) from exc
            raise EngineRequestRefused(reason) from exc


@contextmanager
def _shut_on_stop(response: httpx.Response, stop: threading.Event) -> Iterator[None]:
    """While the block runs, shut the response's socket down once `stop` is set: that wakes a read waiting
    on a silent server (closing the socket from another thread would not) and makes the server drop the
    request."""
    stream = response.extensions.get("network_stream")
    sock: socket.socket | None = stream.get_extra_info("socket") if stream else None
    if sock is None:
        yield
        return
    done = threading.Event()
    lock = threading.Lock()  # no shutdown once the block is left: the connection may serve another request

    def watch() -> None:
        while not done.is_set():
            if stop.wait(STOP_WATCH_WAKE_S):
                with lock, suppress(OSError):
                    if not done.is_set():
                        sock.shutdown(socket.SHUT_RDWR)
                return

    threading.Thread(target=watch, name="remote-stop-watch", daemon=True).start()
    try:
        yield
    finally:
        with lock:
            done.set()

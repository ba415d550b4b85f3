"""A small OpenAI-compatible server for tests: transformers generating with a local checkpoint.

It speaks what the remote engine uses of vLLM: /v1/models (with max_model_len), /v1/chat/completions (whole,
or streamed as server-sent events in OpenAI's chunk format), /tokenize and /detokenize. Test hooks: POST
/test/fail makes the next N chat requests answer an error status; POST /test/config sets `TestConfig` (each
call starts from the defaults); GET /test/stats counts chat requests and streams, shows the last request and
the most streams open at once since the last /test/config.

    python -m tests.docproc.engine.openai_server --model DIR --port 8001 --served-name smollm2
"""

import argparse
import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from transformers import AutoModelForCausalLM, AutoTokenizer, BatchEncoding, PreTrainedTokenizerBase

from model.chat import THINK_END


class ChatRequest(BaseModel):
    model_config = {"extra": "allow"}  # vLLM takes sampling parameters beyond OpenAI's (top_k) in the body

    model: str
    messages: list[dict[str, str]]
    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None


class TestConfig(BaseModel):
    #: Off: /tokenize answers 404, as on servers without it.
    tokenize: bool = True
    #: A streamed answer waits this long before each chunk, the first included (a slow model, a long prefill).
    #: The headers go out at once with a `reply`, and after generating without one.
    chunk_delay_s: float = 0.0
    #: Off: no usage, even when asked for (servers that ignore `stream_options`).
    usage: bool = True
    #: As vLLM's `--reasoning-parser qwen3`: the reply up to `</think>` goes out as `reasoning_content`.
    reasoning_parser: bool = False
    #: Answer this text (its tokens counted as generated) instead of generating: the small model never thinks.
    reply: str | None = None


class TokenizeRequest(BaseModel):
    prompt: str
    model: str | None = None
    add_special_tokens: bool = True


class DetokenizeRequest(BaseModel):
    tokens: list[int]
    model: str | None = None


def create_app(model_dir: Path, served_names: list[str]) -> FastAPI:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    context = int(model.config.max_position_embeddings)
    lock = threading.Lock()
    hooks: dict[str, Any] = {
        "fail_count": 0,
        "fail_status": 503,
        "config": TestConfig(),
        "chat_requests": 0,
        "streams_completed": 0,
        "streams_abandoned": 0,
        "streams_open": 0,
        "most_streams_open": 0,
    }
    app = FastAPI()

    def check_model(name: str | None) -> None:
        if name is not None and name not in served_names:
            raise HTTPException(404, f"The model {name!r} does not exist.")

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        cards = [
            {"id": n, "object": "model", "created": 0, "owned_by": "tests", "max_model_len": context}
            for n in served_names
        ]
        return {"object": "list", "data": cards}

    def reply_ids(request: ChatRequest, prompt: BatchEncoding) -> tuple[list[int], bool]:
        """The reply's token ids, and whether it ended (rather than ran out of `max_tokens`)."""
        if hooks["config"].reply is not None:
            return tokenizer.encode(hooks["config"].reply, add_special_tokens=False), True
        greedy = request.temperature == 0
        with lock, torch.inference_mode():
            torch.manual_seed(request.seed or 0)
            output = model.generate(
                **prompt,
                max_new_tokens=request.max_tokens,
                do_sample=not greedy,
                temperature=None if greedy else request.temperature,
                top_p=None if greedy else request.top_p,
                top_k=None if greedy else request.top_k or None,
                repetition_penalty=1.15,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        new_ids = output[0, prompt["input_ids"].shape[1] :].tolist()
        return new_ids, bool(new_ids) and new_ids[-1] == tokenizer.eos_token_id

    @app.post("/v1/chat/completions", response_model=None)
    def chat(request: ChatRequest) -> dict[str, Any] | JSONResponse | StreamingResponse:
        config: TestConfig = hooks["config"]
        with lock:
            hooks["chat_requests"] += 1
            hooks["last_request"] = request.model_dump()
            if hooks["fail_count"] > 0:
                hooks["fail_count"] -= 1
                body = {"error": {"message": "overloaded (test hook)", "type": "server_error"}}
                return JSONResponse(body, status_code=hooks["fail_status"], headers={"retry-after": "0.1"})
        check_model(request.model)
        prompt = tokenizer.apply_chat_template(
            request.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        new_ids, finished = reply_ids(request, prompt)
        text = tokenizer.decode(new_ids, skip_special_tokens=True)
        reasoning, content = (
            text.split(THINK_END, 1) if config.reasoning_parser and THINK_END in text else ("", text)
        )
        prompt_tokens, completion_tokens = int(prompt["input_ids"].shape[1]), len(new_ids)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": request.model}
        finish_reason = "stop" if finished else "length"
        if request.stream:
            deltas = [{"reasoning_content": piece} for piece in token_pieces(tokenizer, reasoning)]
            deltas += [{"content": piece} for piece in token_pieces(tokenizer, content)]
            with_usage = config.usage and bool((request.stream_options or {}).get("include_usage"))
            events = stream_events(head, deltas, finish_reason, usage if with_usage else None, config)
            return StreamingResponse(events, media_type="text/event-stream")
        message = {"role": "assistant", "content": content} | (
            {"reasoning_content": reasoning} if config.reasoning_parser else {}
        )
        return (
            head
            | {
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            }
            | ({"usage": usage} if config.usage else {})
        )

    async def stream_events(
        head: dict[str, Any],
        deltas: list[dict[str, str]],
        finish_reason: str,
        usage: dict[str, int] | None,
        config: TestConfig,
    ) -> AsyncIterator[str]:
        """OpenAI's chunks: the role, one per token piece, the finish reason, the usage if asked, `[DONE]`."""

        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            body = head | {"object": "chat.completion.chunk", "choices": choices} | extra
            return f"data: {json.dumps(body)}\n\n"

        def choice(delta: dict[str, str], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": delta, "finish_reason": finish}]

        usage_field = {"usage": None} if usage else {}
        chunks = [
            event(choice({"role": "assistant", "content": ""}), **usage_field),
            *(event(choice(delta), **usage_field) for delta in deltas),
            event(choice({}, finish_reason), **usage_field),
        ]
        if usage:
            chunks.append(event([], usage=usage))
        hooks["streams_open"] += 1
        hooks["most_streams_open"] = max(hooks["most_streams_open"], hooks["streams_open"])
        try:
            for chunk in chunks:
                await asyncio.sleep(config.chunk_delay_s)
                yield chunk
            yield "data: [DONE]\n\n"
            hooks["streams_completed"] += 1
        except asyncio.CancelledError:  # the client went away; Starlette cancels the response
            hooks["streams_abandoned"] += 1
            raise
        finally:
            hooks["streams_open"] -= 1

    @app.post("/tokenize")
    def tokenize(request: TokenizeRequest) -> dict[str, Any]:
        if not hooks["config"].tokenize:
            raise HTTPException(404, "Not Found")
        check_model(request.model)
        tokens = tokenizer.encode(request.prompt, add_special_tokens=request.add_special_tokens)
        return {"tokens": tokens, "count": len(tokens), "max_model_len": context}

    @app.post("/detokenize")
    def detokenize(request: DetokenizeRequest) -> dict[str, str]:
        check_model(request.model)
        return {"prompt": tokenizer.decode(request.tokens, skip_special_tokens=True)}

    @app.post("/test/fail")
    def fail_next(count: int, status: int = 503) -> None:
        hooks.update(fail_count=count, fail_status=status)

    @app.post("/test/config")
    def configure(config: TestConfig) -> None:
        hooks.update(config=config, most_streams_open=0)

    @app.get("/test/stats")
    def stats() -> dict[str, Any]:
        counts = ("chat_requests", "streams_completed", "streams_abandoned", "most_streams_open")
        return {name: hooks[name] for name in counts} | {"last_request": hooks.get("last_request")}

    return app


def token_pieces(tokenizer: PreTrainedTokenizerBase, text: str) -> Iterator[str]:
    """The text cut where its tokens end, as a server streams it; a piece never ends inside a character."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    sent = ""
    for end in range(1, len(ids) + 1):
        decoded = tokenizer.decode(ids[:end], skip_special_tokens=True)
        if decoded.startswith(sent) and len(decoded) > len(sent) and not decoded.endswith("\ufffd"):
            yield decoded[len(sent) :]
            sent = decoded
    if len(text) > len(sent):
        yield text[len(sent) :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--served-name", action="append", required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.model, args.served_name), host="127.0.0.1", port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()

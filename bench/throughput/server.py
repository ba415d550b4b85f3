"""A loopback OpenAI-compatible server that batches concurrent requests, as vLLM and SGLang do.

The tests' server (tests/docproc/engine/openai_server.py) answers one request at a time under a lock, so it
shows no gain from concurrent clients whatever they do; this one gathers the requests that arrive within
`--window-s` of the first (up to `--max-batch`) and answers them with one batched `generate_many` of the
transformers engine. Streamed answers come as one content chunk, then the usage.

    python -m bench.throughput.server --model DIR --port 8011 --max-batch 8
"""

import argparse
import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from docproc.engine import Generation, GenerationRequest
from docproc.engine.transformers_engine import TransformersEngine
from model.sampling import Sampling

SERVED_NAME = "smollm2"


class ChatRequest(BaseModel):
    model_config = {"extra": "allow"}

    model: str
    messages: list[dict[str, str]]
    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


def serve_batches(
    model_dir: Path,
    max_batch: int,
    pending: "queue.Queue[tuple[GenerationRequest, Future[Generation]]]",
    window_s: float,
    loaded: "Future[TransformersEngine]",
) -> None:
    """The generation thread: the first waiting request, those arriving within the window, one batch. It
    loads the model too: torch runs on this thread alone (docproc/engine/batcher.py says why)."""
    try:
        engine = TransformersEngine(model_dir, name=SERVED_NAME, batch_size=max_batch)
    except Exception as exc:  # the server does not start
        loaded.set_exception(exc)
        return
    loaded.set_result(engine)
    while True:
        batch = [pending.get()]
        deadline = time.monotonic() + window_s
        while len(batch) < engine.batch_size and (left := deadline - time.monotonic()) > 0:
            try:
                batch.append(pending.get(timeout=left))
            except queue.Empty:
                break
        try:
            for (_, future), generation in zip(
                batch, engine.generate_many([request for request, _ in batch]), strict=True
            ):
                future.set_result(generation)
        except Exception as exc:  # each waiting request answers the failure
            for _, future in batch:
                future.set_exception(exc)


def create_app(model_dir: Path, max_batch: int, window_s: float) -> FastAPI:
    pending: queue.Queue[tuple[GenerationRequest, Future[Generation]]] = queue.Queue()
    loaded: Future[TransformersEngine] = Future()
    arguments = (model_dir, max_batch, pending, window_s, loaded)
    threading.Thread(target=serve_batches, args=arguments, daemon=True).start()
    engine = loaded.result()
    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        card = {
            "id": SERVED_NAME,
            "object": "model",
            "owned_by": "bench",
            "max_model_len": engine.context_tokens,
        }
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    def chat(request: ChatRequest) -> StreamingResponse:
        sampling = Sampling(temperature=request.temperature, top_p=request.top_p, seed=request.seed)
        future: Future[Generation] = Future()
        pending.put((GenerationRequest(request.messages, request.max_tokens, sampling), future))
        generation = future.result()
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": request.model}
        usage = {
            "prompt_tokens": generation.input_tokens,
            "completion_tokens": generation.output_tokens,
            "total_tokens": generation.input_tokens + generation.output_tokens,
        }

        def events() -> Iterator[str]:
            for choices, extra in (
                ([{"index": 0, "delta": {"role": "assistant", "content": generation.text}}], {}),
                ([{"index": 0, "delta": {}, "finish_reason": "stop"}], {}),
                ([], {"usage": usage}),
            ):
                body = head | {"object": "chat.completion.chunk", "choices": choices} | extra
                yield f"data: {json.dumps(body)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--window-s", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    app = create_app(args.model, args.max_batch, args.window_s)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()

"""A small OpenAI-compatible server for tests: transformers generating with a local checkpoint.

It speaks what the remote engine uses of vLLM: /v1/models (with max_model_len), /v1/chat/completions,
/tokenize and /detokenize. Two test hooks: POST /test/fail makes the next N chat requests answer an error
status, POST /test/config turns /tokenize off; GET /test/stats counts chat requests and shows the last one.

    python -m tests.docproc.engine.openai_server --model DIR --port 8001 --served-name smollm2
"""

import argparse
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from transformers import AutoModelForCausalLM, AutoTokenizer


class ChatRequest(BaseModel):
    model_config = {"extra": "allow"}  # vLLM takes sampling parameters beyond OpenAI's (top_k) in the body

    model: str
    messages: list[dict[str, str]]
    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None


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
    hooks: dict[str, Any] = {"fail_count": 0, "fail_status": 503, "tokenize": True, "chat_requests": 0}
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

    @app.post("/v1/chat/completions", response_model=None)
    def chat(request: ChatRequest) -> dict[str, Any] | JSONResponse:
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
        new_ids = output[0, prompt["input_ids"].shape[1] :]
        finished = bool(len(new_ids)) and int(new_ids[-1]) == tokenizer.eos_token_id
        prompt_tokens, completion_tokens = int(prompt["input_ids"].shape[1]), int(new_ids.shape[0])
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": tokenizer.decode(new_ids, skip_special_tokens=True),
                    },
                    "finish_reason": "stop" if finished else "length",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    @app.post("/tokenize")
    def tokenize(request: TokenizeRequest) -> dict[str, Any]:
        if not hooks["tokenize"]:
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
    def configure(tokenize: bool) -> None:
        hooks["tokenize"] = tokenize

    @app.get("/test/stats")
    def stats() -> dict[str, Any]:
        return {"chat_requests": hooks["chat_requests"], "last_request": hooks.get("last_request")}

    return app


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

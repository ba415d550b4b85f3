"""Threads sharing a Batcher over the default model: their calls run as one batch, each answered as alone."""

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from docproc.engine import Generation, GenerationRequest, Stopped
from docproc.engine.batcher import Batcher
from docproc.engine.transformers_engine import TransformersEngine
from model.sampling import GREEDY

QUESTIONS = ["Name one planet.", "What colour is the sky?", "Name a fruit.", "What is two plus two?"]


class RecordingEngine(TransformersEngine):
    """The real engine, noting how many requests each generate_many got."""

    calls: list[int]

    def generate_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.calls.append(len(requests))
        return super().generate_many(requests)


@pytest.fixture(scope="module")
def engine(default_model: Path) -> RecordingEngine:
    recording = RecordingEngine(default_model, name="SmolLM2-135M-Instruct", batch_size=4)
    recording.calls = []
    return recording


def request(question: str, stop: threading.Event | None = None) -> GenerationRequest:
    return GenerationRequest([{"role": "user", "content": question}], 12, GREEDY, stop)


def in_threads(batcher: Batcher, work: list[Callable[[], object]]) -> list[object]:
    """Run each callable in a thread of its own, as a participant: its result or its exception."""
    outcomes: list[object] = [None] * len(work)

    def run(index: int) -> None:
        try:
            outcomes[index] = work[index]()
        except Exception as exc:
            outcomes[index] = exc
        finally:
            batcher.leave()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(work))]
    for thread in threads:
        thread.start()
    batcher.serve()
    for thread in threads:
        thread.join(300)
    return outcomes


def test_threads_calls_run_as_one_batch(engine: RecordingEngine) -> None:
    alone = [engine.generate_many([request(question)])[0].text for question in QUESTIONS]
    engine.calls = []
    batcher = Batcher(engine, participants=4)
    outcomes = in_threads(
        batcher,
        [
            lambda: [
                batcher.generate(request(QUESTIONS[0]).messages, max_new_tokens=12, sampling=GREEDY).text
            ],
            lambda: [g.text for g in batcher.generate_many([request(QUESTIONS[1]), request(QUESTIONS[2])])],
            lambda: [batcher.generate_many([request(QUESTIONS[3])])[0].text],
            lambda: [],  # a participant that leaves without generating is not waited for
        ],
    )
    assert outcomes == [alone[:1], alone[1:3], alone[3:], []]
    assert engine.calls == [4]


def test_a_stopped_thread_stops_alone(engine: RecordingEngine) -> None:
    stop = threading.Event()
    stop.set()
    engine.calls = []
    batcher = Batcher(engine, participants=2)
    outcomes = in_threads(
        batcher,
        [
            lambda: batcher.generate_many([request(QUESTIONS[0])])[0].text,
            lambda: batcher.generate_many([request(QUESTIONS[1], stop)])[0].text,
        ],
    )
    assert outcomes[0] == engine.generate_many([request(QUESTIONS[0])])[0].text
    assert isinstance(outcomes[1], Stopped)
    # The stop ended the batch of both; the other request went again on its own.
    assert engine.calls == [2, 1, 1]

"""Several threads' generations as one: the jobs a worker runs together share the model's batches.

Each thread runs one job as it would alone and calls `generate` / `generate_many` on a `Batcher`; a call
waits until every thread still running is waiting too (or has left). The thread that made the Batcher
meanwhile `serve`s: it runs all the waiting requests as one `generate_many` of the wrapped engine. A thread
that is ranking sentences or writing progress is waited for, so no batch goes out half full while another
request is seconds away.

The model runs on the serving thread (the worker's own), never on the jobs' threads: each thread that runs
torch gets an OpenMP thread team of its own, and with more teams' threads than cores libgomp stops spinning
between parallel regions, which made a decoding step 1.5-2x slower on a job's thread (bench/throughput).
"""

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from docproc.engine.base import BatchEngine, Engine, Generation, GenerationRequest, Stopped


@dataclass
class _Call:
    """One thread's waiting requests, and their answers or the error once run."""

    requests: Sequence[GenerationRequest]
    generations: list[Generation] | None = None
    error: BaseException | None = None
    done: bool = False


class Batcher(BatchEngine):
    """The wrapped engine, shared by `participants` threads, each of which calls `leave` when it is done; the
    thread that made it calls `serve` meanwhile."""

    def __init__(self, engine: Engine, participants: int) -> None:
        self.engine = engine
        self.name = engine.name
        self.context_tokens = engine.context_tokens
        self.default_sampling = engine.default_sampling
        self.parameters = engine.parameters
        self.batch_size = engine.batch_size
        self.tokenizer = engine.tokenizer
        self._participants = participants
        self._waiting: list[_Call] = []
        self._changed = threading.Condition()

    def leave(self) -> None:
        """This thread makes no more calls: the others no longer wait for it."""
        with self._changed:
            self._participants -= 1
            self._changed.notify_all()

    def generate_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        call = _Call(requests)
        with self._changed:
            self._waiting.append(call)
            self._changed.notify_all()
            while not call.done:
                self._changed.wait()
        if call.error is not None:
            raise call.error
        assert call.generations is not None
        return call.generations

    def serve(self) -> None:
        """Run the waiting calls as one batch whenever every participant still running waits, until all have
        left (on the thread that made the Batcher, while the participants' threads run)."""
        with self._changed:
            # A thread with a call waiting has not left, so no call outlives the participants.
            while self._participants > 0:
                if len(self._waiting) < self._participants:
                    self._changed.wait()
                    continue
                calls, self._waiting = self._waiting, []
                self._changed.release()
                try:
                    again = self._run(calls)
                finally:
                    self._changed.acquire()
                # Calls that lost their answers to another's stop are run again with the next batch.
                self._waiting[:0] = again
                self._changed.notify_all()

    def _run(self, calls: list[_Call]) -> list[_Call]:
        """Answer the calls; returns those to run again."""
        try:
            generations = self.engine.generate_many([request for call in calls for request in call.requests])
        except Stopped:
            # One job's stop ended the whole batch: it stops, the others go again.
            stopped = [
                call for call in calls if any(r.stop is not None and r.stop.is_set() for r in call.requests)
            ] or calls
            for call in stopped:
                call.error, call.done = Stopped(), True
            return [call for call in calls if call not in stopped]
        except Exception as exc:  # every job of the batch gets the engine's failure, as it would alone
            for call in calls:
                call.error, call.done = exc, True
            return []
        start = 0
        for call in calls:
            call.generations, call.done = generations[start : start + len(call.requests)], True
            start += len(call.requests)
        return []

"""A host-wide bound on parser processes: a semaphore of slot files that every process sharing a directory
locks with flock(2).

A slot is one parser process. The kernel drops a process's locks when it ends, however it ends, so a crashed
or killed holder never leaks a slot; and the files work across unrelated processes (API servers, workers)
with nothing to set up or clean away.
"""

import fcntl
import math
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ParserBusyError

# How often a waiting upload looks for a free slot again.
_POLL_S = 0.05


class HeldSlots:
    """Slots held by one extraction: its lead parser's and any further ones it may use."""

    def __init__(self, descriptors: list[int]) -> None:
        self.descriptors = descriptors

    @property
    def count(self) -> int:
        return len(self.descriptors)

    def keep(self, count: int) -> None:
        """Give back all but `count` slots (once the extraction knows how many parsers it needs)."""
        while len(self.descriptors) > count:
            os.close(self.descriptors.pop())  # closing the file drops its lock


class ParserSlots:
    """`count` slot files in `directory`; an extraction waits up to `wait_s` for one, then is refused."""

    def __init__(self, directory: Path, count: int, wait_s: float) -> None:
        self.directory = directory
        self.count = count
        self.wait_s = wait_s

    @contextmanager
    def hold(self, wanted: int) -> Iterator[HeldSlots]:
        """One slot, waited for, then up to `wanted` - 1 more that are free now; all given back on leaving."""
        self.directory.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait_s
        held = HeldSlots([])
        try:
            while not self._take_free(held, 1):
                if time.monotonic() >= deadline:
                    retry_after_s = max(1, math.ceil(self.wait_s))
                    raise ParserBusyError(
                        f"All {self.count} document parsers are busy; retry in {retry_after_s} s.",
                        retry_after_s,
                    )
                time.sleep(_POLL_S)
            self._take_free(held, wanted - 1)
            yield held
        finally:
            held.keep(0)

    def _take_free(self, held: HeldSlots, wanted: int) -> bool:
        """Lock up to `wanted` free slots into `held`, starting at a random one so that waiting processes do
        not all contend for the first; whether any was free."""
        taken = 0
        first = random.randrange(self.count)
        for offset in range(self.count):
            if taken >= wanted:
                break
            path = self.directory / f"slot-{(first + offset) % self.count}.lock"
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                continue
            held.descriptors.append(descriptor)
            taken += 1
        return taken > 0 or wanted <= 0

"""PDF extraction, run in child processes the caller can always stop.

pdfium is fast but neither thread-safe nor safe against hostile files, so it never runs in the calling
process: a lead child checks the file, opens it and reads the first share of the pages while further children
(big documents only) read the rest. Every child has memory and CPU-time limits; past the deadline all are
killed, and all die with the calling process. Given ParserSlots, children count against a host-wide bound:
the lead child waits for a slot, further children only use slots free at the start. A crashed or killed
child becomes an IngestionError here; the caller never hangs or crashes.
"""

import copy
import math
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.process as mp_process
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from . import pdf_worker
from .document import Page
from .errors import (
    ExtractionTimeoutError,
    IngestionError,
    MalformedPdfError,
    NoTextLayerError,
    TextTooLongError,
)
from .parser_slots import HeldSlots, ParserSlots

# Children fork from a small server process that has already imported pdfium and pypdf: fast to start, and
# safe in a caller with threads (a plain fork of one is not).
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload([pdf_worker.__name__])
_OUT_OF_MEMORY_SIGNALS = {signal.SIGABRT, signal.SIGKILL}
_START_LOCK = threading.Lock()


def _forget_inherited_fork_server() -> None:
    """A forked child (a Celery prefork worker, say) inherits its parent's handle on the fork server, which
    multiprocessing then checks with waitpid, failing: the server is not the child's own. Start afresh."""
    server = multiprocessing.forkserver._forkserver  # type: ignore[attr-defined]
    if server._forkserver_alive_fd is not None:
        os.close(server._forkserver_alive_fd)  # else the parent's server outlives the parent
    server._forkserver_pid = server._forkserver_address = server._forkserver_alive_fd = None
    server._lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_inherited_fork_server)


@dataclass(frozen=True)
class ParserLimits:
    """What one PDF may cost: see the matching settings in docproc.settings."""

    timeout_s: float = 120.0
    memory_bytes: int = 1 << 30
    max_inflated_bytes: int = 256 << 20
    max_form_draws_per_page: int = 50_000
    # None: no bound across calls (library use); the service passes the host-wide slots.
    slots: ParserSlots | None = None


def extract_pdf(
    path: Path,
    *,
    password: str | None,
    limits: ParserLimits,
    max_pages: int,
    max_chars: int,
    workers: int | None,
) -> list[Page]:
    """The pages of the PDF at `path` with their normalised text; see `docproc.ingestion.extract`."""
    workers = workers or len(os.sched_getaffinity(0))
    texts_by_start: dict[int, list[str]] = {}
    held_slots: AbstractContextManager[HeldSlots | None] = (
        limits.slots.hold(workers) if limits.slots else nullcontext()
    )
    with held_slots as held, _Children(limits) as children:
        children.start(
            pdf_worker.lead_job,
            path,
            password,
            max_pages,
            max_chars,
            held.count if held else workers,  # no more children than slots
            limits.max_inflated_bytes,
            limits.max_form_draws_per_page,
        )
        for message in children.messages():
            match message:
                case ("plan", _, ranges, max_form_draws):
                    if held:
                        held.keep(len(ranges))
                    for start, stop in ranges[1:]:
                        children.start(
                            pdf_worker.range_job, path, password, start, stop, max_chars, max_form_draws
                        )
                case ("pages", start, texts):
                    texts_by_start[start] = texts
                case ("error", error):
                    raise error
    texts = [text for start in sorted(texts_by_start) for text in texts_by_start[start]]
    if sum(map(len, texts)) > max_chars:
        raise TextTooLongError.over(max_chars)
    if not any(texts):
        raise NoTextLayerError(
            "The PDF has no text layer: it is a scanned or image-only PDF; OCR is not supported."
        )
    return [Page(number, text, "text_layer") for number, text in enumerate(texts, start=1)]


class _Children:
    """Child processes sharing one deadline, each with a pipe back; all are killed on leaving the block."""

    def __init__(self, limits: ParserLimits) -> None:
        self.timeout_s = limits.timeout_s
        self.memory_bytes = limits.memory_bytes
        self.deadline = time.monotonic() + limits.timeout_s
        self.running: dict[Connection, BaseProcess] = {}  # children that have not sent their last message
        self.processes: list[BaseProcess] = []

    def __enter__(self) -> "_Children":
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()
            process.join()
        for connection in self.running:
            connection.close()

    def start(self, job: Callable[..., None], *args: Any) -> None:
        receiver, sender = _CONTEXT.Pipe(duplex=False)
        # Past its deadline the parent kills a child; the CPU-time limit stops it even if the parent is gone.
        cpu_seconds = math.ceil(self.timeout_s) + 1
        try:
            with _plain_start():
                process = _CONTEXT.Process(
                    target=pdf_worker.child_main,
                    args=(sender, self.memory_bytes, cpu_seconds, job, *args),
                    daemon=True,
                )
                process.start()
        finally:
            sender.close()  # the child holds the only sending end now: its death reads as end-of-file here
        self.processes.append(process)
        self.running[receiver] = process

    def messages(self) -> Iterator[tuple[Any, ...]]:
        """Messages from all children as they come, until each has sent its last one."""
        while self.running:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise ExtractionTimeoutError(
                    f"Reading the PDF took longer than the {self.timeout_s:g} s allowed and was stopped."
                )
            for connection in wait(list(self.running), timeout=remaining):
                assert isinstance(connection, Connection)
                try:
                    message = connection.recv()
                except EOFError:
                    raise self._crash_error(self.running[connection]) from None
                if message[0] != "plan":
                    del self.running[connection]
                    connection.close()
                yield message

    def _crash_error(self, process: BaseProcess) -> IngestionError:
        process.join(max(0.0, self.deadline - time.monotonic()))
        exit_code = process.exitcode or 0
        if -exit_code in _OUT_OF_MEMORY_SIGNALS:
            return pdf_worker.out_of_memory_error(self.memory_bytes)
        return MalformedPdfError(
            f"The PDF parser crashed (exit code {exit_code}); the file is probably damaged."
        )


@contextmanager
def _plain_start() -> Iterator[None]:
    """While a child is created and started, make multiprocessing see a plain process with no main module.

    A child started by the fork server runs the caller's main module again before its target: seconds when
    that module imports a model stack, and needless, since the child runs only docproc code. And Celery's
    prefork workers (billiard) install their own daemonic process object as multiprocessing's current
    process: multiprocessing refuses children to a daemonic process, lest they be orphaned, and cannot pickle
    that object's auth key. Ours never outlive the call that starts them, so a non-daemonic copy with a
    plain auth key stands in.
    """
    with _START_LOCK:  # both are process-wide state
        main_module = sys.modules["__main__"]
        installed = multiprocessing.current_process()
        stand_in = copy.copy(installed)
        authkey = mp_process.AuthenticationString(bytes(installed.authkey))
        stand_in._config = dict(installed._config, daemon=False, authkey=authkey)  # type: ignore[attr-defined]
        sys.modules["__main__"] = types.ModuleType("__main__")
        mp_process._current_process = stand_in  # type: ignore[attr-defined]
        try:
            yield
        finally:
            mp_process._current_process = installed  # type: ignore[attr-defined]
            sys.modules["__main__"] = main_module

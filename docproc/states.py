"""The state store: fully read document states, kept on disk within a byte budget, so that a later task on
the same document skips the read ("read once, ask many").

A state is what a streaming engine holds once it has read a document: its linear-attention state plus the
KV cache of its full-attention layers (HybridState.save writes it as one safetensors file). Its size grows
with the document (Qwen3-Next-80B: 24 KiB of KV per token, about 24 GB for a million tokens in bf16), so
the store keeps at most ``budget_bytes`` of them and evicts the least recently used first.

API (``get_state_store()`` is the service's store, under ``data_dir/states/documents``):

- ``state_key(fingerprint, ids) -> str``: a state is valid for exactly one engine + weights (the engine's
  fingerprint) and one sequence of read token ids; the key is a digest of both.
- ``store.use(document_id, key)``: a context manager yielding the ``KeptState`` (path, tokens, size_bytes)
  when one is kept, else None. While the block runs, the state (and its key, if none is kept yet) is *in use*:
  no process evicts it. Use marks it recently used.
- ``store.keep(document_id, key, fingerprint, tokens, write)``: ``write(path)`` saves the state to a temp
  file; the store then evicts least recently used states not in use until it fits, and moves it into place
  atomically with its row. Returns the ``KeptState``, or None when it cannot fit (larger than the budget,
  or what it would displace is in use): the caller's task still succeeds, the document is read again next
  time. Call it inside ``use`` of the same key.
- ``store.remove_document(document_id)``: a deleted document's states, files and rows.
- ``store.remove_orphans(min_age_s)``: what crashes left (temp files, files without rows, rows without
  files, folders of deleted documents).

Metadata (document, key, engine fingerprint, tokens, bytes, last use) is a row of ``document_states``, so
that the API shows a document's state without touching files. Files live under
``directory/<document id>/<key>.safetensors``.

In use across processes: each state has a lock file, held shared (flock) by every user; eviction takes it
exclusively without waiting, and skips the state when it cannot. The kernel drops a process's locks when it
ends however it ends, so a crashed worker never pins a state. Changes to files and rows (keep, evict,
remove) are serialised by one store-wide lock file. Lock files are never removed while their document
exists: removing one that another process has open would let two processes lock different files for the
same state.
"""

import fcntl
import hashlib
import logging
import os
import shutil
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from filelock import FileLock
from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from docproc.db import session_scope
from docproc.models import Document, DocumentState, utcnow
from docproc.settings import get_settings

log = logging.getLogger(__name__)

STATE_SUFFIX = ".safetensors"
LOCK_SUFFIX = ".lock"
TEMP_MARK = ".tmp-"

Sessions = Callable[[], AbstractContextManager[Session]]


def state_key(fingerprint: str, ids: Sequence[int]) -> str:
    """The key of the state that reading `ids` with the engine of this fingerprint leaves."""
    digest = hashlib.sha256(fingerprint.encode())
    digest.update(array("q", ids).tobytes())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class KeptState:
    path: Path
    tokens: int
    size_bytes: int


class StateStore:
    """Document states under `directory`, at most `budget_bytes` of them; metadata through `sessions`."""

    def __init__(self, directory: Path, budget_bytes: int, sessions: Sessions = session_scope) -> None:
        self.directory = directory
        self.budget_bytes = budget_bytes
        self.sessions = sessions

    def path(self, document_id: str, key: str) -> Path:
        return self.directory / document_id / f"{key}{STATE_SUFFIX}"

    @contextmanager
    def use(self, document_id: str, key: str) -> Iterator[KeptState | None]:
        with self._shared_lock(document_id, key):
            yield self._touch(document_id, key)

    def keep(
        self, document_id: str, key: str, fingerprint: str, tokens: int, write: Callable[[Path], None]
    ) -> KeptState | None:
        final = self.path(document_id, key)
        temp = final.with_name(f"{final.name}{TEMP_MARK}{os.getpid()}")
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            write(temp)
            _fsync(temp)
            size = temp.stat().st_size
            with self._store_lock():
                if not self._make_room(size, document_id, key):
                    log.warning(
                        "state of %s (%d bytes) not kept: the store cannot make room", document_id, size
                    )
                    return None
                os.replace(temp, final)
                _fsync(final.parent)
                try:
                    self._record(document_id, key, fingerprint, tokens, size)
                except IntegrityError:  # the document was deleted meanwhile
                    final.unlink(missing_ok=True)
                    return None
            return KeptState(final, tokens, size)
        finally:
            temp.unlink(missing_ok=True)

    def remove_document(self, document_id: str) -> None:
        with self._store_lock():
            with self.sessions() as session:
                session.execute(delete(DocumentState).where(DocumentState.document_id == document_id))
            shutil.rmtree(self.directory / document_id, ignore_errors=True)

    def remove_orphans(self, min_age_s: float) -> int:
        """Remove temp files and state files older than min_age_s that no row names, rows whose file is gone,
        and the folders of documents that no longer exist; how many files and rows went."""
        if not self.directory.is_dir():
            return 0
        removed = 0
        cutoff = time.time() - min_age_s
        with self._store_lock(), self.sessions() as session:
            rows = {
                (row.document_id, row.key)
                for row in session.execute(select(DocumentState.document_id, DocumentState.key))
            }
            for folder in self.directory.iterdir():
                if not folder.is_dir():
                    continue
                if session.get(Document, folder.name) is None and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
                    continue
                for file in folder.iterdir():
                    orphan = TEMP_MARK in file.name or (
                        file.name.endswith(STATE_SUFFIX) and (folder.name, file.stem) not in rows
                    )
                    if orphan and file.stat().st_mtime < cutoff:
                        file.unlink(missing_ok=True)
                        removed += 1
            for document_id, key in rows:
                if not self.path(document_id, key).exists():
                    session.execute(delete(DocumentState).where(_is(document_id, key)))
                    removed += 1
        return removed

    def _touch(self, document_id: str, key: str) -> KeptState | None:
        """The kept state, marked used now; None (and its row gone) when its file is missing."""
        path = self.path(document_id, key)
        with self.sessions() as session:
            row = session.get(DocumentState, (document_id, key))
            if row is None:
                return None
            if not path.exists():
                session.delete(row)
                return None
            row.last_used_at = utcnow()
            return KeptState(path, row.tokens, row.size_bytes)

    def _make_room(self, size: int, document_id: str, key: str) -> bool:
        """Evict least recently used states not in use until `size` more bytes fit; whether they do. Nothing
        is evicted when they cannot fit: the candidates are locked first, then removed."""
        if size > self.budget_bytes:
            return False
        with self.sessions() as session:
            others = session.execute(
                select(DocumentState.document_id, DocumentState.key, DocumentState.size_bytes)
                .where((DocumentState.document_id != document_id) | (DocumentState.key != key))
                .order_by(DocumentState.last_used_at, DocumentState.key)
            ).all()
        excess = sum(row.size_bytes for row in others) + size - self.budget_bytes
        with ExitStack() as locks:
            chosen = []
            for row in others:
                if excess <= 0:
                    break
                if locks.enter_context(self._exclusive_lock_if_free(row.document_id, row.key)):
                    chosen.append(row)
                    excess -= row.size_bytes
            if excess > 0:
                return False
            for row in chosen:
                self.path(row.document_id, row.key).unlink(missing_ok=True)
                with self.sessions() as session:
                    session.execute(delete(DocumentState).where(_is(row.document_id, row.key)))
                log.info(
                    "evicted state %s of document %s (%d bytes)", row.key, row.document_id, row.size_bytes
                )
        return True

    @contextmanager
    def _exclusive_lock_if_free(self, document_id: str, key: str) -> Iterator[bool]:
        """Whether the state's lock was free: no process uses the state while this holds it."""
        descriptor = os.open(self._lock_path(document_id, key), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(descriptor)  # closing drops the lock

    def _record(self, document_id: str, key: str, fingerprint: str, tokens: int, size: int) -> None:
        now = utcnow()
        with self.sessions() as session:
            values = {"fingerprint": fingerprint, "tokens": tokens, "size_bytes": size, "last_used_at": now}
            if (
                session.execute(update(DocumentState).where(_is(document_id, key)).values(**values)).rowcount
                == 0
            ):
                session.add(DocumentState(document_id=document_id, key=key, created_at=now, **values))

    def _lock_path(self, document_id: str, key: str) -> Path:
        folder = self.directory / document_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{key}{LOCK_SUFFIX}"

    @contextmanager
    def _shared_lock(self, document_id: str, key: str) -> Iterator[None]:
        descriptor = os.open(self._lock_path(document_id, key), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH)
            yield
        finally:
            os.close(descriptor)

    def _store_lock(self) -> FileLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        return FileLock(self.directory / f"store{LOCK_SUFFIX}")


def _is(document_id: str, key: str) -> ColumnElement[bool]:
    return (DocumentState.document_id == document_id) & (DocumentState.key == key)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@cache
def get_state_store() -> StateStore:
    settings = get_settings()
    return StateStore(settings.state_dir / "documents", settings.state_store_bytes)

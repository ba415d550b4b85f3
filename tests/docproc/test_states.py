"""The state store: least-recently-used eviction within the budget, never of a state another process uses;
files and rows go together."""

import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from docproc.db import get_engine
from docproc.models import DocumentState, new_id
from docproc.states import StateStore, state_key
from tests.docproc.conftest import StoreFactory, add_documents

KEY = state_key("engine-fingerprint", [1, 2, 3])


def writer(size: int):  # noqa: ANN201 (a write callback, as HybridState.save is)
    return lambda path: path.write_bytes(b"s" * size)


def kept_rows(store: StateStore) -> dict[str, int]:
    with store.sessions() as session:
        return {row.document_id: row.size_bytes for row in session.scalars(select(DocumentState))}


def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'docproc.db'}"


def hold_in_another_process(tmp_path: Path, budget: int, document_id: str) -> subprocess.Popen[str]:
    """A process that uses the state until its stdin closes (or it is killed)."""
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from sqlalchemy.orm import sessionmaker
        from docproc.db import get_engine
        from docproc.states import StateStore
        store = StateStore(Path({str(tmp_path / "states")!r}), {budget},
                           sessionmaker(get_engine({database_url(tmp_path)!r})).begin)
        with store.use({document_id!r}, {KEY!r}) as kept:
            print("holding", kept is not None, flush=True)
            sys.stdin.read()
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "holding True\n"
    return process


def test_least_recently_used_are_evicted_never_one_in_use(state_store: StoreFactory, tmp_path: Path) -> None:
    a, b, c, d, e = (new_id("doc") for _ in range(5))
    add_documents(database_url(tmp_path), a, b, c, d, e)
    store = state_store(2500)
    for document_id in (a, b):
        kept = store.keep(document_id, KEY, "engine-fingerprint", 100, writer(1000))
        assert kept is not None and kept.path.stat().st_size == kept.size_bytes == 1000
    with store.use(a, KEY) as used:  # a is now more recently used than b
        assert used is not None and used.tokens == 100
    store.keep(c, KEY, "engine-fingerprint", 100, writer(1000))
    assert kept_rows(store) == {a: 1000, c: 1000}
    assert not store.path(b, KEY).exists()

    holder = hold_in_another_process(tmp_path, 2500, a)  # a is now the least recently used, and in use
    try:
        assert store.keep(d, KEY, "engine-fingerprint", 100, writer(1000)) is not None
        assert kept_rows(store) == {a: 1000, d: 1000}
        # Fitting e means evicting a too: refused while a is in use, and nothing of e is left behind.
        assert store.keep(e, KEY, "engine-fingerprint", 100, writer(2000)) is None
        assert kept_rows(store) == {a: 1000, d: 1000}
        assert list(store.path(e, KEY).parent.glob("*.safetensors*")) == []
    finally:
        holder.kill()  # a killed holder's lock is freed by the kernel
        holder.wait()
    assert store.keep(e, KEY, "engine-fingerprint", 100, writer(2000)) is not None
    assert kept_rows(store) == {e: 2000}
    assert sorted(path.name for path in store.directory.rglob("*.safetensors")) == [f"{KEY}.safetensors"]


def test_a_state_larger_than_the_budget_is_not_kept(state_store: StoreFactory, tmp_path: Path) -> None:
    document_id = new_id("doc")
    add_documents(database_url(tmp_path), document_id)
    store = state_store(999)
    assert store.keep(document_id, KEY, "engine-fingerprint", 100, writer(1000)) is None
    assert kept_rows(store) == {}
    with store.use(document_id, KEY) as kept:
        assert kept is None


def test_removing_a_document_removes_its_files_and_rows(state_store: StoreFactory, tmp_path: Path) -> None:
    removed, other = new_id("doc"), new_id("doc")
    add_documents(database_url(tmp_path), removed, other)
    store = state_store(10_000)
    second_key = state_key("other-engine", [1, 2, 3])
    for document_id, key in ((removed, KEY), (removed, second_key), (other, KEY)):
        store.keep(document_id, key, "engine-fingerprint", 100, writer(10))
    store.remove_document(removed)
    assert not (store.directory / removed).exists()
    assert kept_rows(store) == {other: 10}
    assert store.path(other, KEY).exists()


def test_orphans_of_crashes_are_removed(state_store: StoreFactory, tmp_path: Path) -> None:
    document_id, gone_key = new_id("doc"), state_key("gone", [1])
    add_documents(database_url(tmp_path), document_id)
    store = state_store(10_000)
    store.keep(document_id, KEY, "engine-fingerprint", 100, writer(10))
    store.keep(document_id, gone_key, "engine-fingerprint", 100, writer(10))
    store.path(document_id, gone_key).unlink()  # a row without its file
    no_row = store.path(document_id, state_key("unrecorded", [1]))
    no_row.write_bytes(b"crashed before its row")
    temp = store.path(document_id, KEY).with_name(f"{KEY}.safetensors.tmp-123")
    temp.write_bytes(b"crashed mid-write")
    deleted_document = store.directory / new_id("doc")
    deleted_document.mkdir()

    assert store.remove_orphans(min_age_s=3600) == 1  # only the row: files are younger than the grace
    assert store.remove_orphans(min_age_s=0) == 3
    assert not no_row.exists() and not temp.exists() and not deleted_document.exists()
    assert store.path(document_id, KEY).exists()
    with sessionmaker(get_engine(database_url(tmp_path))).begin() as session:
        assert list(session.scalars(select(DocumentState.key))) == [KEY]

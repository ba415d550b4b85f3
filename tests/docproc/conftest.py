import functools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from docproc.db import get_engine, migrate
from docproc.models import Document
from docproc.states import StateStore
from tests.conftest import REPO, service_env

StoreFactory = Callable[[int], StateStore]


def store_database(tmp_path: Path) -> str:
    """A migrated SQLite database under tmp_path (its URL)."""
    url = f"sqlite:///{tmp_path / 'docproc.db'}"
    migrate(url)
    return url


def add_documents(url: str, *document_ids: str) -> None:
    with sessionmaker(get_engine(url)).begin() as session:
        for document_id in document_ids:
            session.add(
                Document(
                    id=document_id,
                    owner=None,
                    filename=f"{document_id}.txt",
                    content_type="text/plain",
                    sha256=document_id.ljust(64, "0"),
                    size_bytes=1,
                    page_count=1,
                    tokens=1,
                )
            )


@pytest.fixture
def state_store(tmp_path: Path) -> StoreFactory:
    """Makes a state store with a byte budget, on its own migrated SQLite database and folder."""
    url = store_database(tmp_path)

    def make(budget_bytes: int) -> StateStore:
        return StateStore(tmp_path / "states", budget_bytes, sessionmaker(get_engine(url)).begin)

    return make


CliRun = Callable[..., subprocess.CompletedProcess[str]]


def run_cli(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """`docproc ARGS` in a subprocess with `env`; asserts that it succeeded (or, with ok=False, failed)."""
    done = subprocess.run(
        [sys.executable, "-m", "docproc.cli", *args],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert (done.returncode == 0) is ok, (args, done.stdout, done.stderr[-3000:])
    return done


@pytest.fixture
def docproc(tmp_path: Path, default_model: Path) -> CliRun:
    """The CLI on a database and data dir of this test's own (and the session's Redis)."""
    env = service_env(tmp_path / "data", f"sqlite:///{tmp_path / 'docproc.db'}", COLUMNS="200")
    return functools.partial(run_cli, env)

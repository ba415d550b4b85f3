from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from docproc.db import get_engine, migrate
from docproc.models import Document
from docproc.states import StateStore

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

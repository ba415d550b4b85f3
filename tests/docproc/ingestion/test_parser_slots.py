"""The host-wide bound on parser processes: slot files locked with flock, shared by every process."""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from docproc.ingestion import ParserBusyError, ParserLimits, ParserSlots, extract
from tests.conftest import SAMPLE_PDF, Service, service_env

from .pdfs import FOUR_PAGES, corpus_file


@contextmanager
def slot_taken(directory: Path, index: int) -> Iterator[None]:
    """Slot `index` locked by an open file of this test's own, as another process's parser would hold it."""
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(directory / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(descriptor)


def test_extraction_takes_free_slots_and_waits_then_is_refused_when_none_is(tmp_path: Path) -> None:
    slots = ParserSlots(tmp_path / "slots", count=2, wait_s=0.5)
    with slots.hold(wanted=5) as held:
        assert held.count == 2  # a big document may use every free slot, never more
        held.keep(1)
        with slots.hold(wanted=5) as other:
            assert other.count == 1  # the one given back
            with pytest.raises(ParserBusyError) as raised, slots.hold(wanted=1):
                pass
    assert raised.value.status == 503 and raised.value.code == "busy"
    assert raised.value.headers == {"Retry-After": "1"}
    limits = ParserLimits(slots=slots)
    with slot_taken(slots.directory, 0), slot_taken(slots.directory, 1), pytest.raises(ParserBusyError):
        extract(corpus_file(FOUR_PAGES), limits=limits)
    assert len(extract(corpus_file(FOUR_PAGES), limits=limits).pages) == 4  # all given back


@pytest.fixture
def one_parser_api(tmp_path: Path, default_model: Path) -> Iterator[Service]:
    env = service_env(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'docproc.db'}",
        DOCPROC_MAX_PARSER_PROCESSES="1",
        DOCPROC_PARSER_WAIT_S="1",
    )
    service = Service(env, tmp_path)
    service.start_api()
    yield service
    service.stop()


def test_upload_gets_503_busy_while_the_parsers_are_taken(one_parser_api: Service, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with one_parser_api.client() as client:
        with slot_taken(data_dir / "parser-slots", 0):  # another process's parse, as far as the API knows
            response = client.post("/v1/documents", files={"file": ("report.pdf", SAMPLE_PDF.read_bytes())})
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "1"
            assert response.json()["detail"]["code"] == "busy"
            assert [path for path in (data_dir / "blobs").rglob("*") if path.is_file()] == []  # none kept
        response = client.post("/v1/documents", files={"file": ("report.pdf", SAMPLE_PDF.read_bytes())})
        assert response.status_code == 201, response.text

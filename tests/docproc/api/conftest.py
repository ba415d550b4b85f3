from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Service, service_env

KEY_A, KEY_B = "key-alice-0123456789", "key-bob-9876543210"


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Service]:
    """A live API server (no worker) with two API keys."""
    service = Service(
        service_env(tmp_path / "data", database_url, DOCPROC_API_KEYS=f"{KEY_A},{KEY_B}",
                    DOCPROC_MAX_UPLOAD_BYTES=str(2 * 1024 * 1024), DOCPROC_PARSE_TIMEOUT_S="20"),
        tmp_path,
    )
    service.start_api()
    yield service
    service.stop()

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Service, service_env


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Service]:
    """A live API server (no worker) with two API keys of its own (`service.keys`)."""
    keys = [f"key-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}"]
    env = service_env(
        tmp_path / "data",
        database_url,
        DOCPROC_API_KEYS=",".join(keys),
        DOCPROC_MAX_UPLOAD_BYTES=str(2 * 1024 * 1024),
        DOCPROC_PARSE_TIMEOUT_S="20",
    )
    service = Service(env, tmp_path)
    service.keys = keys
    service.start_api()
    yield service
    service.stop()

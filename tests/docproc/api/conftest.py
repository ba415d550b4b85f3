import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Service, database_for, service_env


def start_api(database_url: str, tmp_path: Path, **extra_env: str) -> Service:
    """A live API server (no worker) with two API keys of its own (`service.keys`)."""
    keys = [f"key-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}"]
    env = service_env(
        tmp_path / "data",
        database_url,
        DOCPROC_API_KEYS=",".join(keys),
        DOCPROC_MAX_UPLOAD_BYTES=str(2 * 1024 * 1024),
        DOCPROC_PARSE_TIMEOUT_S="20",
        **extra_env,
    )
    service = Service(env, tmp_path)
    service.keys = keys
    service.start_api()
    return service


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Service]:
    service = start_api(database_url, tmp_path)
    yield service
    service.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, default_model: Path
) -> Iterator[Service]:
    """One server for a whole test module, on each database; tests must not depend on each other's data."""
    tmp_path = tmp_path_factory.mktemp(f"api-{request.param}")
    with database_for(request, tmp_path) as database_url:
        service = start_api(database_url, tmp_path, **getattr(request.module, "API_ENV", {}))
        yield service
        service.stop()

"""/docs and /redoc work offline: every script, style and icon they load comes from the server itself."""

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import Service, service_env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Iterator[Service]:
    tmp_path = tmp_path_factory.mktemp("docs")
    service = Service(service_env(tmp_path / "data", f"sqlite:///{tmp_path / 'docproc.db'}"), tmp_path)
    service.start_api()
    yield service
    service.stop()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_reference_no_external_host(server: Service, page: str) -> None:
    with server.client() as client:
        html = client.get(page).text
        assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
        assets += re.findall(r"""(?:openapi|spec)Url["']?\s*[:=]\s*["']([^"']+)["']""", html)
        assert assets, html
        for url in assets:
            assert not urlsplit(url).netloc, f"{page} loads {url} from another host"
            response = client.get(url)
            assert response.status_code == 200 and response.content, url

"""/docs renders every route in a real browser, with no internet: its assets are served locally.

Headless Chromium (Debian's `chromium`) loads the page and runs Swagger UI's JavaScript; the
rendered page must list every path of the OpenAPI schema.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import httpx
import pytest

from runtime.container import build_runtime
from runtime.settings import Settings
from tests.http_server import serve
from tests.services import services_required
from webhook.app import create_app

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Chromium is not installed (Debian: apt-get install chromium)"
        if services_required():
            pytest.fail(f"{message} and FRESHCACHE_REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data_dir = tmp_path_factory.mktemp("docs")
    runtime = build_runtime(Settings(data_dir=data_dir))
    try:
        with serve(create_app(runtime)) as http:
            yield http
    finally:
        runtime.close()


def rendered(url: str) -> str:
    """The page's DOM after its scripts ran (Chromium's --dump-dom)."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                chromium(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_docs_render_every_route_from_local_assets(client: httpx.Client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    external = re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", page.text)
    assert not external, f"/docs loads assets from elsewhere: {external}"
    for asset in re.findall(r"""(?:src|href)=["'](/[^"']+)""", page.text):
        assert client.get(asset).status_code == 200, asset

    dom = rendered(f"{client.base_url}/docs")
    shown = set(re.findall(r'data-path="([^"]+)"', dom))
    paths = set(client.get("/openapi.json").json()["paths"])
    assert len(paths) >= 7
    assert paths <= shown, f"not rendered: {sorted(paths - shown)}"

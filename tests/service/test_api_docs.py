"""``/docs`` and ``/redoc`` load every script, style sheet and icon from the server itself:
the pages reference no other host, and each asset they name answers 200."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hwsearch.db import Store

CHROMIUM = os.environ.get("HWSEARCH_CHROMIUM", "/usr/bin/chromium")
REFERENCE = re.compile(
    r"""(?:src|href)\s*=\s*["']([^"']+)["']|(?:url|openapi_url)\s*:\s*["']([^"']+)["']"""
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, serve_store: Any) -> Iterator[Any]:
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('docs') / 'docs.db'}")
    with serve_store(store) as running:
        yield running
    store.close()


def _references(html: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(html)]


@pytest.mark.parametrize(
    ("page", "types"),
    [
        ("/docs", {".js": "javascript", ".css": "text/css", ".png": "image/png"}),
        ("/redoc", {".js": "javascript", ".png": "image/png"}),
    ],
)
def test_docs_pages_reference_only_local_assets(
    server: Any, page: str, types: dict[str, str]
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:  # no token: docs are public
        answer = client.get(page)
        assert answer.status_code == 200
        html = answer.text
        assert "cdn" not in html.lower() and "fonts.googleapis" not in html
        refs = _references(html)
        assets = [r for r in refs if Path(r).suffix in types]
        assert {Path(a).suffix for a in assets} == set(types), refs
        for ref in refs:
            assert ref.startswith("/") and not ref.startswith("//"), f"{page} names {ref}"
        for asset in assets:
            got = client.get(asset)
            assert got.status_code == 200, asset
            assert types[Path(asset).suffix] in got.headers["content-type"], asset
            assert len(got.content) > 1000, asset
        assert client.get("/openapi.json").json()["info"]["title"] == "hwsearch"


def test_swagger_ui_draws_the_api_with_every_other_host_blocked(server: Any) -> None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        reason = f"chromium not found at {CHROMIUM} (install it with `make browser`)"
        if os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}:
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()

            def route(request_route: Any) -> None:
                url = request_route.request.url
                if url.startswith(server.url):
                    request_route.continue_()
                else:
                    outside.append(url)
                    request_route.abort()

            page.route("**/*", route)
            page.goto(f"{server.url}/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
            assert "hwsearch" in page.locator(".swagger-ui .info .title").inner_text()
            assert page.locator(".opblock").count() > 5  # the operations are listed
        finally:
            browser.close()
    assert outside == []

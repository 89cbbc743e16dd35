"""/api/docs: Swagger UI from our own static files, under the pages' CSP, and no CDN anywhere."""

import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from server.web.headers import CSP
from tests.web.conftest import BrowserLog
from tests.web.html import parse

ROOT = Path(__file__).resolve().parent.parent.parent
ABSOLUTE_URL = re.compile(r"""\bhttps?://[^\s"'<>)]+""")
# Absolute URLs that may appear in templates and server code: none of them is loaded by a page.
ALLOWED_URLS = re.compile(
    r"https?://(127\.0\.0\.1|localhost|testserver|server:8000|assay:8000|\{host\})"  # our server, in messages
    r"|https?://(www\.)?(w3\.org|example\.com)"  # XML namespaces, documentation examples
)


class TestDocsPage:
    async def test_references_only_same_origin_assets_and_serves_them(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/docs")
        assert response.status_code == 200
        assert response.headers["content-security-policy"] == CSP
        page = parse(response.text)
        urls = [tag["src"] for tag in page.find_all("script")] + [
            tag["href"] for tag in page.find_all("link", rel="stylesheet")
        ]
        assert len(urls) == 3  # the bundle, our starter, the style sheet
        for url in urls:
            parts = urlsplit(url)
            assert parts.netloc in ("", "testserver"), url
            asset = await client.get(parts.path)
            assert asset.status_code == 200, url
            assert len(asset.content) > 200, url
        assert page.find(id="swagger-ui")["data-openapi-url"] == "/api/openapi.json"

    async def test_no_inline_script(self, client: httpx.AsyncClient) -> None:
        page = parse((await client.get("/api/docs")).text)
        assert all(tag.get("src") for tag in page.find_all("script"))

    async def test_renders_the_operations_in_chromium_without_errors(self, page, browser_log: BrowserLog) -> None:  # type: ignore[no-untyped-def]
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        await page.goto("/api/docs")
        await page.wait_for_selector(".opblock-summary-path", timeout=20_000)
        paths = await page.locator(".opblock-summary-path").all_inner_texts()
        assert "/api/v1/auth/session" in [p.replace("\u200b", "") for p in paths]
        schema = await (await page.request.get("/api/openapi.json")).json()
        operations = sum(len(methods) for methods in schema["paths"].values())
        assert await page.locator(".opblock").count() == operations
        origin = urlsplit(page.url).netloc
        assert {urlsplit(url).netloc for url in requests if not url.startswith("data:")} == {origin}
        browser_log.assert_clean()


def test_no_cdn_or_other_origin_in_templates_or_server() -> None:
    """No page loads anything from another origin: every absolute URL in templates/ and server/
    (our own code and static files, not the vendored ones) is one of a few harmless kinds."""
    files = [*ROOT.joinpath("templates").rglob("*.html")] + [
        path
        for path in ROOT.joinpath("server").rglob("*")
        if path.suffix in {".py", ".js", ".css", ".html"} and "vendor" not in path.parts
    ]
    found = [
        f"{path.relative_to(ROOT)}: {url}"
        for path in files
        for url in ABSOLUTE_URL.findall(path.read_text(encoding="utf-8"))
        if not ALLOWED_URLS.match(url)
    ]
    assert found == []


@pytest.mark.parametrize("name", ["htmx.min.js", "swagger-ui-bundle.js", "swagger-ui.css"])
def test_vendored_assets_come_from_the_lock_file(name: str) -> None:
    """The Makefile copies what package-lock.json pins; the files are there after `make setup`."""
    assert (ROOT / "server" / "static" / "vendor" / name).stat().st_size > 10_000
    lock = (ROOT / "package-lock.json").read_text()
    assert '"node_modules/swagger-ui-dist"' in lock
    assert '"node_modules/htmx.org"' in lock

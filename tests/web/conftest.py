"""Fixtures for the HTML pages: a live server on the test database and a headless Chromium.

The live server is the real app (`create_app`) run by uvicorn in a background thread, with its
own engine on the database tests/conftest.py created; tables are truncated after each test
as for every other test. Browser tests drive Debian's chromium through Playwright's async API
on the test event loop, and skip, saying why, when chromium is not installed.
"""

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn

from server.app import create_app

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
NONCE = re.compile(r'name="login_nonce" value="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTTP_4XX = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[str]:
    """The app served over real HTTP on 127.0.0.1; yields its base URL."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(database_url=database_url), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where browser tests save screenshots (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
async def browser():  # type: ignore[no-untyped-def]
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    yield browser
    await browser.close()
    await playwright.stop()


@dataclass
class BrowserLog:
    """What a page did that a test may want to forbid: dialogs (alert…), console errors, uncaught errors."""

    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        # Chromium logs every 4xx answer as a console error; a refused form is an answer, not a fault.
        errors = [e for e in self.console_errors if not HTTP_4XX.match(e)]
        assert self.dialogs == [], f"a dialog opened: {self.dialogs}"
        assert errors == [], f"console errors: {errors}"
        assert self.page_errors == [], f"uncaught page errors: {self.page_errors}"


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
async def page(browser, live_server: str, browser_log: BrowserLog):  # type: ignore[no-untyped-def]
    """A fresh browser context (no cookies) at 1280x800, with dialogs and console errors recorded."""
    context = await browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    page.set_default_timeout(10_000)

    async def on_dialog(dialog) -> None:  # type: ignore[no-untyped-def]
        browser_log.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda m: browser_log.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: browser_log.page_errors.append(str(e)))
    yield page
    await context.close()


async def login(page, email: str, password: str) -> None:  # type: ignore[no-untyped-def]
    """Log in through the form, as a person would, and wait for the page after it."""
    await page.goto("/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    async with page.expect_navigation():
        await page.click("button[type=submit]")


async def open_label(page, project_id: object) -> None:  # type: ignore[no-untyped-def]
    """Open a project's labeling page and wait until its script has fetched the queue and shown the first slot."""
    await page.goto(f"/projects/{project_id}/label")
    await page.wait_for_selector("#queue > .slot:not([hidden])")


async def screenshot(page, artifacts: Path, name: str, *, full_page: bool = False) -> Path:  # type: ignore[no-untyped-def]
    path = artifacts / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def page_login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    """Log in over plain HTTP (no browser), as whoever was logged in before: fetch the form, post it."""
    client.cookies.clear()
    form = await client.get("/login")
    nonce = NONCE.search(form.text)
    assert nonce is not None, "the login form has no nonce"
    return await client.post(
        "/login", data={"email": email, "password": password, "login_nonce": nonce.group(1), "next": "/"}
    )


def csrf_of(html: str) -> str:
    """The CSRF token a rendered page carries in its forms."""
    match = CSRF.search(html)
    assert match is not None, "no csrf_token field on the page"
    return match.group(1)

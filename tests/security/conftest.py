"""The browser fixtures of tests/web (live server, Chromium, console log), for the security suite."""

from tests.web.conftest import browser, browser_log, live_server, page

__all__ = ["browser", "browser_log", "live_server", "page"]

"""Security headers on every page (not /api, whose docs page loads its own assets), and Server-Timing.

The Content-Security-Policy allows scripts only from our own origin: no inline script, no
`eval`, no inline event handlers. Model outputs are escaped by Jinja2 anyway; this is the
second wall if a template ever forgot. Styles allow inline `style=""` attributes (progress bar
widths) but no style sheets from elsewhere.
"""

import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class PageSecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # The server's own time for this page or fragment (browser dev tools and bench/ read it).
                headers.append("Server-Timing", f"app;dur={(time.perf_counter() - started) * 1000:.1f}")
                for name, value in PAGE_HEADERS.items():
                    headers.setdefault(name, value)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Cache-Control", "no-store")  # pages are per user: never from a cache
            await send(message)

        await self.app(scope, receive, send_with_headers)

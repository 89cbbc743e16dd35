"""Security headers on every page and the API reference (not the JSON API), HSTS, and Server-Timing.

The Content-Security-Policy allows scripts only from our own origin: no inline script, no
`eval`, no inline event handlers. Model outputs are escaped by Jinja2 anyway; this is the
second wall if a template ever forgot. Styles allow inline `style=""` attributes (progress bar
widths) but no style sheets from elsewhere. `/api/docs` (Swagger UI, served from our own static
files) is a page like the others and gets the same policy.

In production, every response to a request that came over HTTPS (directly, or through a proxy
named in ASSAY_TRUSTED_PROXIES that says so) carries Strict-Transport-Security, so the browser
never again sends the session cookie over plain HTTP to this host.
"""

import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.config import settings

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


HSTS = "max-age=31536000"  # one year; no includeSubDomains: other hosts under the domain are not ours
API_PAGES = frozenset({"/api/docs"})


def is_page(path: str) -> bool:
    return not path.startswith("/api/") or path in API_PAGES


def sends_hsts(scope: Scope) -> bool:
    return settings.environment == "production" and scope.get("scheme") == "https"


class PageSecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page, hsts = is_page(scope["path"]), sends_hsts(scope)
        if not page and not hsts:
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if hsts:
                    headers.setdefault("Strict-Transport-Security", HSTS)
                if page:
                    # The server's own time for this page or fragment (browser dev tools and bench/ read it).
                    headers.append("Server-Timing", f"app;dur={(time.perf_counter() - started) * 1000:.1f}")
                    for name, value in PAGE_HEADERS.items():
                        headers.setdefault(name, value)
                    if headers.get("content-type", "").startswith("text/html"):
                        headers.setdefault("Cache-Control", "no-store")  # pages are per user: never from a cache
            await send(message)

        await self.app(scope, receive, send_with_headers)

"""The ASGI application: lifespan (database), middleware, error handlers, routers, static files."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from server import __version__
from server.auth.api import router as auth_router
from server.auth.routes import router as auth_pages
from server.batches.api import router as batches_router
from server.batches.routes import router as batches_pages
from server.config import DEV_SECRET, settings
from server.db import make_engine, make_sessionmaker
from server.errors import TooLarge, install_handlers, render_json
from server.exports.api import router as exports_router
from server.labeling.api import router as labeling_router
from server.labeling.routes import router as labeling_pages
from server.projects.api import router as projects_router
from server.projects.routes import router as projects_pages
from server.rewards.api import router as rewards_router
from server.rewards.routes import router as rewards_pages
from server.users.api import router as users_router
from server.users.routes import router as users_pages
from server.web.errors import install_page_handlers
from server.web.headers import PageSecurityHeaders
from server.web.templating import render

STATIC_DIR = Path(__file__).resolve().parent / "static"
DOCS_URL = "/api/docs"
OPENAPI_URL = "/api/openapi.json"
logger = logging.getLogger("assay")


def warn_about_secret() -> None:
    """Say so at start when the public development secret is in use (production refuses it)."""
    if settings.secret_key == DEV_SECRET:
        logger.warning(
            "ASSAY_SECRET_KEY is not set: this server uses the public development secret, so anyone can "
            "forge its signed values. Fine on your own machine; anywhere others can reach it, set "
            "ASSAY_SECRET_KEY to at least 32 random characters."
        )


class UploadLimit:
    """Refuse a body larger than the upload limit: at once when Content-Length says so, else
    (a chunked upload) as soon as the bytes read pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def error(self) -> TooLarge:
        mb = self.max_bytes // (1024 * 1024)
        return TooLarge(f"The upload is larger than the {mb} MB limit; split it into several batches.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await render_json(self.error())(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self.error()  # rendered by the app's AssayError handler
            return message

        await self.app(scope, counting_receive, send)


def create_app(database_url: str | None = None) -> FastAPI:
    """Build the app; without a URL it uses DATABASE_URL or starts the embedded PostgreSQL."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from server.migrate import resolve_database_url

        warn_about_secret()
        url = database_url or resolve_database_url()
        app.state.engine = make_engine(url)
        app.state.sessionmaker = make_sessionmaker(app.state.engine)
        yield
        await app.state.engine.dispose()

    app = FastAPI(
        title="Assay",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # our own page below: Swagger UI from our static files, under the pages' CSP
        redoc_url=None,
        openapi_url=OPENAPI_URL,
    )
    install_handlers(app)
    install_page_handlers(app)
    api = APIRouter(prefix="/api/v1")
    for router in (
        auth_router,
        users_router,
        projects_router,
        batches_router,
        labeling_router,
        exports_router,
        rewards_router,
    ):
        api.include_router(router)
    app.include_router(api)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get(DOCS_URL, include_in_schema=False)
    async def api_docs(request: Request) -> Response:
        """The API reference (Swagger UI) over this server's OpenAPI schema."""
        return render(request, "api/docs.html", {"openapi_url": OPENAPI_URL})

    for pages in (auth_pages, labeling_pages, projects_pages, batches_pages, users_pages, rewards_pages):
        app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(PageSecurityHeaders)
    app.add_middleware(UploadLimit, max_bytes=settings.max_upload_bytes)
    if settings.trusted_proxies.strip():
        # Outermost: behind a named proxy, the client address (login throttling) and the scheme
        # (HSTS) come from its X-Forwarded-For / X-Forwarded-Proto; from anyone else, the socket.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app

"""The ASGI application: lifespan (database), middleware, error handlers, routers, static files."""

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from server import __version__
from server.auth.api import router as auth_router
from server.auth.routes import router as auth_pages
from server.batches.api import router as batches_router
from server.batches.gate import is_upload_route, may_upload
from server.batches.routes import router as batches_pages
from server.config import DEV_SECRET, settings
from server.critiques.api import router as critiques_router
from server.critiques.pages import router as planted_pages
from server.critiques.routes import router as critiques_pages
from server.db import make_engine, make_sessionmaker
from server.errors import API_ERRORS, install_handlers, size_text
from server.exports.api import router as exports_router
from server.exports.identity import settle
from server.exports.limits import make_export_engine
from server.exports.routes import router as exports_pages
from server.handoff.api import router as handoff_router
from server.items import search
from server.items.api import router as items_router
from server.items.routes import router as items_pages
from server.labeling.api import router as labeling_router
from server.labeling.routes import router as labeling_pages
from server.leaderboard.api import router as leaderboard_router
from server.leaderboard.routes import router as leaderboard_pages
from server.projects.api import router as projects_router
from server.projects.routes import router as projects_pages
from server.quality.api import router as quality_router
from server.quality.cache import refreshes_done
from server.quality.gold_pages import router as gold_pages
from server.quality.routes import router as quality_pages
from server.rewards.api import router as rewards_router
from server.rewards.routes import router as rewards_pages
from server.users.api import router as users_router
from server.users.routes import router as users_pages
from server.web.errors import UnhandledErrors, install_page_handlers
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


class BodyLimit:
    """Bound every request body before anything reads it.

    A request may carry `max_body_bytes` (1 MB), except an upload whose headers name someone who
    may import (`batches/gate.py`, checked before a byte of the body is read), which may carry
    `max_upload_bytes`. Reading past the limit, or at all when Content-Length is already past it,
    raises a 413 that the app's handlers render (JSON under /api, a page elsewhere); a route that
    never reads the body (a 401 for a caller without credentials) answers as it would anyway.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_upload_bytes: int,
        is_upload: Callable[[Scope], bool] = is_upload_route,
        may_upload: Callable[[Scope], Awaitable[bool]] = may_upload,
    ) -> None:
        self.app = app
        self.max_body_bytes, self.max_upload_bytes = max_body_bytes, max_upload_bytes
        self.is_upload, self.may_upload = is_upload, may_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = self.is_upload(scope) and await self.may_upload(scope)
        limit = self.max_upload_bytes if upload else self.max_body_bytes
        refusal = HTTPException(
            413,
            f"The upload is larger than the {size_text(limit)} limit; split it into several batches."
            if upload
            else f"The request body is larger than the {size_text(limit)} limit for this request.",
        )
        length = dict(scope["headers"]).get(b"content-length", b"")
        declared = int(length) if length.isdigit() else 0
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared > limit:
                raise refusal  # before reading a byte
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise refusal
            return message

        await self.app(scope, limited_receive, send)


_startup_frozen = False


def freeze_startup_objects() -> None:
    """Leave what start-up built (modules, routes, templates, the ORM's mappers) out of every later
    garbage collection, once per process.

    Those objects live as long as the process, yet a full collection walks all of them (about
    160,000 in a server process): `gc.freeze()` moves them to the permanent generation, so the
    collections that requests trigger only walk what requests made. Garbage is collected first, so
    nothing collectable is frozen.
    """
    global _startup_frozen
    if not _startup_frozen:
        _startup_frozen = True
        gc.collect()
        gc.freeze()


def create_app(database_url: str | None = None) -> FastAPI:
    """Build the app; without a URL it uses DATABASE_URL or starts the embedded PostgreSQL."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from server.migrate import resolve_database_url

        warn_about_secret()
        url = database_url or resolve_database_url()
        app.state.engine = make_engine(url)
        app.state.sessionmaker = make_sessionmaker(app.state.engine)
        # Exports stream for as long as the client reads: they hold connections of their own
        # bounded pool, never the one raters use (exports/limits.py).
        app.state.export_engine = make_export_engine(url)
        await settle(app.state.engine)
        search.schedule(app.state.engine)  # search vectors an earlier process left unwritten
        freeze_startup_objects()
        yield
        await refreshes_done()  # quality figures being computed in the background
        await search.indexing_done()  # search vectors being written after an import
        await app.state.export_engine.dispose()
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
    api = APIRouter(prefix="/api/v1", responses=API_ERRORS)
    for router in (
        auth_router,
        users_router,
        projects_router,
        batches_router,
        labeling_router,
        exports_router,
        rewards_router,
        quality_router,
        handoff_router,
        leaderboard_router,
        critiques_router,
        items_router,
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

    pages_routers = (auth_pages, labeling_pages, projects_pages, batches_pages, items_pages, exports_pages)
    for pages in (
        *pages_routers,
        users_pages,
        rewards_pages,
        leaderboard_pages,
        quality_pages,
        gold_pages,
        planted_pages,
        critiques_pages,
    ):
        app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(PageSecurityHeaders)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes)
    app.add_middleware(UnhandledErrors)  # sees every error the handlers left
    if settings.trusted_proxies.strip():
        # Outermost: behind a named proxy, the client address (login throttling) and the scheme
        # (HSTS) come from its X-Forwarded-For / X-Forwarded-Proto; from anyone else, the socket.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app

"""Cookies and HSTS in production (issue 8, item 7): the session cookie is Secure, and HSTS is sent
when the request came over HTTPS, directly or through a trusted proxy."""

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.app import create_app
from server.config import settings
from tests.factories import PASSWORD, create_user

LOGIN = "/api/v1/auth/session"
HSTS = "max-age=31536000"


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "environment", "production")
    monkeypatch.setattr(settings, "secret_key", "p" * 48)


@pytest.fixture
async def connect(
    app: FastAPI,
) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """A client to `application` from `peer`, over `scheme`."""
    clients: list[httpx.AsyncClient] = []

    def make(*, scheme: str = "http", peer: str = "127.0.0.1", application: FastAPI = app) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=application, client=(peer, 50000))
        clients.append(httpx.AsyncClient(transport=transport, base_url=f"{scheme}://testserver"))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def behind_proxy(
    monkeypatch: pytest.MonkeyPatch, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> FastAPI:
    monkeypatch.setattr(settings, "trusted_proxies", "10.0.0.1")
    app = create_app(database_url="unused")
    app.state.engine, app.state.sessionmaker = engine, sessionmaker
    return app


class TestSessionCookie:
    @pytest.mark.usefixtures("production")
    async def test_secure_in_production(self, connect, session: AsyncSession) -> None:  # type: ignore[no-untyped-def]
        user = await create_user(session)
        response = await connect(scheme="https").post(LOGIN, json={"email": user.email, "password": PASSWORD})
        assert response.status_code == 200
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{settings.session_cookie}=")
        assert "Secure" in cookie
        assert "HttpOnly" in cookie

    async def test_not_secure_in_development(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session)
        response = await client.post(LOGIN, json={"email": user.email, "password": PASSWORD})
        assert "Secure" not in response.headers["set-cookie"]

    @pytest.mark.usefixtures("production")
    async def test_the_login_forms_cookie_is_secure_too(self, connect) -> None:  # type: ignore[no-untyped-def]
        response = await connect(scheme="https").get("/login")
        assert "Secure" in response.headers["set-cookie"]


@pytest.mark.usefixtures("production")
class TestHsts:
    @pytest.mark.parametrize("path", ["/login", "/api/v1/auth/me", "/healthz", "/api/docs"])
    async def test_sent_over_https(self, connect, path: str) -> None:  # type: ignore[no-untyped-def]
        assert (await connect(scheme="https").get(path)).headers["strict-transport-security"] == HSTS

    async def test_not_sent_over_plain_http(self, connect) -> None:  # type: ignore[no-untyped-def]
        assert "strict-transport-security" not in (await connect().get("/login")).headers

    async def test_not_sent_outside_production(
        self,
        connect,
        monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
    ) -> None:
        monkeypatch.setattr(settings, "environment", "development")
        assert "strict-transport-security" not in (await connect(scheme="https").get("/login")).headers

    async def test_sent_when_the_trusted_proxy_says_https(self, connect, behind_proxy: FastAPI) -> None:  # type: ignore[no-untyped-def]
        proxied = connect(peer="10.0.0.1", application=behind_proxy)
        response = await proxied.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert response.headers["strict-transport-security"] == HSTS

    async def test_not_believed_from_anyone_else(self, connect, behind_proxy: FastAPI) -> None:  # type: ignore[no-untyped-def]
        other = connect(peer="10.0.0.2", application=behind_proxy)
        response = await other.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in response.headers

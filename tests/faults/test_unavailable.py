"""A database the server cannot reach: 503 with a sentence and Retry-After, JSON under /api and a page
elsewhere, answered within the pool or connect timeout instead of a 500 or a hang.

In-process (the app on httpx's ASGI transport) with an engine of its own: one whose only pooled
connection the test holds (pool exhausted), one pointed at a socket where no server listens. Both
run on either CI pass; `test_database_restart.py` restarts a real one.
"""

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.app import create_app
from server.db import make_engine, make_sessionmaker
from server.models import Role
from tests.factories import PASSWORD, bearer, create_token, create_user
from tests.faults.conftest import DATABASE_DOWN, POOL_BUSY, RETRY_AFTER, UNAVAILABLE_TITLE
from tests.web.conftest import page_login

POOL_TIMEOUT = 0.5


async def _client(engine: AsyncEngine) -> httpx.AsyncClient:
    app = create_app(database_url="unused")
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=POOL_TIMEOUT)
    yield engine
    await engine.dispose()


def assert_json_503(response: httpx.Response, message: str) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": message}
    assert response.headers["Retry-After"] == RETRY_AFTER


def assert_page_503(response: httpx.Response, message: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert UNAVAILABLE_TITLE in response.text  # the error page's title
    assert message in response.text
    assert response.headers["Retry-After"] == RETRY_AFTER


class TestPoolExhausted:
    async def test_api_page_and_htmx_answer_503_after_the_pool_timeout(
        self, one_connection: AsyncEngine, session: AsyncSession
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        token = await create_token(session, admin)
        async with await _client(one_connection) as client:
            await page_login(client, admin.email, PASSWORD)  # before the pool is taken
            async with one_connection.connect() as held:  # the pool's only connection
                await held.execute(text("SELECT 1"))
                started = time.monotonic()
                api = await client.get("/api/v1/projects", headers=bearer(token))
                waited = time.monotonic() - started
                page = await client.get("/")
                toast = await client.get("/", headers={"HX-Request": "true", "HX-Target": "main"})
            assert_json_503(api, POOL_BUSY)
            assert POOL_TIMEOUT <= waited < 3  # waited out the pool timeout, then answered
            assert_page_503(page, POOL_BUSY)
            assert toast.status_code == 503
            assert toast.headers["HX-Retarget"] == "#flash"
            assert POOL_BUSY in toast.text
            # The connection is back: the same requests succeed.
            assert (await client.get("/api/v1/projects", headers=bearer(token))).status_code == 200
            assert (await client.get("/")).status_code == 200


class TestNoServer:
    async def test_connection_refused_is_a_503_at_once(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        engine = make_engine(f"postgresql://postgres@/assay?host={tmp_path}")  # no server on that socket
        try:
            async with await _client(engine) as client:
                started = time.monotonic()
                api = await client.get("/api/v1/projects", headers=bearer("a" * 43))
                client.cookies.set("assay_session", "b" * 43)  # a page that looks its session up
                page = await client.get("/")
                assert time.monotonic() - started < 3
        finally:
            await engine.dispose()
        assert_json_503(api, DATABASE_DOWN)
        assert_page_503(page, DATABASE_DOWN)

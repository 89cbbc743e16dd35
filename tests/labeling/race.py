"""Deterministic race helpers: hold a lock on one connection, act on another, wait for the wait.

A regression test for a race steps the parties itself instead of looping under load: a `Holder`
takes a row lock in its own transaction, the code under test runs as a task until it is seen
waiting for a lock (`lock_waits`), and the holder lets go when the test says so.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.factories import PASSWORD
from tests.web.conftest import csrf_of, page_login


async def lock_waits(engine: AsyncEngine) -> int:
    """Backends of this database waiting for a lock right now."""
    async with engine.connect() as connection:
        count = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(count or 0)


async def blocked_by(engine: AsyncEngine, pid: int) -> bool:
    """Whether some backend is waiting for a lock that backend `pid` holds."""
    async with engine.connect() as connection:
        found = await connection.scalar(
            text("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid)))"),
            {"pid": pid},
        )
    return bool(found)


async def until(condition: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class Holder:
    """A transaction of its own that takes locks now and lets them go on `release()`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.connection: AsyncConnection | None = None

    async def hold(self, sql: str, **params: Any) -> None:
        if self.connection is None:
            self.connection = await self.engine.connect()
            await self.connection.begin()
        await self.connection.execute(text(sql), params)

    async def pid(self) -> int:
        assert self.connection is not None
        return int(await self.connection.scalar(text("SELECT pg_backend_pid()")) or 0)

    async def release(self, *, commit: bool = False) -> None:
        if self.connection is not None:
            await (self.connection.commit() if commit else self.connection.rollback())
            await self.connection.close()
            self.connection = None


class PageRater:
    """One rater's browser session (its own cookies), posting as the rater page's htmx does."""

    def __init__(self, app: Any) -> None:
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        self.csrf = ""

    async def login(self, email: str) -> "PageRater":
        await page_login(self.client, email, PASSWORD)
        self.csrf = csrf_of((await self.client.get("/")).text)  # a page that leases nothing
        return self

    async def post(self, path: str, **data: Any) -> httpx.Response:
        headers = {"HX-Request": "true", "HX-Target": "queue", "X-CSRF-Token": self.csrf}
        return await self.client.post(path, data=data, headers=headers)

    async def aclose(self) -> None:
        await self.client.aclose()

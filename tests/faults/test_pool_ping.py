"""Pooled connections are pinged before use only after sitting idle (server/db.py:_ping_when_idle):
no round trip per transaction under load, and a connection that died while idle is replaced
without failing the request that picks it up."""

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from server import db
from server.db import make_engine


def _counting_pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    dialect = engine.sync_engine.dialect
    original = dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        pings.append(1)
        return bool(original(dbapi_connection))

    monkeypatch.setattr(dialect, "do_ping", do_ping)
    return pings


async def _backend(engine: AsyncEngine) -> int:
    async with engine.begin() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")))


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """As if `seconds` had passed since the pooled connections were handed back."""
    now = db._clock()
    monkeypatch.setattr(db, "_clock", lambda: now + seconds)


def _url(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=False)


async def test_no_ping_for_a_connection_just_handed_back(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(_url(engine), pool_size=1, max_overflow=0, ping_idle_seconds=60)
    pings = _counting_pings(engine, monkeypatch)
    try:
        first = await _backend(engine)
        for _ in range(5):
            assert await _backend(engine) == first
        assert pings == []
        _later(monkeypatch, 61)
        assert await _backend(engine) == first
        assert pings == [1]
    finally:
        await engine.dispose()


async def test_a_connection_that_died_while_idle_is_replaced(
    monkeypatch: pytest.MonkeyPatch, engine: AsyncEngine
) -> None:
    pooled = make_engine(_url(engine), pool_size=1, max_overflow=0, ping_idle_seconds=60)
    pings = _counting_pings(pooled, monkeypatch)
    try:
        dead = await _backend(pooled)
        async with engine.begin() as connection:  # the test's own engine ends the pooled one's backend
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dead})
        _later(monkeypatch, 61)
        replaced = await _backend(pooled)  # no error: the ping failed and the pool reconnected
        assert replaced != dead
        assert pings == [1]
    finally:
        await pooled.dispose()


async def test_zero_seconds_pings_every_checkout(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(_url(engine), pool_size=1, max_overflow=0, ping_idle_seconds=0)
    pings = _counting_pings(engine, monkeypatch)
    try:
        for _ in range(3):
            await _backend(engine)
        assert len(pings) == 2  # SQLAlchemy's pre-ping: every checkout of a pooled connection
    finally:
        await engine.dispose()

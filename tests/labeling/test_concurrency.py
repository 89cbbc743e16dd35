"""Many raters at once, on one process and on three: every item gets exactly `overlap` judgments."""

import asyncio
import os
import re
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

from server.models import Item, Judgment, Role, Scope
from tests.factories import (
    PASSWORD,
    bearer,
    create_project,
    create_token,
    create_user,
    import_items,
    native_items,
    next_item,
)
from tests.web.conftest import csrf_of, page_login

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
        # Reuse a kept-alive connection only while uvicorn surely keeps it (its timeout is 5 s): at
        # httpx's default of 5 s too, a loaded machine let a request go out on a connection the
        # server was closing that instant (httpx.ReadError).
        limits = httpx.Limits(keepalive_expiry=1.0)
        clients = [httpx.AsyncClient(base_url=url, timeout=60, limits=limits) for url in three_servers]
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


SLOT_ID = re.compile(r'<section class="slot item" id="a-([0-9a-f-]+)"')
FIRST_CHOICE = re.compile(r'name="verdict" value="c:([0-9a-f-]+):')
AUDIT = text(
    """
    SELECT count(*) FROM items i WHERE i.project_id = :p AND (
        i.leased <> (SELECT count(*) FROM assignments a WHERE a.item_id = i.id AND a.status = 'leased')
        OR i.judged <> (SELECT count(*) FROM judgments j WHERE j.item_id = i.id AND NOT j.surplus)
        OR (i.completed_at IS NOT NULL) <> (i.judged >= i.wanted))
    """
)


def _page_slots(html: str) -> list[tuple[str, str]]:
    """(assignment id, first candidate id) of each item slot in an htmx answer."""
    parts = SLOT_ID.split(html)[1:]
    return [(parts[i], m.group(1)) for i in range(0, len(parts), 2) if (m := FIRST_CHOICE.search(parts[i + 1]))]


async def page_rater_loop(url: str, email: str, project_id: str, acknowledged: list[str], errors: list[int]) -> None:
    """A rater on the page, as rater.js does: queue by POST, judge with `ahead`, take the next from the answer."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await page_login(client, email, PASSWORD)
        headers = {"HX-Request": "true", "X-CSRF-Token": csrf_of((await client.get("/")).text)}
        queue = await client.post(f"/projects/{project_id}/label/queue", headers=headers)
        if queue.status_code >= 500:
            errors.append(queue.status_code)
            return
        held = _page_slots(queue.text)
        while held:
            assignment, choice = held.pop(0)
            ahead = ",".join(a for a, _ in held)
            answer = await client.post(
                f"/assignments/{assignment}/judge", data={"verdict": f"c:{choice}:", "ahead": ahead}, headers=headers
            )
            if answer.status_code >= 500:
                errors.append(answer.status_code)
                return
            if answer.status_code == 200:
                acknowledged.append(assignment)
            held += _page_slots(answer.text)


async def api_rater_loop(
    client: httpx.AsyncClient, project_id: str, token: str, accepted: list[str], errors: list[int]
) -> None:
    """A rater over the API who may be suspended for a while (403) or see a lease ended (409): waits, goes on."""
    refusals = 0
    while refusals < 50:
        response = await client.post(f"/api/v1/projects/{project_id}/assignments/next", headers=bearer(token))
        if response.status_code == 204:
            return
        if response.status_code >= 500:
            errors.append(response.status_code)
            return
        if response.status_code != 200:
            refusals += 1
            await asyncio.sleep(0.1)
            continue
        a = response.json()
        body = {"choice": a["item"]["candidates"][0]["id"]}
        judged = await client.post(f"/api/v1/assignments/{a['id']}/judgment", json=body, headers=bearer(token))
        if judged.status_code >= 500:
            errors.append(judged.status_code)
            return
        if judged.status_code == 201:
            accepted.append(judged.json()["id"])


class TestEverythingAtOnce:
    """Page raters, API raters, an admin changing overlap and pausing a batch, a suspension and
    posts of scores, on three server processes: no 5xx, every acknowledged verdict stored once,
    every item's counters equal to its rows."""

    async def test_no_errors_and_consistent_counters(self, three_servers: list[str], session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        trainer = await create_user(session, role=Role.trainer)
        page_raters = [await create_user(session) for _ in range(10)]
        api_raters = [await create_user(session) for _ in range(6)]
        project = await create_project(
            session, admin, members=(trainer, *page_raters, *api_raters), overlap=2, active_learning=True
        )
        await import_items(session, project, admin, native_items(80))
        paused_batch = await import_items(session, project, admin, native_items(40, prefix="later"))
        admin_token = await create_token(session, admin)
        trainer_token = await create_token(session, trainer, Scope.reward_models_write, Scope.export_read)
        tokens = [await create_token(session, r) for r in api_raters]
        pid = str(project.id)
        limits = httpx.Limits(keepalive_expiry=1.0)  # as in the test above
        clients = [httpx.AsyncClient(base_url=url, timeout=60, limits=limits) for url in three_servers]
        acknowledged: list[str] = []
        accepted: list[str] = []
        errors: list[int] = []

        async def admin_loop() -> None:
            c = clients[0]
            for step in range(12):
                for call in (
                    c.patch(
                        f"/api/v1/projects/{pid}",
                        json={"overlap": 3 if step % 2 == 0 else 2},
                        headers=bearer(admin_token),
                    ),
                    c.patch(
                        f"/api/v1/batches/{paused_batch}",
                        json={"status": "paused" if step % 2 == 0 else "active"},
                        headers=bearer(admin_token),
                    ),
                    c.patch(
                        f"/api/v1/projects/{pid}/members/{api_raters[0].id}",
                        json={"suspended": step % 4 == 1},
                        headers=bearer(admin_token),
                    ),
                ):
                    response = await call
                    if response.status_code >= 500:
                        errors.append(response.status_code)
                await asyncio.sleep(0.2)

        async def trainer_loop() -> None:
            c = clients[1]
            report = {
                "features": "f",
                "cursor_to": "c",
                "metrics": {"accuracy": None, "log_loss": None, "n_pairs": 0, "training_seconds": 0},
            }
            await c.post(f"/api/v1/projects/{pid}/reward-models", json=report, headers=bearer(trainer_token))
            for round_ in range(8):
                page = await c.get(f"/api/v1/projects/{pid}/open-items", headers=bearer(trainer_token))
                scores = [
                    {"item_id": i["id"], "p": 0.5, "uncertainty": (hash((i["id"], round_)) % 100) / 100}
                    for i in page.json()["items"]
                ]
                if scores:
                    posted = await c.post(
                        f"/api/v1/projects/{pid}/reward-models/1/scores",
                        json={"scores": scores},
                        headers=bearer(trainer_token),
                    )
                    if posted.status_code >= 500:
                        errors.append(posted.status_code)
                await asyncio.sleep(0.3)

        try:
            await asyncio.gather(
                admin_loop(),
                trainer_loop(),
                *(
                    page_rater_loop(three_servers[i % 3], r.email, pid, acknowledged, errors)
                    for i, r in enumerate(page_raters)
                ),
                *(api_rater_loop(clients[i % 3], pid, t, accepted, errors) for i, t in enumerate(tokens)),
            )
            # The changes are over (overlap 2, the batch active, nobody suspended): finish the work.
            await asyncio.gather(
                *(api_rater_loop(clients[i % 3], pid, t, accepted, errors) for i, t in enumerate(tokens))
            )
        finally:
            for c in clients:
                await c.aclose()
        assert errors == []
        assert await session.scalar(AUDIT, {"p": project.id}) == 0
        stored = {
            str(a): n
            for a, n in await session.execute(
                select(Judgment.assignment_id, func.count()).group_by(Judgment.assignment_id)
            )
        }
        assert all(stored.get(a) == 1 for a in acknowledged)
        assert {str(j) for j in (await session.scalars(select(Judgment.id))).all()} >= set(accepted)
        open_left = await session.scalar(
            select(func.count()).where(Item.project_id == project.id, Item.completed_at.is_(None))
        )
        assert open_left == 0

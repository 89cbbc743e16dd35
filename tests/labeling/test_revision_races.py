"""A revision racing the rater loop and an admin, stepped deterministically (tests/labeling/race.py).

A revision locks membership → assignment → item → judgment (docs/ARCHITECTURE.md, "Locks"). Here
a holder keeps the item locked while another request queues on it first and the revision second;
when the holder lets go, both must succeed, nothing may be counted twice, and the item's
aggregate must end on a revision that completed-item exports deliver with the revised verdict.
"""

import asyncio
from typing import Any

import httpx
import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.models import Item, Role, Scope
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items, next_item
from tests.labeling.race import Holder, lock_waits, until


async def _waits(engine: AsyncEngine, n: int, *tasks: asyncio.Task[Any]) -> bool:
    return any(t.done() for t in tasks) or await lock_waits(engine) >= n


async def _setup(session: AsyncSession, overlap: int):  # type: ignore[no-untyped-def]
    admin = await create_user(session, role=Role.admin)
    a, b = await create_user(session), await create_user(session)
    trainer = await create_user(session, role=Role.trainer)
    project = await create_project(session, admin, members=(a, b, trainer), overlap=overlap)
    await import_items(session, project, admin, native_items(1))
    tokens = [await create_token(session, u) for u in (a, b, admin)]
    return project, tokens, await create_token(session, trainer, Scope.export_read)


async def _item_rows(client: httpx.AsyncClient, project: Any, token: str) -> list[dict[str, Any]]:
    params = {"format": "raw", "granularity": "item", "ids": "true"}
    response = await client.get(f"/api/v1/projects/{project.id}/export", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines()]


class TestRevisionRaces:
    async def test_revision_and_a_judge_completing_the_same_item(self, client, engine, session) -> None:
        project, (a, b, _), trainer = await _setup(session, overlap=2)
        mine = (await next_item(client, project, a)).json()
        first, second = (c["id"] for c in mine["item"]["candidates"])
        judged = await client.post(
            f"/api/v1/assignments/{mine['id']}/judgment", json={"choice": second}, headers=bearer(a)
        )
        assert judged.status_code == 201
        theirs = (await next_item(client, project, b)).json()

        gate = Holder(engine)
        await gate.hold("SELECT 1 FROM items WHERE project_id = :p FOR UPDATE", p=project.id)
        completing = asyncio.create_task(
            client.post(f"/api/v1/assignments/{theirs['id']}/judgment", json={"choice": first}, headers=bearer(b))
        )
        await until(lambda: _waits(engine, 1, completing), what="the completing judge waiting on the item")
        revising = asyncio.create_task(
            client.patch(f"/api/v1/judgments/{judged.json()['id']}", json={"choice": first}, headers=bearer(a))
        )
        await until(lambda: _waits(engine, 2, completing, revising), what="the revision waiting on the item")
        await gate.release()
        done, revised = await asyncio.wait_for(asyncio.gather(completing, revising), timeout=30)
        assert (done.status_code, revised.status_code) == (201, 200), (done.text, revised.text)
        assert revised.json()["revision"] == 2

        item = await session.scalar(select(Item).where(Item.project_id == project.id))
        assert item is not None
        # Completed by B's verdict (aggregate revision 1), then changed by A's revision (2).
        assert (item.judged, item.wanted, item.leased, item.aggregate_revision) == (2, 2, 0, 2)
        rows = await _item_rows(client, project, trainer)
        assert [(r["aggregate_revision"], r["judgments"], r["deleted"]) for r in rows] == [(2, 2, False)]
        assert [(p["chosen"], p["votes_for"], p["votes_against"]) for p in rows[0]["pairs"]] == [(first, 2, 0)]

    async def test_revision_and_an_overlap_change(self, client, engine, session) -> None:
        project, (a, _, admin), trainer = await _setup(session, overlap=2)
        mine = (await next_item(client, project, a)).json()
        first, second = (c["id"] for c in mine["item"]["candidates"])
        judged = await client.post(
            f"/api/v1/assignments/{mine['id']}/judgment", json={"choice": second}, headers=bearer(a)
        )
        assert judged.status_code == 201

        gate = Holder(engine)
        await gate.hold("SELECT 1 FROM items WHERE project_id = :p FOR UPDATE", p=project.id)
        lowering = asyncio.create_task(
            client.patch(f"/api/v1/projects/{project.id}", json={"overlap": 1}, headers=bearer(admin))
        )
        await until(lambda: _waits(engine, 1, lowering), what="the overlap change waiting on the item")
        revising = asyncio.create_task(
            client.patch(f"/api/v1/judgments/{judged.json()['id']}", json={"choice": first}, headers=bearer(a))
        )
        await until(lambda: _waits(engine, 2, lowering, revising), what="the revision waiting on the item")
        await gate.release()
        lowered, revised = await asyncio.wait_for(asyncio.gather(lowering, revising), timeout=30)
        assert (lowered.status_code, revised.status_code) == (200, 200), (lowered.text, revised.text)

        item = await session.scalar(select(Item).where(Item.project_id == project.id))
        assert item is not None
        # Completed by the lower overlap (1), then changed by the revision (2): delivered once, revised.
        assert (item.judged, item.wanted, item.aggregate_revision) == (1, 1, 2)
        rows = await _item_rows(client, project, trainer)
        assert [(r["aggregate_revision"], r["judgments"]) for r in rows] == [(2, 1)]
        assert [(p["chosen"], p["votes_for"]) for p in rows[0]["pairs"]] == [(first, 1)]

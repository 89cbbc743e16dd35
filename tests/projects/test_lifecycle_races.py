"""A rater judging an item of a batch while an admin deletes or archives it, stepped deterministically.

Deleting and archiving lock project → batch → every membership → assignments → items
(docs/ARCHITECTURE.md, "Locks"). A holder keeps the rater's item locked so that one party is
caught mid-transaction while the other starts; both orders are stepped. Neither may fail with a
500, and afterwards every item's counters equal its rows and nothing points at a deleted row.
"""

import asyncio
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.models import Role
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items, next_item
from tests.labeling.race import Holder, lock_waits, until

P = "/api/v1"

# Every item's counters against its rows; rows whose parent is gone (there are foreign keys, so this
# also checks the deletion ran in an order they allowed).
_INCONSISTENT = text(
    """
    SELECT i.external_id FROM items i
    WHERE i.project_id = :p AND (
        i.judged <> (SELECT count(*) FROM judgments j WHERE j.item_id = i.id AND NOT j.surplus AND NOT j.gold)
        OR i.leased <> (SELECT count(*) FROM assignments a WHERE a.item_id = i.id AND a.status = 'leased'))
    """
)
_ORPHANS = text(
    """
    SELECT (SELECT count(*) FROM assignments a WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.id = a.item_id))
         + (SELECT count(*) FROM judgments j
            WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.id = j.assignment_id))
         + (SELECT count(*) FROM items i WHERE NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = i.batch_id))
    """
)


async def _waits(engine: AsyncEngine, n: int, *tasks: asyncio.Task[Any]) -> bool:
    return any(t.done() for t in tasks) or await lock_waits(engine) >= n


async def _setup(session: AsyncSession) -> dict[str, Any]:
    admin = await create_user(session, role=Role.admin)
    rater, other = await create_user(session), await create_user(session)
    project = await create_project(session, admin, members=(rater, other), name="Race")
    keep = await import_items(session, project, admin, native_items(2, prefix="keep"))
    batch = await import_items(session, project, admin, native_items(3, prefix="gone"), priority=5)
    return {
        "project": project,
        "project_id": project.id,
        "admin": await create_token(session, admin),
        "rater": await create_token(session, rater),
        "other": await create_token(session, other),
        "keep": keep,
        "batch": batch,
    }


async def _consistent(session: AsyncSession, project_id: Any) -> None:
    assert (await session.scalars(_INCONSISTENT, {"p": project_id})).all() == []
    assert await session.scalar(_ORPHANS) == 0


def _judge(client: httpx.AsyncClient, leased: dict[str, Any], token: str) -> "asyncio.Task[httpx.Response]":
    body = {"choice": leased["item"]["candidates"][0]["id"]}
    return asyncio.create_task(
        client.post(f"{P}/assignments/{leased['id']}/judgment", json=body, headers=bearer(token))
    )


class TestDeleteWhileJudging:
    async def test_a_verdict_in_flight_finishes_then_the_batch_goes(self, client, engine, session) -> None:
        s = await _setup(session)
        leased = (await next_item(client, s["project"], s["rater"])).json()
        assert leased["item"]["external_id"].startswith("gone")
        (await next_item(client, s["project"], s["other"])).json()  # another live lease on the batch
        gate = Holder(engine)
        await gate.hold("SELECT 1 FROM items WHERE id = :i FOR UPDATE", i=leased["item"]["id"])
        judging = _judge(client, leased, s["rater"])
        await until(lambda: _waits(engine, 1, judging), what="the verdict waiting on its item")
        deleting = asyncio.create_task(
            client.delete(f"{P}/batches/{s['batch']}", params={"confirm": "items.jsonl"}, headers=bearer(s["admin"]))
        )
        await until(lambda: _waits(engine, 2, judging, deleting), what="the deletion waiting on the membership")
        await gate.release()
        judged, deleted = await asyncio.wait_for(asyncio.gather(judging, deleting), timeout=30)
        assert (judged.status_code, deleted.status_code) == (201, 200), (judged.text, deleted.text)
        # The verdict was stored before the deletion began, so the deletion counted and removed it.
        assert (deleted.json()["items"], deleted.json()["judgments"], deleted.json()["raters"]) == (3, 1, 1)
        await _consistent(session, s["project_id"])
        count = await session.scalar(text("SELECT count(*) FROM items WHERE batch_id = :b"), {"b": s["batch"]})
        assert count == 0

    async def test_a_verdict_sent_while_the_batch_goes_is_refused_with_a_sentence(
        self, client, engine, session
    ) -> None:
        s = await _setup(session)
        leased = (await next_item(client, s["project"], s["rater"])).json()
        gate = Holder(engine)
        await gate.hold("SELECT 1 FROM items WHERE id = :i FOR UPDATE", i=leased["item"]["id"])
        deleting = asyncio.create_task(
            client.delete(f"{P}/batches/{s['batch']}", params={"confirm": "items.jsonl"}, headers=bearer(s["admin"]))
        )
        await until(lambda: _waits(engine, 1, deleting), what="the deletion waiting on the item")
        judging = _judge(client, leased, s["rater"])
        await until(lambda: _waits(engine, 2, judging, deleting), what="the verdict waiting on the membership")
        await gate.release()
        deleted, judged = await asyncio.wait_for(asyncio.gather(deleting, judging), timeout=30)
        assert deleted.status_code == 200, deleted.text
        assert (judged.status_code, judged.json()["detail"]) == (404, f"No assignment {leased['id']} of yours.")
        await _consistent(session, s["project_id"])
        nxt = await next_item(client, s["project"], s["rater"])
        assert nxt.json()["item"]["external_id"].startswith("keep")


class TestArchiveWhileJudging:
    async def test_a_verdict_in_flight_counts_then_the_other_lease_ends(self, client, engine, session) -> None:
        s = await _setup(session)
        leased = (await next_item(client, s["project"], s["rater"])).json()
        theirs = (await next_item(client, s["project"], s["other"])).json()
        gate = Holder(engine)
        await gate.hold("SELECT 1 FROM items WHERE id = :i FOR UPDATE", i=leased["item"]["id"])
        judging = _judge(client, leased, s["rater"])
        await until(lambda: _waits(engine, 1, judging), what="the verdict waiting on its item")
        archiving = asyncio.create_task(
            client.patch(f"{P}/batches/{s['batch']}", json={"archived": True}, headers=bearer(s["admin"]))
        )
        await until(lambda: _waits(engine, 2, judging, archiving), what="the archiving waiting on the membership")
        await gate.release()
        judged, archived = await asyncio.wait_for(asyncio.gather(judging, archiving), timeout=30)
        assert (judged.status_code, archived.status_code) == (201, 200), (judged.text, archived.text)
        assert judged.json()["surplus"] is False  # it counted: it was in before the archive
        late = await _judge(client, theirs, s["other"])
        assert late.status_code == 409
        assert late.json()["judgment"]["surplus_reason"] == "archived"
        await _consistent(session, s["project_id"])

    async def test_a_verdict_sent_while_archiving_is_stored_uncounted(self, client, engine, session) -> None:
        s = await _setup(session)
        leased = (await next_item(client, s["project"], s["rater"])).json()
        gate = Holder(engine)
        await gate.hold("SELECT 1 FROM items WHERE id = :i FOR UPDATE", i=leased["item"]["id"])
        archiving = asyncio.create_task(
            client.patch(f"{P}/batches/{s['batch']}", json={"archived": True}, headers=bearer(s["admin"]))
        )
        await until(lambda: _waits(engine, 1, archiving), what="the archiving waiting on the item")
        judging = _judge(client, leased, s["rater"])
        await until(lambda: _waits(engine, 2, judging, archiving), what="the verdict waiting on the membership")
        await gate.release()
        archived, judged = await asyncio.wait_for(asyncio.gather(archiving, judging), timeout=30)
        assert archived.status_code == 200, archived.text
        assert (judged.status_code, judged.json()["detail"]) == (
            409,
            "This item's batch or project was archived by an admin while you held it, so your verdict is stored "
            "but does not count.",
        )
        await _consistent(session, s["project_id"])
        nxt = await next_item(client, s["project"], s["rater"])
        assert nxt.json()["item"]["external_id"].startswith("keep")


class TestTwoAdmins:
    async def test_deleting_the_same_batch_twice_at_once(self, client, engine, session) -> None:
        s = await _setup(session)
        gate = Holder(engine)
        await gate.hold("SELECT 1 FROM projects WHERE id = :p FOR UPDATE", p=s["project_id"])
        path, params = f"{P}/batches/{s['batch']}", {"confirm": "items.jsonl"}
        first = asyncio.create_task(client.delete(path, params=params, headers=bearer(s["admin"])))
        await until(lambda: _waits(engine, 1, first), what="the first deletion waiting on the project")
        second = asyncio.create_task(client.delete(path, params=params, headers=bearer(s["admin"])))
        await until(lambda: _waits(engine, 2, first, second), what="the second deletion waiting on the project")
        await gate.release()
        answers = await asyncio.wait_for(asyncio.gather(first, second), timeout=30)
        assert sorted(a.status_code for a in answers) == [200, 404], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 404)
        assert refused.json()["detail"] == f"Batch {s['batch']} was deleted meanwhile; nothing was changed."
        await _consistent(session, s["project_id"])

    async def test_an_import_queued_behind_a_project_deletion_is_refused(self, client, engine, session) -> None:
        s = await _setup(session)
        gate = Holder(engine)
        await gate.hold("SELECT 1 FROM projects WHERE id = :p FOR UPDATE", p=s["project_id"])
        deleting = asyncio.create_task(
            client.delete(f"{P}/projects/{s['project_id']}", params={"confirm": "Race"}, headers=bearer(s["admin"]))
        )
        await until(lambda: _waits(engine, 1, deleting), what="the deletion waiting on the project")
        body = {"items": [{"id": "late", "prompt": "p", "responses": [{"text": "a"}, {"text": "b"}]}]}
        importing = asyncio.create_task(
            client.post(f"{P}/projects/{s['project_id']}/batches", json=body, headers=bearer(s["admin"]))
        )
        await until(lambda: _waits(engine, 2, deleting, importing), what="the import waiting on the project")
        await gate.release()
        deleted, imported = await asyncio.wait_for(asyncio.gather(deleting, importing), timeout=30)
        assert deleted.status_code == 200, deleted.text
        assert (imported.status_code, imported.json()["detail"]) == (
            404,
            f"Project {s['project_id']} was deleted; nothing was changed.",
        )
        assert await session.scalar(text("SELECT count(*) FROM items")) == 0
        assert await session.scalar(text("SELECT count(*) FROM batches")) == 0

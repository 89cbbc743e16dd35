"""Archive and delete a batch or a project over the API (server/projects/lifecycle.py)."""

import uuid
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import (
    Assignment,
    AuditEvent,
    Batch,
    Candidate,
    Export,
    Item,
    Judgment,
    JudgmentRevision,
    Project,
    Role,
)
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items, next_item

P = "/api/v1"


async def _setup(session: AsyncSession, *, overlap: int = 1, raters: int = 2) -> dict[str, Any]:
    admin = await create_user(session, role=Role.admin)
    people = [await create_user(session) for _ in range(raters)]
    trainer = await create_user(session, role=Role.trainer)
    project = await create_project(session, admin, members=(*people, trainer), overlap=overlap, name="Helpful")
    keep = await import_items(session, project, admin, native_items(3, prefix="keep"))
    gone = await import_items(session, project, admin, native_items(4, prefix="gone"), priority=5)
    return {
        "project": project,
        "admin": await create_token(session, admin),
        "raters": [await create_token(session, u) for u in people],
        "rater_users": people,
        "trainer": await create_token(session, trainer),
        "keep": keep,
        "gone": gone,
    }


async def _judge(client: httpx.AsyncClient, project: Project, token: str) -> dict[str, Any]:
    leased = await next_item(client, project, token)
    assert leased.status_code == 200, leased.text
    body = leased.json()
    choice = body["item"]["candidates"][0]["id"]
    judged = await client.post(f"{P}/assignments/{body['id']}/judgment", json={"choice": choice}, headers=bearer(token))
    assert judged.status_code == 201, judged.text
    return body


async def _count(session: AsyncSession, model: Any, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _export(client: httpx.AsyncClient, project: Project, token: str) -> list[dict[str, Any]]:
    response = await client.get(f"{P}/projects/{project.id}/export", params={"format": "raw"}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines()]


class TestDeleteBatch:
    async def test_refused_without_the_name_naming_what_would_go(self, client, session) -> None:
        s = await _setup(session)
        for token in s["raters"]:
            await _judge(client, s["project"], token)  # both on the priority-5 batch
        for params in ({}, {"confirm": "gone"}):
            refused = await client.delete(f"{P}/batches/{s['gone']}", params=params, headers=bearer(s["admin"]))
            assert refused.status_code == 422
            assert refused.json()["detail"] == (
                "Delete batch “items.jsonl”: 4 items, 2 judgments by 2 raters. Nothing was deleted: send the "
                "batch's name as `confirm` to delete it."
            )
            assert refused.json()["impact"] == {"items": 4, "judgments": 2, "raters": 2}
        assert await _count(session, Item, Item.batch_id == s["gone"]) == 4

    async def test_removes_items_assignments_judgments_and_keeps_manifests(self, client, session) -> None:
        s = await _setup(session)
        project = s["project"]
        judged = [await _judge(client, project, token) for token in s["raters"]]
        revised = await client.patch(
            f"{P}/judgments/{(await session.scalar(select(Judgment.id).limit(1)))}",
            json={"choice": judged[0]["item"]["candidates"][1]["id"]},
            headers=bearer(s["raters"][0]),
        )
        assert revised.status_code in (200, 409)  # one of the two is the first rater's
        held = (await next_item(client, project, s["raters"][0])).json()  # a live lease on the batch
        delivered = await _export(client, project, s["trainer"])
        assert len(delivered) == 2
        manifests = await _count(session, Export)
        assert manifests == 1

        gone_ids = set((await session.scalars(select(Item.id).where(Item.batch_id == s["gone"]))).all())
        deleted = await client.delete(
            f"{P}/batches/{s['gone']}", params={"confirm": " items.jsonl "}, headers=bearer(s["admin"])
        )
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {
            "items": 4,
            "judgments": 2,
            "raters": 2,
            "message": "Deleted batch “items.jsonl”: 4 items, 2 judgments by 2 raters. Export manifests are kept.",
        }
        assert await _count(session, Batch, Batch.id == s["gone"]) == 0
        assert await _count(session, Item, Item.id.in_(gone_ids)) == 0
        assert await _count(session, Candidate, Candidate.item_id.in_(gone_ids)) == 0
        assert await _count(session, Assignment, Assignment.item_id.in_(gone_ids)) == 0
        assert await _count(session, Judgment) == 0
        assert await _count(session, JudgmentRevision) == 0
        assert await _count(session, Item, Item.batch_id == s["keep"]) == 3
        assert await _count(session, Export) == manifests  # history: the manifest stays
        events = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "batch.delete"))).all()
        assert [(e.target_id, e.data) for e in events] == [
            (s["gone"], {"name": "items.jsonl", "items": 4, "judgments": 2, "raters": 2})
        ]
        # The rater's lease went with the batch: a late verdict finds no assignment.
        late = await client.post(
            f"{P}/assignments/{held['id']}/judgment",
            json={"choice": held["item"]["candidates"][0]["id"]},
            headers=bearer(s["raters"][0]),
        )
        assert (late.status_code, late.json()["detail"]) == (404, f"No assignment {held['id']} of yours.")
        # The queue goes on with the other batch, and exports have nothing of the deleted one.
        assert (await next_item(client, project, s["raters"][1])).status_code == 200
        assert await _export(client, project, s["trainer"]) == []

    async def test_an_unknown_batch_is_404(self, client, session) -> None:
        s = await _setup(session, raters=0)
        missing = uuid.uuid4()
        response = await client.delete(f"{P}/batches/{missing}", params={"confirm": "x"}, headers=bearer(s["admin"]))
        assert (response.status_code, response.json()["detail"]) == (404, f"No batch with id {missing}.")


class TestArchiveBatch:
    async def test_ends_leases_serves_nothing_keeps_exports_and_can_be_undone(self, client, session) -> None:
        s = await _setup(session)
        project, (a, b) = s["project"], s["raters"]
        await _judge(client, project, a)
        held = (await next_item(client, project, b)).json()
        assert held["item"]["external_id"].startswith("gone")

        archived = await client.patch(f"{P}/batches/{s['gone']}", json={"archived": True}, headers=bearer(s["admin"]))
        assert archived.status_code == 200, archived.text
        assert archived.json()["archived_at"] is not None
        assert archived.json()["status"] == "active"

        late = await client.post(
            f"{P}/assignments/{held['id']}/judgment",
            json={"choice": held["item"]["candidates"][0]["id"]},
            headers=bearer(b),
        )
        assert (late.status_code, late.json()["detail"]) == (
            409,
            "This item's batch or project was archived by an admin while you held it, so your verdict is stored "
            "but does not count.",
        )
        # Nothing of the archived batch is served; the other batch is.
        for token in (a, b):
            nxt = await next_item(client, project, token)
            assert nxt.status_code == 200
            assert nxt.json()["item"]["external_id"].startswith("keep")
        # Everything stays and is exported (the late verdict too: stored, uncounted).
        assert await _count(session, Item, Item.batch_id == s["gone"]) == 4
        assert len(await _export(client, project, s["trainer"])) == 2
        stored = (await session.scalars(select(Judgment).order_by(Judgment.created_at))).all()
        assert [j.surplus_reason for j in stored] == [None, "archived"]
        listed = (await client.get(f"{P}/projects/{project.id}/batches", headers=bearer(s["admin"]))).json()
        assert [(x["id"] == str(s["gone"]), x["archived_at"] is not None) for x in listed] == [
            (False, False),
            (True, True),
        ]
        items = (await session.scalars(select(Item).where(Item.batch_id == s["gone"]))).all()
        assert {(i.paused, i.leased) for i in items} == {(True, 0)}

        restored = await client.patch(f"{P}/batches/{s['gone']}", json={"archived": False}, headers=bearer(s["admin"]))
        assert restored.json()["archived_at"] is None
        rater = await create_user(session)
        await client.post(
            f"{P}/projects/{project.id}/members", json={"user_id": str(rater.id)}, headers=bearer(s["admin"])
        )
        fresh = await next_item(client, project, await create_token(session, rater))
        assert fresh.json()["item"]["external_id"].startswith("gone")  # served again, by priority
        actions = (await session.scalars(select(AuditEvent.action).order_by(AuditEvent.created_at))).all()
        assert [x for x in actions if x.startswith("batch.")][-2:] == ["batch.archive", "batch.unarchive"]

    async def test_a_paused_batch_stays_paused_after_unarchiving(self, client, session) -> None:
        s = await _setup(session)
        path = f"{P}/batches/{s['gone']}"
        for body in ({"status": "paused"}, {"archived": True}, {"status": "active"}):
            assert (await client.patch(path, json=body, headers=bearer(s["admin"]))).status_code == 200
        items = (await session.scalars(select(Item).where(Item.batch_id == s["gone"]))).all()
        assert {i.paused for i in items} == {True}  # resumed but archived: still out of the queue
        assert (await client.patch(path, json={"status": "paused"}, headers=bearer(s["admin"]))).status_code == 200
        assert (await client.patch(path, json={"archived": False}, headers=bearer(s["admin"]))).status_code == 200
        session.expire_all()
        items = (await session.scalars(select(Item).where(Item.batch_id == s["gone"]))).all()
        assert {i.paused for i in items} == {True}


class TestArchiveProject:
    async def test_hidden_from_raters_nothing_served_exports_go_on(self, client, session) -> None:
        s = await _setup(session)
        project, (a, b) = s["project"], s["raters"]
        await _judge(client, project, a)
        held = (await next_item(client, project, b)).json()
        path = f"{P}/projects/{project.id}"
        archived = await client.patch(path, json={"archived": True}, headers=bearer(s["admin"]))
        assert archived.status_code == 200
        assert archived.json()["archived_at"] is not None
        refused = await next_item(client, project, a)
        assert (refused.status_code, refused.json()["detail"]) == (
            409,
            "Project 'Helpful' is archived; there is nothing to label in it.",
        )
        beat = await client.post(f"{P}/assignments/{held['id']}/heartbeat", headers=bearer(b))
        assert (beat.status_code, beat.json()["detail"]) == (
            409,
            "This item's batch or project was archived by an admin while you held it; there is nothing to renew or "
            "skip.",
        )
        assert len(await _export(client, project, s["trainer"])) == 1
        assert await _count(session, Item, Item.project_id == project.id, Item.leased > 0) == 0

        # An upload into the archived project is kept out of the queue like the rest of it.
        late = await client.post(
            f"{P}/projects/{project.id}/batches",
            json={"items": native_items(2, prefix="late")},
            headers=bearer(s["admin"]),
        )
        assert late.status_code == 201, late.text
        assert await _count(session, Item, Item.project_id == project.id, Item.paused.is_(False)) == 0

        assert (await client.patch(path, json={"archived": False}, headers=bearer(s["admin"]))).status_code == 200
        assert await _count(session, Item, Item.project_id == project.id, Item.paused) == 0
        assert (await next_item(client, project, a)).status_code == 200


class TestDeleteProject:
    async def test_refused_then_deleted_leaving_a_tombstone(self, client, session) -> None:
        s = await _setup(session)
        project = s["project"]
        await _judge(client, project, s["raters"][0])
        await _export(client, project, s["trainer"])
        path = f"{P}/projects/{project.id}"
        refused = await client.delete(path, headers=bearer(s["admin"]))
        assert (refused.status_code, refused.json()["detail"]) == (
            422,
            "Delete project “Helpful”: 7 items, 1 judgment by 1 rater. Nothing was deleted: send the project's name "
            "as `confirm` to delete it.",
        )
        deleted = await client.delete(path, params={"confirm": "Helpful"}, headers=bearer(s["admin"]))
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["message"] == (
            "Deleted project “Helpful”: 7 items, 1 judgment by 1 rater. Export manifests are kept."
        )
        for model in (Item, Batch, Assignment, Judgment):
            assert await _count(session, model) == 0
        assert await _count(session, Export) == 1
        assert await _count(session, AuditEvent, AuditEvent.action == "project.delete") == 1
        gone = await client.get(path, headers=bearer(s["trainer"]))
        assert gone.status_code == 404
        assert gone.json()["detail"].startswith(f"Project {project.id} was deleted on ")
        assert gone.json()["detail"].endswith(
            "UTC; its items and judgments are gone. Export manifests already delivered are kept."
        )
        pulled = await client.get(f"{P}/projects/{project.id}/export", headers=bearer(s["trainer"]))
        assert pulled.status_code == 404
        listed = await client.get(f"{P}/projects", headers=bearer(s["admin"]))
        assert listed.json() == []
        stranger = await create_token(session, await create_user(session))
        hidden = await client.get(path, headers=bearer(stranger))
        assert hidden.json()["detail"] == f"No project with id {project.id} is shared with you."

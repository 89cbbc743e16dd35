import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Assignment, Batch, Item, Judgment, Project, Role
from tests.factories import (
    bearer,
    create_project,
    create_token,
    create_user,
    import_items,
    native_items,
    next_item,
)


async def judge(client: httpx.AsyncClient, token: str, assignment: dict[str, Any], **body: Any) -> httpx.Response:
    body.setdefault("choice", assignment["item"]["candidates"][0]["id"])
    return await client.post(f"/api/v1/assignments/{assignment['id']}/judgment", json=body, headers=bearer(token))


async def expire(session: AsyncSession, assignment_id: str) -> None:
    await session.execute(
        update(Assignment)
        .where(Assignment.id == uuid.UUID(assignment_id))
        .values(expires_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 1))
    )
    await session.commit()


class TestNext:
    async def test_serves_item_in_import_order_with_shown_order_stored(self, client, make_setup, session) -> None:
        s = await make_setup()
        response = await next_item(client, s.project, s.tokens[0])
        assert response.status_code == 200
        body = response.json()
        assert body["item"]["external_id"] == "item-0"
        assert [c["label"] for c in body["item"]["candidates"]] == ["A", "B"]
        assert "model" not in body["item"]["candidates"][0]
        stored = await session.get(Assignment, uuid.UUID(body["id"]))
        assert [str(c) for c in stored.shown_order] == [c["id"] for c in body["item"]["candidates"]]

    async def test_refresh_returns_same_lease(self, client, make_setup) -> None:
        s = await make_setup()
        first = (await next_item(client, s.project, s.tokens[0])).json()
        again = (await next_item(client, s.project, s.tokens[0])).json()
        assert again["id"] == first["id"]
        assert again["item"]["candidates"] == first["item"]["candidates"]

    async def test_overlap_one_gives_raters_different_items(self, client, make_setup) -> None:
        s = await make_setup(n_items=2, n_raters=3, overlap=1)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        b = (await next_item(client, s.project, s.tokens[1])).json()
        assert a["item"]["id"] != b["item"]["id"]
        third = await next_item(client, s.project, s.tokens[2])
        assert third.status_code == 204

    async def test_overlap_two_gives_same_item_to_two_raters(self, client, make_setup) -> None:
        s = await make_setup(n_items=2, n_raters=2, overlap=2)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        b = (await next_item(client, s.project, s.tokens[1])).json()
        assert a["item"]["id"] == b["item"]["id"]

    async def test_never_same_item_twice_to_a_rater(self, client, make_setup) -> None:
        s = await make_setup(n_items=2, n_raters=1, overlap=3)
        seen = []
        for _ in range(2):
            a = (await next_item(client, s.project, s.tokens[0])).json()
            seen.append(a["item"]["id"])
            assert (await judge(client, s.tokens[0], a)).status_code == 201
        assert len(set(seen)) == 2
        assert (await next_item(client, s.project, s.tokens[0])).status_code == 204

    async def test_expired_lease_frees_item_for_another_rater(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=2, overlap=1)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        assert (await next_item(client, s.project, s.tokens[1])).status_code == 204
        await expire(session, a["id"])
        b = await next_item(client, s.project, s.tokens[1])
        assert b.status_code == 200
        assert b.json()["item"]["id"] == a["item"]["id"]
        stored = await session.get(Assignment, uuid.UUID(a["id"]))
        await session.refresh(stored)
        assert stored.status == "expired"

    async def test_candidate_order_is_randomised(self, client, session) -> None:
        admin = await create_user(session, role=Role.admin)
        raters = [await create_user(session) for _ in range(24)]
        project = await create_project(session, admin, members=tuple(raters), overlap=24)
        await import_items(session, project, admin, native_items(1))
        orders = set()
        for rater in raters:
            body = (await next_item(client, project, await create_token(session, rater))).json()
            orders.add(tuple(c["id"] for c in body["item"]["candidates"]))
        assert len(orders) == 2  # 24 draws: both orders appear unless the shuffle is broken (p = 2^-23)

    async def test_higher_batch_priority_is_served_first(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=2, n_raters=1)
        await import_items(session, s.project, s.admin, native_items(1, prefix="urgent"), priority=5)
        body = (await next_item(client, s.project, s.tokens[0])).json()
        assert body["item"]["external_id"] == "urgent-0"

    async def test_item_priority_orders_within_batch(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=3, n_raters=1)
        await session.execute(update(Item).where(Item.external_id == "item-2").values(priority=0.9))
        await session.commit()
        body = (await next_item(client, s.project, s.tokens[0])).json()
        assert body["item"]["external_id"] == "item-2"

    async def test_paused_batch_is_not_served_until_resumed(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1)
        batch_id = await session.scalar(select(Batch.id))
        admin_token = await create_token(session, s.admin)
        paused = await client.patch(
            f"/api/v1/batches/{batch_id}", json={"status": "paused"}, headers=bearer(admin_token)
        )
        assert paused.status_code == 200
        assert (await next_item(client, s.project, s.tokens[0])).status_code == 204
        await client.patch(f"/api/v1/batches/{batch_id}", json={"status": "active"}, headers=bearer(admin_token))
        assert (await next_item(client, s.project, s.tokens[0])).status_code == 200

    async def test_paused_project_is_409(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1)
        admin_token = await create_token(session, s.admin)
        await client.patch(f"/api/v1/projects/{s.project.id}", json={"is_active": False}, headers=bearer(admin_token))
        response = await next_item(client, s.project, s.tokens[0])
        assert response.status_code == 409
        assert response.json()["detail"] == (
            "Project 'Test project' is paused; labeling resumes when an admin restarts it."
        )

    async def test_non_member_gets_404(self, client, make_setup, session) -> None:
        s = await make_setup()
        outsider = await create_user(session)
        response = await next_item(client, s.project, await create_token(session, outsider))
        assert response.status_code == 404
        assert response.json()["detail"] == f"No project with id {s.project.id} is shared with you."

    async def test_admin_not_member_is_403(self, client, make_setup, session) -> None:
        s = await make_setup()
        other_admin = await create_user(session, role=Role.admin)
        response = await next_item(client, s.project, await create_token(session, other_admin))
        assert response.status_code == 403
        assert response.json()["detail"] == "You are not a member of this project; ask an admin to add you."

    async def test_member_of_a_deleted_project_gets_404(self, client, make_setup, session) -> None:
        # `next` locks the membership with its project in one statement; a deleted project is not found
        # there and is answered as every other request answers it.
        s = await make_setup()
        await session.execute(update(Project).where(Project.id == s.project.id).values(deleted_at=func.now()))
        await session.commit()
        response = await next_item(client, s.project, s.tokens[0])
        assert response.status_code == 404
        assert response.json()["detail"].startswith(f"Project {s.project.id} was deleted on ")


class TestJudgment:
    async def test_stores_one_judgment_and_completes_item(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1, overlap=1)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        response = await judge(client, s.tokens[0], a, rationale="A is right.", active_ms=4200)
        assert response.status_code == 201
        body = response.json()
        assert body["surplus"] is False
        assert body["choice"] == a["item"]["candidates"][0]["id"]
        item = await session.get(Item, uuid.UUID(a["item"]["id"]))
        assert (item.judged, item.leased, item.completed_at is not None) == (1, 0, True)

    async def test_retry_returns_first_result(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        first = await judge(client, s.tokens[0], a, rationale="A is right.", active_ms=4000)
        # The page re-sends a retried form with a larger active time and untrimmed text: still the same verdict.
        second = await judge(client, s.tokens[0], a, rationale="  A is right. ", active_ms=9000)
        assert second.status_code == 200
        assert second.json() == first.json()
        assert await session.scalar(select(func.count()).select_from(Judgment)) == 1

    async def test_a_different_verdict_is_refused_with_the_stored_one(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        first = await judge(client, s.tokens[0], a)
        second = await judge(client, s.tokens[0], a, choice=a["item"]["candidates"][1]["id"])
        assert second.status_code == 409
        assert second.json() == {
            "detail": "You already judged this item with a different verdict; the first one is kept.",
            "judgment": first.json(),
        }
        assert await session.scalar(select(func.count()).select_from(Judgment)) == 1

    async def test_concurrent_double_submit_stores_one(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        responses = await asyncio.gather(*(judge(client, s.tokens[0], a) for _ in range(5)))
        assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]
        assert len({r.json()["id"] for r in responses}) == 1
        assert await session.scalar(select(func.count()).select_from(Judgment)) == 1

    async def test_someone_elses_assignment_is_404(self, client, make_setup) -> None:
        s = await make_setup()
        a = (await next_item(client, s.project, s.tokens[0])).json()
        response = await judge(client, s.tokens[1], a)
        assert response.status_code == 404
        assert response.json()["detail"] == f"No assignment {a['id']} of yours."

    async def test_late_judgment_on_filled_item_is_kept_as_surplus(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=2, overlap=1)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        await expire(session, a["id"])
        b = (await next_item(client, s.project, s.tokens[1])).json()
        assert (await judge(client, s.tokens[1], b)).json()["surplus"] is False
        late = await judge(client, s.tokens[0], a)
        assert late.status_code == 201
        assert late.json()["surplus"] is True
        item = await session.get(Item, uuid.UUID(a["item"]["id"]))
        assert item.judged == 1
        assert await session.scalar(select(func.count()).select_from(Judgment)) == 2

    async def test_late_judgment_with_room_counts(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=2, overlap=1)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        await expire(session, a["id"])
        assert (await next_item(client, s.project, s.tokens[1])).status_code == 200  # reclaims A's lease
        await client.post(
            f"/api/v1/assignments/{(await next_item(client, s.project, s.tokens[1])).json()['id']}/skip",
            headers=bearer(s.tokens[1]),
        )
        late = await judge(client, s.tokens[0], a)
        assert late.json()["surplus"] is False

    async def test_judging_a_skipped_item_is_409(self, client, make_setup) -> None:
        s = await make_setup()
        a = (await next_item(client, s.project, s.tokens[0])).json()
        await client.post(f"/api/v1/assignments/{a['id']}/skip", headers=bearer(s.tokens[0]))
        response = await judge(client, s.tokens[0], a)
        assert response.status_code == 409
        assert response.json()["detail"] == "You skipped this item, so it cannot be judged any more."


class TestVerdictRules:
    async def refused(self, client, make_setup, body: dict[str, Any], **settings: Any) -> str:
        s = await make_setup(n_items=1, n_raters=1, **settings)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        ids = [c["id"] for c in a["item"]["candidates"]]

        def fill(v: Any) -> Any:
            if isinstance(v, list):
                return [fill(x) for x in v]
            return ids if v == "IDS" else ids[0] if v == "FIRST" else v

        body = {k: fill(v) for k, v in body.items()}
        response = await client.post(f"/api/v1/assignments/{a['id']}/judgment", json=body, headers=bearer(s.tokens[0]))
        assert response.status_code == 422, response.text
        return response.json()["detail"]

    async def test_choice_not_a_candidate(self, client, make_setup) -> None:
        stranger = str(uuid.uuid4())
        detail = await self.refused(client, make_setup, {"choice": stranger})
        assert detail == f"choice {stranger} is not one of this item's candidates."

    async def test_no_verdict(self, client, make_setup) -> None:
        detail = await self.refused(client, make_setup, {})
        assert detail == "Send a verdict: choice (the better candidate's id), a ranking, tie or both_bad."

    async def test_binary_takes_no_strength(self, client, make_setup) -> None:
        detail = await self.refused(client, make_setup, {"choice": "FIRST", "strength": 2})
        assert detail == "This project's scale is binary: send no strength."

    async def test_eight_point_needs_strength(self, client, make_setup) -> None:
        detail = await self.refused(client, make_setup, {"choice": "FIRST"}, scale="8-point")
        assert detail == "This project's scale is 8-point: send a strength from 1 (slightly better) to 4 (much better)."

    async def test_strength_out_of_range(self, client, make_setup) -> None:
        detail = await self.refused(client, make_setup, {"choice": "FIRST", "strength": 3}, scale="4-point")
        assert detail == "strength must be from 1 to 2 on the 4-point scale; got 3."

    async def test_tie_not_allowed(self, client, make_setup) -> None:
        detail = await self.refused(client, make_setup, {"tie": True})
        assert detail == "This project does not allow ties; pick the better candidate."

    async def test_tie_with_choice(self, client, make_setup) -> None:
        detail = await self.refused(client, make_setup, {"tie": True, "choice": "FIRST"}, allow_tie=True)
        assert detail == "A tie has no preferred candidate: send tie without choice or ranking."

    async def test_both_bad_not_allowed(self, client, make_setup) -> None:
        detail = await self.refused(client, make_setup, {"both_bad": True})
        assert detail == "This project does not allow a both-bad verdict; pick the better candidate."

    async def test_rationale_required(self, client, make_setup) -> None:
        detail = await self.refused(client, make_setup, {"choice": "FIRST", "rationale": "  "}, rationale="required")
        assert detail == "This project requires a rationale: say in a sentence why you chose."

    async def test_rationale_off(self, client, make_setup) -> None:
        detail = await self.refused(client, make_setup, {"choice": "FIRST", "rationale": "because"}, rationale="off")
        assert detail == "This project does not take rationales; leave rationale empty."

    async def test_three_candidates_need_ranking(self, client, make_setup) -> None:
        detail = await self.refused(client, make_setup, {"choice": "FIRST"}, candidates=3)
        assert detail == "This item has 3 candidates: send a full ranking, best first."

    async def test_ranking_must_be_complete(self, client, make_setup) -> None:
        detail = await self.refused(client, make_setup, {"ranking": ["FIRST"]}, candidates=3)
        assert detail == "ranking must list each of this item's 3 candidate ids exactly once."

    async def test_choice_and_ranking(self, client, make_setup) -> None:
        detail = await self.refused(client, make_setup, {"ranking": "IDS", "choice": "FIRST"})
        assert detail == "Send either choice or ranking, not both."

    async def test_full_ranking_accepted(self, client, make_setup) -> None:
        s = await make_setup(n_items=1, n_raters=1, candidates=3)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        ranking = [c["id"] for c in reversed(a["item"]["candidates"])]
        response = await client.post(
            f"/api/v1/assignments/{a['id']}/judgment", json={"ranking": ranking}, headers=bearer(s.tokens[0])
        )
        assert response.status_code == 201
        assert response.json()["ranking"] == ranking
        assert response.json()["choice"] == ranking[0]

    async def test_tie_and_both_bad_accepted_when_allowed(self, client, make_setup) -> None:
        s = await make_setup(n_items=2, n_raters=1, allow_tie=True, allow_both_bad=True, scale="8-point")
        a = (await next_item(client, s.project, s.tokens[0])).json()
        tie = await client.post(
            f"/api/v1/assignments/{a['id']}/judgment", json={"tie": True}, headers=bearer(s.tokens[0])
        )
        assert tie.status_code == 201
        assert tie.json()["tie"] is True
        b = (await next_item(client, s.project, s.tokens[0])).json()
        bad = await client.post(
            f"/api/v1/assignments/{b['id']}/judgment", json={"both_bad": True}, headers=bearer(s.tokens[0])
        )
        assert bad.status_code == 201
        assert bad.json()["both_bad"] is True


class TestSkipAndHeartbeat:
    async def test_skip_frees_slot_and_is_not_offered_again(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=2, overlap=1)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        skipped = await client.post(
            f"/api/v1/assignments/{a['id']}/skip",
            json={"reason": "not my language"},
            headers=bearer(s.tokens[0]),
        )
        assert skipped.status_code == 200
        assert skipped.json()["status"] == "skipped"
        assert (await next_item(client, s.project, s.tokens[0])).status_code == 204
        assert (await next_item(client, s.project, s.tokens[1])).json()["item"]["id"] == a["item"]["id"]
        stored = await session.get(Assignment, uuid.UUID(a["id"]))
        assert stored.skip_reason == "not my language"

    async def test_skip_after_judgment_is_409(self, client, make_setup) -> None:
        s = await make_setup()
        a = (await next_item(client, s.project, s.tokens[0])).json()
        await judge(client, s.tokens[0], a)
        response = await client.post(f"/api/v1/assignments/{a['id']}/skip", headers=bearer(s.tokens[0]))
        assert response.status_code == 409
        assert response.json()["detail"] == "You already judged this item; a judged item cannot be skipped."

    async def test_heartbeat_extends_lease(self, client, make_setup, session) -> None:
        s = await make_setup(lease_seconds=60)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        await session.execute(update(Assignment).values(expires_at=func.now()))
        await session.commit()
        beat = await client.post(f"/api/v1/assignments/{a['id']}/heartbeat", headers=bearer(s.tokens[0]))
        assert beat.status_code == 200
        assert beat.json()["expires_at"] > a["leased_at"]

    async def test_heartbeat_after_item_filled_is_409(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=2, overlap=1)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        await expire(session, a["id"])
        b = (await next_item(client, s.project, s.tokens[1])).json()
        await judge(client, s.tokens[1], b)
        beat = await client.post(f"/api/v1/assignments/{a['id']}/heartbeat", headers=bearer(s.tokens[0]))
        assert beat.status_code == 409
        assert beat.json()["detail"].startswith("Your time on this item ran out and other raters have since filled it.")

    async def test_heartbeat_revives_expired_lease_with_room(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=2, overlap=1)
        a = (await next_item(client, s.project, s.tokens[0])).json()
        await expire(session, a["id"])
        assert (await next_item(client, s.project, s.tokens[1])).status_code == 200  # reclaims, then leases to B
        await client.post(
            f"/api/v1/assignments/{(await next_item(client, s.project, s.tokens[1])).json()['id']}/skip",
            headers=bearer(s.tokens[1]),
        )
        beat = await client.post(f"/api/v1/assignments/{a['id']}/heartbeat", headers=bearer(s.tokens[0]))
        assert beat.status_code == 200
        assert beat.json()["status"] == "leased"

"""Taking a verdict back: PATCH /api/v1/judgments/{id} and every refusal's sentence."""

import uuid
from datetime import UTC, timedelta
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Assignment, Item, Judgment, JudgmentRevision, Role
from tests.factories import bearer, create_token, create_user, next_item
from tests.labeling.test_api import judge


async def revise(client: httpx.AsyncClient, token: str, judgment_id: str, **body: Any) -> httpx.Response:
    return await client.patch(f"/api/v1/judgments/{judgment_id}", json=body, headers=bearer(token))


async def judged(
    client: httpx.AsyncClient, s: Any, rater: int = 0, **body: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Lease and judge one item as rater `rater`: (the assignment, the judgment)."""
    assignment = (await next_item(client, s.project, s.tokens[rater])).json()
    response = await judge(client, s.tokens[rater], assignment, **body)
    assert response.status_code == 201, response.text
    return assignment, response.json()


def candidate(assignment: dict[str, Any], index: int) -> str:
    return str(assignment["item"]["candidates"][index]["id"])


async def age(session: AsyncSession, judgment_id: str, minutes: int) -> None:
    """Pretend the judgment was sent `minutes` ago."""
    await session.execute(
        text("UPDATE judgments SET created_at = now() - make_interval(mins => :m) WHERE id = :id"),
        {"m": minutes, "id": uuid.UUID(judgment_id)},
    )
    await session.commit()


class TestRevise:
    async def test_new_revision_keeps_identity_and_history(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=2, n_raters=1, allow_tie=True)
        assignment, first = await judged(client, s)
        response = await revise(
            client, s.tokens[0], first["id"], choice=candidate(assignment, 1), rationale="B reads better"
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == first["id"]
        assert body["revision"] == 2
        assert body["choice"] == candidate(assignment, 1)
        assert body["rationale"] == "B reads better"
        assert body["revised_at"] is not None
        history = list(await session.scalars(select(JudgmentRevision)))
        assert [(h.revision, str(h.choice_id)) for h in history] == [(1, first["choice"])]
        assert history[0].sent_at.isoformat() == first["created_at"].replace("Z", "+00:00")
        assert await session.scalar(select(text("count(*)")).select_from(Judgment)) == 1

    async def test_same_verdict_again_changes_nothing(self, client, make_setup) -> None:
        s = await make_setup(n_items=1, n_raters=1)
        _, first = await judged(client, s)
        again = await revise(client, s.tokens[0], first["id"], choice=first["choice"])
        assert again.status_code == 200
        assert again.json()["revision"] == 1

    async def test_never_double_counts_and_takes_no_lease(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=2, n_raters=1, overlap=1)
        assignment, first = await judged(client, s)
        for index in (1, 0, 1):
            response = await revise(client, s.tokens[0], first["id"], choice=candidate(assignment, index))
            assert response.status_code == 200
        assert response.json()["revision"] == 4
        item = await session.get(Item, uuid.UUID(assignment["item"]["id"]))
        assert (item.judged, item.leased, item.wanted) == (1, 0, 1)
        leases = await session.scalar(
            select(text("count(*)")).select_from(Assignment).where(Assignment.status == "leased")
        )
        assert leases == 0
        # The next item is still the rater's to take: a revision holds no lease.
        assert (await next_item(client, s.project, s.tokens[0])).status_code == 200

    async def test_completed_item_gets_a_new_aggregate_revision(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1, overlap=1)
        assignment, first = await judged(client, s)
        item_id = uuid.UUID(assignment["item"]["id"])
        before = await session.get(Item, item_id)
        assert before.aggregate_revision == 1
        revision, xid = before.aggregate_revision, before.aggregate_xid
        session.expunge_all()
        assert (await revise(client, s.tokens[0], first["id"], choice=candidate(assignment, 1))).status_code == 200
        after = await session.get(Item, item_id)
        assert after.aggregate_revision == revision + 1
        assert after.aggregate_xid > xid

    async def test_open_item_keeps_its_aggregate(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=2, overlap=2)
        assignment, first = await judged(client, s)
        assert (await revise(client, s.tokens[0], first["id"], choice=candidate(assignment, 1))).status_code == 200
        item = await session.get(Item, uuid.UUID(assignment["item"]["id"]))
        assert (item.aggregate_revision, item.aggregate_xid, item.judged) == (0, None, 1)

    async def test_surplus_stays_surplus(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1, overlap=1)
        assignment = (await next_item(client, s.project, s.tokens[0])).json()
        await session.execute(text("UPDATE items SET judged = wanted, leased = 0"))  # filled by others meanwhile
        await session.execute(text("UPDATE assignments SET status = 'expired'"))
        await session.commit()
        first = (await judge(client, s.tokens[0], assignment)).json()
        assert first["surplus"] is True
        response = await revise(client, s.tokens[0], first["id"], choice=candidate(assignment, 1))
        assert response.json()["surplus"] is True
        item = await session.get(Item, uuid.UUID(assignment["item"]["id"]))
        assert (item.judged, item.aggregate_revision) == (1, 0)


class TestRefusals:
    async def test_window_closed(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1, revision_window_minutes=5)
        assignment, first = await judged(client, s)
        await age(session, first["id"], 4)
        inside = await revise(client, s.tokens[0], first["id"], choice=candidate(assignment, 1))
        assert inside.status_code == 200  # four minutes after sending: still open
        await age(session, first["id"], 6)
        sent = await session.scalar(select(Judgment.created_at).where(Judgment.id == uuid.UUID(first["id"])))
        closed = (sent + timedelta(minutes=5)).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        response = await revise(client, s.tokens[0], first["id"], choice=candidate(assignment, 0))
        assert response.status_code == 409
        assert response.json()["detail"] == (
            f"The time to revise this judgment ran out at {closed} UTC: project '{s.project.name}' allows "
            "revisions for 5 minutes after a verdict is sent."
        )

    async def test_revision_off(self, client, make_setup) -> None:
        s = await make_setup(n_items=1, n_raters=1, revision_window_minutes=0)
        assignment, first = await judged(client, s)
        response = await revise(client, s.tokens[0], first["id"], choice=candidate(assignment, 1))
        assert response.status_code == 409
        assert response.json()["detail"] == (
            f"Revision is turned off in project '{s.project.name}': a verdict, once sent, is final."
        )

    async def test_not_your_judgment(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=2, overlap=2)
        assignment, first = await judged(client, s)
        response = await revise(client, s.tokens[1], first["id"], choice=candidate(assignment, 1))
        assert response.status_code == 409
        assert response.json()["detail"] == (
            "This judgment is another rater's: only the rater who sent a verdict can revise it."
        )
        admin_token = await create_token(session, s.admin)
        as_admin = await revise(client, admin_token, first["id"], choice=candidate(assignment, 1))
        assert (as_admin.status_code, as_admin.json()["detail"]) == (409, response.json()["detail"])

    async def test_invisible_or_missing_judgment_is_404(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1)
        assignment, first = await judged(client, s)
        stranger = await create_user(session, role=Role.rater)
        token = await create_token(session, stranger)
        for judgment_id in (first["id"], str(uuid.uuid4())):
            response = await revise(client, token, judgment_id, choice=candidate(assignment, 1))
            assert response.status_code == 404
            assert response.json()["detail"] == f"No judgment {judgment_id} is visible to you."

    async def test_bad_bodies(self, client, make_setup) -> None:
        s = await make_setup(n_items=1, n_raters=1, allow_tie=False)
        assignment, first = await judged(client, s)
        cases = [
            ({}, "Send a verdict: choice (the better candidate's id), a ranking, tie or both_bad."),
            ({"tie": True}, "This project does not allow ties; pick the better candidate."),
            (
                {"choice": (other := str(uuid.uuid4()))},
                f"choice {other} is not one of this item's candidates.",
            ),
            ({"choice": candidate(assignment, 1), "strength": 2}, "This project's scale is binary: send no strength."),
        ]
        for body, message in cases:
            response = await revise(client, s.tokens[0], first["id"], **body)
            assert (response.status_code, response.json()["detail"]) == (422, message), body
        response = await client.patch(
            f"/api/v1/judgments/{first['id']}", json={"choice": "x", "wat": 1}, headers=bearer(s.tokens[0])
        )
        assert response.status_code == 422
        unchanged = await revise(client, s.tokens[0], first["id"], choice=first["choice"])
        assert unchanged.json()["revision"] == 1

    async def test_token_without_judgments_write_is_refused(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1)
        assignment, first = await judged(client, s)
        from server.models import Scope

        read_only = await create_token(session, s.admin, Scope.export_read)
        response = await revise(client, read_only, first["id"], choice=candidate(assignment, 1))
        assert (response.status_code, response.json()["detail"]) == (
            403,
            "This API token lacks the 'judgments:write' scope; create a token that has it.",
        )

    async def test_suspended_rater_cannot_revise(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1)
        assignment, first = await judged(client, s)
        await session.execute(text("UPDATE project_members SET suspended_at = now(), suspended_reason = NULL"))
        await session.commit()
        response = await revise(client, s.tokens[0], first["id"], choice=candidate(assignment, 1))
        assert response.status_code == 403
        assert response.json()["detail"] == (
            "Your access to this project is suspended, so no items are given to you. Contact the project admin."
        )

    async def test_removed_rater_cannot_revise(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1)
        assignment, first = await judged(client, s)
        await session.execute(text("DELETE FROM project_members"))
        await session.commit()
        response = await revise(client, s.tokens[0], first["id"], choice=candidate(assignment, 1))
        assert (response.status_code, response.json()["detail"]) == (
            403,
            "You are not a member of this project; ask an admin to add you.",
        )


class TestLeases:
    async def test_a_retried_submit_of_the_first_verdict_does_not_undo_a_revision(self, client, make_setup) -> None:
        s = await make_setup(n_items=1, n_raters=1)
        assignment, first = await judged(client, s)
        assert (await revise(client, s.tokens[0], first["id"], choice=candidate(assignment, 1))).status_code == 200
        retried = await judge(client, s.tokens[0], assignment, choice=candidate(assignment, 0))
        assert retried.status_code == 409
        assert (
            retried.json()["detail"] == "You already judged this item with a different verdict; the first one is kept."
        )
        assert retried.json()["judgment"]["revision"] == 2
        assert retried.json()["judgment"]["choice"] == candidate(assignment, 1)

    async def test_revising_while_holding_two_leases(self, client, make_setup, session) -> None:
        """The page keeps two leases; taking a verdict back neither needs nor disturbs them."""
        s = await make_setup(n_items=4, n_raters=1)
        assignment, first = await judged(client, s)
        held = (await next_item(client, s.project, s.tokens[0])).json()
        response = await revise(client, s.tokens[0], first["id"], choice=candidate(assignment, 1))
        assert response.status_code == 200
        lease = await session.get(Assignment, uuid.UUID(held["id"]))
        assert lease.status == "leased"
        stored = await session.get(Assignment, uuid.UUID(assignment["id"]))
        assert stored.status == "submitted"

    async def test_suspended_account_cannot_revise(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, n_raters=1)
        assignment, first = await judged(client, s)
        await session.execute(text("UPDATE users SET suspended_at = now() WHERE role = 'rater'"))
        await session.commit()
        response = await revise(client, s.tokens[0], first["id"], choice=candidate(assignment, 1))
        assert (response.status_code, response.json()["detail"]) == (
            403,
            "Your rating access is suspended; contact the project admin.",
        )

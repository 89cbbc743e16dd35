"""What gold judgments decide: feedback, first-revision scoring, the qualification round, suspension."""

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.quality_page import accounts, fill
from server.labeling.revisions import FEEDBACK_SHOWN
from server.models import (
    Assignment,
    AuditEvent,
    Candidate,
    Item,
    Judgment,
    Project,
    ProjectMember,
    QualitySnapshot,
    Role,
    User,
    UserKind,
)
from server.quality import trust
from server.quality.cache import refreshes_done
from server.quality.raters import snapshot_name
from server.quality.rules import MIN_COMPARED_TO_SUSPEND
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items, next_item
from tests.labeling.race import Holder, PageRater, lock_waits, until
from tests.quality.test_gold import gold_items

RIGHT, WRONG = 1, 0  # gold_items prefer the response imported second


async def setup(
    session: AsyncSession, *, gold: int = 3, normal: int = 2, raters: int = 1, **settings: Any
) -> tuple[Project, User, str, list[User], list[str]]:
    admin = await create_user(session, role=Role.admin)
    members = [await create_user(session) for _ in range(raters)]
    settings = {"gold_rate": 1.0, "revision_window_minutes": 10} | settings
    qualification = settings.pop("qualification_items", 0)  # needs the gold items first
    project = await create_project(session, admin, members=tuple(members), **settings)
    await import_items(session, project, admin, gold_items(gold) + native_items(normal))
    if qualification:
        await session.execute(update(Project).where(Project.id == project.id).values(qualification_items=qualification))
        await session.commit()
        await session.refresh(project)
    tokens = [await create_token(session, m) for m in members]
    return project, admin, await create_token(session, admin), members, tokens


def pick(lease: dict[str, Any], position: int) -> str:
    """The id of the candidate imported at `position` (its text says so)."""
    return next(c["id"] for c in lease["item"]["candidates"] if c["text"].startswith(f"Answer {position} "))


async def judge_next(client: httpx.AsyncClient, project: Project, token: str, position: int) -> httpx.Response:
    lease = await next_item(client, project, token)
    assert lease.status_code == 200, lease.text
    body = lease.json()
    return await client.post(
        f"/api/v1/assignments/{body['id']}/judgment", json={"choice": pick(body, position)}, headers=bearer(token)
    )


async def quality(client: httpx.AsyncClient, project: Project, token: str, user: User) -> dict[str, Any]:
    body = (await client.get(f"/api/v1/projects/{project.id}/quality", headers=bearer(token))).json()
    return next(r for r in body["raters"] if r["user_id"] == str(user.id))


async def candidate_at(session: AsyncSession, assignment_id: uuid.UUID, position: int) -> uuid.UUID:
    found = await session.scalar(
        select(Candidate.id)
        .join(Assignment, Assignment.item_id == Candidate.item_id)
        .where(Assignment.id == assignment_id, Candidate.position == position)
    )
    assert found is not None
    return found


class TestFeedback:
    async def test_the_json_answer_says_whether_it_matched_and_why(self, client, session) -> None:
        project, _, _, _, tokens = await setup(session, gold=2, gold_feedback=True)
        right = await judge_next(client, project, tokens[0], RIGHT)
        assert right.status_code == 201, right.text
        assert right.json()["feedback"] == {
            "matched": True,
            "message": "Your answer matched the known answer.",
            "explanation": "The second answer is right.",
        }
        wrong = (await judge_next(client, project, tokens[0], WRONG)).json()
        assert wrong["feedback"]["matched"] is False
        assert wrong["feedback"]["message"] == "Your answer did not match the known answer."
        ordinary = (await judge_next(client, project, tokens[0], WRONG)).json()
        assert ordinary["feedback"] is None

    async def test_a_verdict_whose_answer_was_shown_cannot_be_revised(self, client, session) -> None:
        project, _, _, _, tokens = await setup(session, gold=1, gold_feedback=True)
        lease = (await next_item(client, project, tokens[0])).json()
        judged = await client.post(
            f"/api/v1/assignments/{lease['id']}/judgment",
            json={"choice": pick(lease, WRONG)},
            headers=bearer(tokens[0]),
        )
        revised = await client.patch(
            f"/api/v1/judgments/{judged.json()['id']}", json={"choice": pick(lease, RIGHT)}, headers=bearer(tokens[0])
        )
        assert (revised.status_code, revised.json()["detail"]) == (409, FEEDBACK_SHOWN)
        assert FEEDBACK_SHOWN == (
            "You were shown the known answer to this item after sending your verdict, so it cannot be revised."
        )

    async def test_the_rater_page_shows_it_as_text_and_refuses_the_revision(self, app, session) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        project = await create_project(session, admin, members=(rater,), gold_rate=1.0, gold_feedback=True)
        await import_items(session, project, admin, gold_items(1, answer={"tie": True, "explanation": "<b>Both</b>"}))
        page = await PageRater(app).login(rater.email)
        await page.post(f"/projects/{project.id}/label/queue")
        assignment = await session.scalar(select(Assignment).where(Assignment.rater_id == rater.id))
        assert assignment is not None
        choice = await candidate_at(session, assignment.id, 0)
        answer = await page.post(f"/assignments/{assignment.id}/judge", verdict=f"c:{choice}:", ahead="")
        assert answer.status_code == 200
        assert "Your answer did not match the known answer." in answer.text
        assert "&lt;b&gt;Both&lt;/b&gt;" in answer.text
        assert "data-feedback-dismiss" in answer.text
        judgment = await session.scalar(select(Judgment).where(Judgment.assignment_id == assignment.id))
        assert judgment is not None
        refused = await page.client.post(
            f"/judgments/{judgment.id}/revise", data={"verdict": "tie"}, headers={"X-CSRF-Token": page.csrf}
        )
        assert refused.status_code == 409
        assert FEEDBACK_SHOWN in refused.text
        await page.aclose()


class TestFirstRevision:
    async def test_accuracy_follows_the_verdict_first_sent(self, client, session) -> None:
        project, _, admin_token, raters, tokens = await setup(session, gold=1, normal=0, raters=2)
        for rater_token, first, then in ((tokens[0], RIGHT, WRONG), (tokens[1], WRONG, RIGHT)):
            lease = (await next_item(client, project, rater_token)).json()
            judged = await client.post(
                f"/api/v1/assignments/{lease['id']}/judgment",
                json={"choice": pick(lease, first)},
                headers=bearer(rater_token),
            )
            url = f"/api/v1/judgments/{judged.json()['id']}"
            for position in (then, first, then):  # revised away and back, and away again
                revised = await client.patch(url, json={"choice": pick(lease, position)}, headers=bearer(rater_token))
                assert revised.status_code == 200, revised.text
        right, wrong = [await quality(client, project, admin_token, r) for r in raters]
        assert (right["gold_accuracy"], right["gold_judged"]) == (1.0, 1)
        assert (wrong["gold_accuracy"], wrong["gold_judged"]) == (0.0, 1)


NOT_ADMITTED = (
    "You did not pass this project's qualification round, so no items are given to you. 1 of 2 qualification "
    "answers matched (50%); the project requires 100%. Contact the project admin, who can let you try again."
)


class TestQualification:
    async def test_the_first_items_are_gold_and_a_pass_admits(self, client, session) -> None:
        project, _, admin_token, raters, tokens = await setup(
            session, gold=3, gold_rate=0.0, qualification_items=2, qualification_threshold=1.0
        )
        seen = []
        for _ in range(4):
            lease = (await next_item(client, project, tokens[0])).json()
            seen.append(lease["item"]["external_id"])
            await client.post(
                f"/api/v1/assignments/{lease['id']}/judgment",
                json={"choice": pick(lease, RIGHT)},
                headers=bearer(tokens[0]),
            )
        assert seen == ["g-0", "g-1", "item-0", "item-1"]  # gold_rate 0: only the round is gold
        member = await session.scalar(select(ProjectMember).where(ProjectMember.user_id == raters[0].id))
        assert member is not None
        assert member.qualified_at is not None
        assert member.qualification_result == "2 of 2 qualification answers matched (100%); the project requires 100%."
        assert (await quality(client, project, admin_token, raters[0]))["qualified"] is True

    async def test_a_fail_is_not_admitted_until_the_admin_lets_them_try_again_or_admits(
        self, app, client, session
    ) -> None:
        project, _, admin_token, raters, tokens = await setup(
            session, gold=3, gold_rate=0.0, qualification_items=2, qualification_threshold=1.0
        )
        assert (await judge_next(client, project, tokens[0], RIGHT)).status_code == 201
        assert (await judge_next(client, project, tokens[0], WRONG)).status_code == 201
        refused = await next_item(client, project, tokens[0])
        assert (refused.status_code, refused.json()["detail"]) == (403, NOT_ADMITTED)
        page = await PageRater(app).login(raters[0].email)
        assert NOT_ADMITTED.replace("'", "&#39;") in (await page.post(f"/projects/{project.id}/label/queue")).text
        await page.aclose()
        assert (await quality(client, project, admin_token, raters[0]))["qualified"] is False
        url = f"/api/v1/projects/{project.id}/members/{raters[0].id}/qualification"
        retried = await client.post(url, json={"action": "retry"}, headers=bearer(admin_token))
        assert retried.status_code == 200, retried.text
        assert retried.json()["qualification_failed_at"] is None
        # One gold item is left for the new round of two: the round cannot run.
        assert (await judge_next(client, project, tokens[0], RIGHT)).status_code == 201
        short = await next_item(client, project, tokens[0])
        assert (short.status_code, short.json()["detail"]) == (
            409,
            "This project starts with a qualification round of 2 gold items, but only 1 could be given to you, so "
            "no further items can be given to you yet. Contact the project admin.",
        )
        admitted = await client.post(url, json={"action": "admit"}, headers=bearer(admin_token))
        assert admitted.json()["qualified_at"] is not None
        assert (await next_item(client, project, tokens[0])).json()["item"]["external_id"] == "item-0"
        again = await client.post(url, json={"action": "retry"}, headers=bearer(admin_token))
        assert (again.status_code, again.json()["detail"]) == (
            409,
            "This member is already admitted; there is no qualification round to try again.",
        )

    async def test_too_few_gold_items_are_refused_when_the_admin_turns_it_on(self, client, session) -> None:
        project, _, admin_token, _, _ = await setup(session, gold=2)
        response = await client.patch(
            f"/api/v1/projects/{project.id}", json={"qualification_items": 3}, headers=bearer(admin_token)
        )
        assert (response.status_code, response.json()["detail"]) == (
            409,
            "A qualification round of 3 items needs at least 3 gold items, but this project has 2; add gold items "
            "first (import them with a gold answer, or set one on an item's page).",
        )

    async def test_the_settings_page_says_so_on_the_field(self, app, session) -> None:
        project, admin, _, _, _ = await setup(session, gold=1)
        page = await PageRater(app).login(admin.email)
        response = await page.client.post(
            f"/admin/projects/{project.id}/settings",
            data={"qualification_items": "2"},
            headers={"X-CSRF-Token": page.csrf},
        )
        assert response.status_code == 422
        assert (
            "A qualification round of 2 items needs at least 2 gold items, but this project has 1; add gold items "
            "first (import them with a gold answer, or set one on an item&#39;s page)." in response.text
        )
        await page.aclose()

    async def test_model_accounts_need_no_round(self, client, session) -> None:
        handoff = {"min_confidence": 0.8, "min_judges": 1, "spot_check_rate": 0.0}  # model judges judge its items
        project, _, _, raters, tokens = await setup(
            session, gold=2, gold_rate=0.0, qualification_items=2, handoff=handoff
        )
        await session.execute(update(User).where(User.id == raters[0].id).values(kind=UserKind.model))
        await session.commit()
        assert (await next_item(client, project, tokens[0])).json()["item"]["external_id"] == "item-0"


def suspended_reason(matched: int, window: int) -> str:
    now = datetime.now(UTC)
    return (
        f"Suspended on {now.day} {now:%b}: {matched} of the last {window} gold answers matched "
        f"({round(100 * matched / window)}%); the project requires 70%."
    )


class TestSuspension:
    async def test_the_rule_suspends_with_the_reason_in_words_and_the_admin_reinstates(
        self, app, client, session
    ) -> None:
        project, _, admin_token, raters, tokens = await setup(
            session, gold=4, suspension_window=3, suspension_threshold=0.7
        )
        for position in (RIGHT, WRONG):
            assert (await judge_next(client, project, tokens[0], position)).status_code == 201
        assert (await quality(client, project, admin_token, raters[0]))["suspended_reason"] is None
        assert (await judge_next(client, project, tokens[0], WRONG)).status_code == 201
        reason = suspended_reason(1, 3)
        assert reason.endswith(": 1 of the last 3 gold answers matched (33%); the project requires 70%.")
        refused = await next_item(client, project, tokens[0])
        assert (refused.status_code, refused.json()["detail"]) == (
            403,
            f"Your access to this project is suspended, so no items are given to you. Reason: {reason} Contact the "
            "project admin.",
        )
        figures = await quality(client, project, admin_token, raters[0])
        assert (figures["suspended"], figures["suspended_reason"]) == (True, reason)
        events = await session.scalars(select(AuditEvent.data).where(AuditEvent.action == "member.suspend"))
        assert list(events) == [{"reason": reason, "rule": "gold accuracy"}]
        members = (await client.get(f"/api/v1/projects/{project.id}/members", headers=bearer(admin_token))).json()
        assert next(m for m in members if m["user_id"] == str(raters[0].id))["suspended_reason"] == reason
        member_url = f"/api/v1/projects/{project.id}/members/{raters[0].id}"
        reinstated = await client.patch(member_url, json={"suspended": False}, headers=bearer(admin_token))
        assert reinstated.status_code == 200
        assert (await next_item(client, project, tokens[0])).status_code == 200

    async def test_it_ends_the_live_leases_like_an_admin_suspension(self, app, session) -> None:
        project, _, _, raters, _ = await setup(session, gold=3, suspension_window=1, suspension_threshold=0.7)
        page = await PageRater(app).login(raters[0].email)
        await page.post(f"/projects/{project.id}/label/queue")  # the item on screen and the one ahead
        first, ahead = list(
            await session.scalars(
                select(Assignment).where(Assignment.rater_id == raters[0].id).order_by(Assignment.leased_at)
            )
        )
        wrong = await candidate_at(session, first.id, WRONG)
        answer = await page.post(f"/assignments/{first.id}/judge", verdict=f"c:{wrong}:", ahead=str(ahead.id))
        assert answer.status_code == 200
        assert suspended_reason(0, 1) in answer.text  # the page says why
        await session.refresh(ahead)
        assert (ahead.status, ahead.ended_reason) == ("ended", "suspended")
        leased = await session.scalar(select(func.sum(Item.leased)).where(Item.project_id == project.id))
        assert leased == 0
        await page.aclose()

    async def test_model_accounts_are_never_suspended(self, client, session) -> None:
        project, _, _, raters, tokens = await setup(session, gold=2, suspension_window=1)
        await session.execute(update(User).where(User.id == raters[0].id).values(kind=UserKind.model))
        await session.commit()
        assert (await judge_next(client, project, tokens[0], WRONG)).status_code == 201
        assert (await next_item(client, project, tokens[0])).status_code == 200


class TestSuspensionRaces:
    """The rule ends leases inside the submit: it must take them in the documented lock order."""

    async def _two_leases(self, app, session: AsyncSession, **settings: Any):  # type: ignore[no-untyped-def]
        project, _, admin_token, raters, _ = await setup(
            session, gold=3, suspension_window=1, suspension_threshold=0.7, **settings
        )
        page = await PageRater(app).login(raters[0].email)
        await page.post(f"/projects/{project.id}/label/queue")
        leases = list(await session.scalars(select(Assignment).where(Assignment.rater_id == raters[0].id)))
        assert len(leases) == 2
        return project, admin_token, raters[0], page, leases

    async def test_it_never_holds_the_judged_item_while_waiting_for_another(self, app, engine, session) -> None:
        """Someone holds the other lease's item (as a batch pause does, in id order) and then wants the judged
        one: the submit must not be holding it, or the two deadlock."""
        _, _, _, page, leases = await self._two_leases(app, session)
        judged, other = sorted(leases, key=lambda a: a.item_id, reverse=True)  # the other item comes first
        holder = Holder(engine)
        await holder.hold("SELECT 1 FROM items WHERE id = :id FOR NO KEY UPDATE", id=other.item_id)
        wrong = await candidate_at(session, judged.id, WRONG)
        submit = asyncio.create_task(page.post(f"/assignments/{judged.id}/judge", verdict=f"c:{wrong}:", ahead=""))
        await until(lambda: _waits(engine), what="the submit waiting for the other item")
        # In id order, the holder now takes the judged item: free, because the submit waits before taking it.
        await holder.hold("SELECT 1 FROM items WHERE id = :id FOR NO KEY UPDATE NOWAIT", id=judged.item_id)
        await holder.release()
        answer = await asyncio.wait_for(submit, timeout=30)
        assert answer.status_code == 200, answer.text
        await session.refresh(other)
        assert (other.status, other.ended_reason) == ("ended", "suspended")
        await page.aclose()

    async def test_two_tabs_submitting_at_once_suspend_once(self, app, engine, session) -> None:
        project, _, rater, page, leases = await self._two_leases(app, session)
        second_tab = PageRater(app)
        second_tab.client.cookies = page.client.cookies
        second_tab.csrf = page.csrf
        gate = Holder(engine)
        await gate.hold(
            "SELECT 1 FROM project_members WHERE project_id = :p AND user_id = :u FOR UPDATE", p=project.id, u=rater.id
        )
        posts = []
        for tab, lease in zip((page, second_tab), leases, strict=True):
            wrong = await candidate_at(session, lease.id, WRONG)
            posts.append(asyncio.create_task(tab.post(f"/assignments/{lease.id}/judge", verdict=f"c:{wrong}:")))
        await until(lambda: _waits(engine, 2), what="both submits waiting")
        await gate.release()
        answers = await asyncio.wait_for(asyncio.gather(*posts), timeout=30)
        assert [a.status_code for a in answers] == [200, 200]
        events = await session.scalar(select(func.count()).where(AuditEvent.action == "member.suspend"))
        assert events == 1
        judgments = list(await session.scalars(select(Judgment).where(Judgment.rater_id == rater.id)))
        assert sorted(str(j.surplus_reason) for j in judgments) == ["None", "suspended"]  # one counted as gold
        assert await session.scalar(select(func.sum(Item.leased)).where(Item.project_id == project.id)) == 0
        await page.aclose()

    async def test_an_admin_suspension_at_the_same_time(self, app, client, engine, session) -> None:
        project, admin_token, rater, page, leases = await self._two_leases(app, session)
        gate = Holder(engine)
        await gate.hold(
            "SELECT 1 FROM project_members WHERE project_id = :p AND user_id = :u FOR UPDATE", p=project.id, u=rater.id
        )
        wrong = await candidate_at(session, leases[0].id, WRONG)
        judge = asyncio.create_task(page.post(f"/assignments/{leases[0].id}/judge", verdict=f"c:{wrong}:"))
        await until(lambda: _waits(engine, 1), what="the submit waiting")
        admin = asyncio.create_task(
            client.patch(
                f"/api/v1/projects/{project.id}/members/{rater.id}",
                json={"suspended": True, "reason": "Too fast."},
                headers=bearer(admin_token),
            )
        )
        await until(lambda: _waits(engine, 2), what="the admin waiting")
        await gate.release()
        judged, suspended = await asyncio.wait_for(asyncio.gather(judge, admin), timeout=30)
        assert (judged.status_code, suspended.status_code) == (200, 200)
        member = await session.scalar(select(ProjectMember).where(ProjectMember.user_id == rater.id))
        assert member is not None
        await session.refresh(member)
        assert member.suspended_at is not None
        assert member.suspended_reason in ("Too fast.", suspended_reason(0, 1))
        assert await session.scalar(select(func.sum(Item.leased)).where(Item.project_id == project.id)) == 0
        await page.aclose()


async def _waits(engine: AsyncEngine, n: int = 1) -> bool:
    return await lock_waits(engine) >= n


class TestTrusted:
    async def test_qualified_and_not_suspended_whatever_the_query(self, session) -> None:
        project, _, _, raters, _ = await setup(session, gold=2, raters=5, qualification_items=2)
        passed, failed, waiting, suspended, model = raters
        values: dict[uuid.UUID, dict[str, Any]] = {
            passed.id: {"qualified_at": func.now()},
            failed.id: {"qualification_failed_at": func.now()},
            suspended.id: {"qualified_at": func.now(), "suspended_at": func.now()},
        }
        for user_id, columns in values.items():
            await session.execute(update(ProjectMember).where(ProjectMember.user_id == user_id).values(**columns))
        await session.execute(update(User).where(User.id == model.id).values(kind=UserKind.model))
        await session.commit()
        members = {r.id for r in raters}
        by_clause = set(await session.scalars(trust.trusted_raters(project.id))) & members
        by_text = (
            set(
                await session.scalars(
                    text(
                        f"SELECT m.user_id FROM project_members m WHERE m.project_id = :p AND {trust.trusted_sql('m')}"
                    ),
                    {"p": project.id},
                )
            )
            & members
        )
        assert by_clause == by_text == {passed.id, model.id}
        assert waiting.id not in by_clause
        await session.execute(update(Project).where(Project.id == project.id).values(qualification_items=0))
        await session.commit()
        assert set(await session.scalars(trust.trusted_raters(project.id))) & members == members - {suspended.id}


class TestGoldPageRefusals:
    @pytest.mark.parametrize(
        ("form", "status", "message"),
        [
            ({}, 422, "Choose the gold answer: the better response, a tie, or a ranking."),
            ({"answer": "best"}, 422, "That is not one of the gold answer options; reload the page and choose again."),
            (
                {"answer": "ranking", "ranking": "two, one"},
                422,
                "Write the ranking as response numbers, best first, separated by commas (for example 3, 1, 2).",
            ),
            ({"answer": "ranking", "ranking": "1"}, 422, "gold.ranking must list every response index 0 to 1 once"),
            ({"answer": "tie", "explanation": "x" * 2001}, 422, "The explanation is longer than 2,000 characters"),
            ({"judgment": "nope"}, 422, "That is not a judgment of this item; reload the page and try again."),
            ({"judgment": str(uuid.UUID(int=1))}, 404, f"No judgment {uuid.UUID(int=1)} on this item."),
            (
                {"judgment": "BOTH_BAD"},
                422,
                "A both-bad verdict names no better response, so it cannot be a gold answer.",
            ),
        ],
    )
    async def test_each_says_what_to_fix(self, app, client, session, form, status, message) -> None:
        project, admin, _, _, tokens = await setup(session, gold=0, normal=1, gold_rate=0.0, allow_both_bad=True)
        lease = (await next_item(client, project, tokens[0])).json()
        if form.get("judgment") == "BOTH_BAD":
            judged = await client.post(
                f"/api/v1/assignments/{lease['id']}/judgment", json={"both_bad": True}, headers=bearer(tokens[0])
            )
            form = {"judgment": judged.json()["id"]}
        page = await PageRater(app).login(admin.email)
        response = await page.client.post(
            f"/admin/items/{lease['item']['id']}/gold", data=form, headers={"X-CSRF-Token": page.csrf}
        )
        assert response.status_code == status
        assert message.replace("'", "&#39;") in response.text
        await page.aclose()

    async def test_the_members_page_wants_an_action(self, app, session) -> None:
        project, admin, _, raters, _ = await setup(session, gold=1)
        page = await PageRater(app).login(admin.email)
        response = await page.client.post(
            f"/admin/projects/{project.id}/members/{raters[0].id}/qualification",
            data={"action": "forgive"},
            headers={"X-CSRF-Token": page.csrf},
        )
        assert response.status_code == 422
        assert "Choose admit or try again." in response.text
        await page.aclose()


FLAG = (
    "agrees 45% of the time with the other raters' weighted label (or the gold answer), as a coin would (50%); "
    "the project's median rater agrees 74% (p < 0.001)"
)


async def plant_figures(
    session: AsyncSession, project: Project, rater: User, *, flagged: bool = True, compared: int = 80
) -> None:
    """The project's last computed quality figures, with or without an agreement flag on `rater` (what the
    background computation stores: server/quality/reliability.py), `compared` of their answers compared."""
    flags = [{"kind": "agreement", "text": FLAG, "p": 1e-5}] if flagged else []
    session.add(
        QualitySnapshot(
            project_id=project.id,
            name=snapshot_name(project.fast_seconds),
            data_version="0.0",
            payload={"raters": {str(rater.id): {"flags": flags, "compared": compared}}},
            seconds=1.0,
        )
    )
    await session.commit()


class TestSuspensionByAgreement:
    """With the rule on, a gold verdict suspends a rater whose agreement the last computed figures flag."""

    async def test_it_suspends_with_the_flag_in_words_and_a_reinstatement_stands(self, client, session) -> None:
        project, _, admin_token, raters, tokens = await setup(session, gold=4, suspension_window=3)
        await plant_figures(session, project, raters[0])
        assert (await judge_next(client, project, tokens[0], RIGHT)).status_code == 201  # a right gold answer
        now = datetime.now(UTC)
        reason = f"Suspended on {now.day} {now:%b}: {FLAG}."
        refused = await next_item(client, project, tokens[0])
        assert (refused.status_code, refused.json()["detail"]) == (
            403,
            f"Your access to this project is suspended, so no items are given to you. Reason: {reason} Contact the "
            "project admin.",
        )
        assert (await quality(client, project, admin_token, raters[0]))["suspended_reason"] == reason
        events = await session.scalars(select(AuditEvent.data).where(AuditEvent.action == "member.suspend"))
        assert list(events) == [{"reason": reason, "rule": "agreement"}]
        member_url = f"/api/v1/projects/{project.id}/members/{raters[0].id}"
        reinstated = await client.patch(member_url, json={"suspended": False}, headers=bearer(admin_token))
        assert reinstated.status_code == 200
        # The admin has decided: the agreement part leaves them be, even with figures computed since.
        await session.execute(
            text("UPDATE quality_snapshots SET computed_at = now() + interval '1 minute' WHERE project_id = :id"),
            {"id": project.id},
        )
        await session.commit()
        assert (await judge_next(client, project, tokens[0], RIGHT)).status_code == 201
        assert (await next_item(client, project, tokens[0])).status_code == 200

    async def test_a_flag_on_fewer_answers_than_a_suspension_wants_suspends_nobody(self, client, session) -> None:
        """A flag needs 20 compared answers; the rule's agreement part 50 (rules.MIN_COMPARED_TO_SUSPEND)."""
        project, _, _, raters, tokens = await setup(session, gold=3, suspension_window=3)
        await plant_figures(session, project, raters[0], compared=MIN_COMPARED_TO_SUSPEND - 1)
        assert (await judge_next(client, project, tokens[0], RIGHT)).status_code == 201
        assert (await next_item(client, project, tokens[0])).status_code == 200

    async def test_no_flag_or_the_rule_off_suspends_nobody(self, client, session) -> None:
        project, _, _, raters, tokens = await setup(session, gold=3, raters=2, suspension_window=3)
        await plant_figures(session, project, raters[0], flagged=False)
        assert (await judge_next(client, project, tokens[0], RIGHT)).status_code == 201
        assert (await next_item(client, project, tokens[0])).status_code == 200
        off, _, _, others, other_tokens = await setup(session, gold=3, suspension_window=0)
        await plant_figures(session, off, others[0])
        assert (await judge_next(client, off, other_tokens[0], RIGHT)).status_code == 201
        assert (await next_item(client, off, other_tokens[0])).status_code == 200

    async def test_model_accounts_are_never_suspended_by_it(self, client, session) -> None:
        project, _, _, raters, tokens = await setup(session, gold=2, suspension_window=1)
        await session.execute(update(User).where(User.id == raters[0].id).values(kind=UserKind.model))
        await session.commit()
        await plant_figures(session, project, raters[0])
        assert (await judge_next(client, project, tokens[0], RIGHT)).status_code == 201
        assert (await next_item(client, project, tokens[0])).status_code == 200

    async def test_a_random_rater_of_a_crowd_is_suspended_once_the_figures_are_computed(self, client, session) -> None:
        """End to end: the crowd of tests/quality/test_reliability.py (rater 2 answers at random); the
        first gold verdict with the rule on starts computing the figures (no page view), the next suspends."""
        project, people = await accounts(session, 10, overlap=3)
        await session.execute(text("SELECT setseed(0.25)"))  # the crowd's random() answers, the same every run
        await fill(session, project, people, items=400, overlap=3)
        admin = await session.scalar(select(User).where(User.email == "admin@quality.example"))
        assert admin is not None
        await import_items(session, project, admin, gold_items(3))
        await session.execute(
            update(Project).where(Project.id == project.id).values(gold_rate=1.0, suspension_window=5)
        )
        await session.commit()
        coin, honest = [await create_token(session, people[k]) for k in (2, 5)]
        assert (await judge_next(client, project, coin, RIGHT)).status_code == 201  # no figures yet
        assert (await judge_next(client, project, honest, RIGHT)).status_code == 201
        await refreshes_done()  # computed in the background, started by the submit
        assert (await judge_next(client, project, coin, RIGHT)).status_code == 201
        refused = await next_item(client, project, coin)
        assert refused.status_code == 403
        assert "as a coin would" in refused.json()["detail"]
        assert (await judge_next(client, project, honest, RIGHT)).status_code == 201
        assert (await next_item(client, project, honest)).status_code == 200

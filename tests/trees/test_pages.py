"""Task trees on the rater page and in the API: a subtask's form, and its results shown to the parent's
rater only when the assignment shows assistance (diffed against the unassisted arm)."""

import re

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Judgment, ProjectMember
from tests.labeling.race import PageRater
from tests.trees.conftest import Setup, answer, lease, tree_record

SLOT = re.compile(r'<section class="slot item" id="a-([0-9a-f-]+)"')


def first_slot(html: str) -> str:
    starts = [m.start() for m in SLOT.finditer(html)]
    return html[starts[0] : starts[1] if len(starts) > 1 else len(html)]


async def judge_subtasks(client, s: Setup, rater: int = 0) -> None:  # type: ignore[no-untyped-def]
    """One rater answers every subtask of the tree (rationales included); the parent opens."""
    while (a := await lease(client, s, rater)) is not None and a["item"]["kind"] != "comparison":
        body = {"check": "no", "rating": 4, "answer": "Autumn"}
        response = await answer(client, s.tokens[rater], a, answer=body[a["item"]["kind"]], rationale="Source: spring")
        assert response.status_code == 201, response.text
    if a is not None:  # the parent, leased by the loop: give it back for the test's own raters
        skip = await client.post(f"/api/v1/assignments/{a['id']}/skip", json={}, headers=_bearer(s, rater))
        assert skip.status_code == 200


def _bearer(s: Setup, rater: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {s.tokens[rater]}"}


async def force_arm(session: AsyncSession, s: Setup, rater: int, *, assisted: bool) -> None:
    await session.execute(
        update(ProjectMember)
        .where(ProjectMember.project_id == s.project.id, ProjectMember.user_id == s.raters[rater].id)
        .values(assist_leases=1, assist_shown=0 if assisted else 1)
    )
    await session.commit()


class TestApi:
    async def test_parent_assignment_carries_subtask_results_only_when_assisted(
        self, client, make_setup, session
    ) -> None:
        s: Setup = await make_setup([tree_record()], n_raters=4, overlap=2, assistance="experiment")
        for rater in (0, 1, 0, 1):  # overlap 2: each subtask wants both; t1/1 opens after t1/1/0
            await judge_subtasks(client, s, rater)
        await force_arm(session, s, 2, assisted=True)
        await force_arm(session, s, 3, assisted=False)
        assisted, unassisted = await lease(client, s, 2), await lease(client, s, 3)
        assert assisted is not None
        assert unassisted is not None
        assert assisted["item"]["external_id"] == unassisted["item"]["external_id"] == "t1"
        results = assisted["assistance"]["subtasks"]
        assert [r["question"] for r in results] == [
            "Is the flood season right in A?",
            "Is the flood season right in B?",
            "How complete is A?",
        ]
        check = results[0]
        assert (check["kind"], check["answer"], check["agreement"], check["answers"]) == ("check", "no", 1.0, 2)
        assert check["rationales"] == ["Source: spring", "Source: spring"]
        assert check["span"] == [4, 26]
        assert check["candidate_id"] in {c["id"] for c in assisted["item"]["candidates"]}
        assert results[2]["answer"] == 4
        assert set(check) >= {"item_id", "kind", "question", "answer", "agreement", "rationales"}
        # The unassisted arm: no key, no trace.
        assert unassisted["assistance_shown"] is False
        assert "assistance" not in unassisted
        text = str(unassisted)
        for trace in ("Is the flood season", "Source: spring", check["item_id"]):
            assert trace not in text


class TestPage:
    async def test_assisted_page_shows_results_unassisted_shows_none(self, app, client, make_setup, session) -> None:
        s: Setup = await make_setup([tree_record()], n_raters=4, overlap=2, assistance="experiment")
        for rater in (0, 1, 0, 1):
            await judge_subtasks(client, s, rater)
        await force_arm(session, s, 2, assisted=True)
        await force_arm(session, s, 3, assisted=False)
        html = {}
        for index, arm in ((2, "assisted"), (3, "unassisted")):
            rater = await PageRater(app).login(s.raters[index].email)
            response = await rater.post(f"/projects/{s.project.id}/label/queue")
            await rater.aclose()
            assert response.status_code == 200
            html[arm] = first_slot(response.text)
        assert "data-subtask-results" in html["assisted"]
        assert "Is the flood season right in A?" in html["assisted"]
        assert "about response" in html["assisted"]
        for trace in ("data-subtask-results", "Is the flood season", "Source: spring", "data-subtask="):
            assert trace not in html["unassisted"], trace

    async def test_a_check_is_answered_from_the_page(self, app, make_setup, session) -> None:
        s: Setup = await make_setup([tree_record()], n_raters=1)
        rater = await PageRater(app).login(s.raters[0].email)
        queue = await rater.post(f"/projects/{s.project.id}/label/queue")
        slot = first_slot(queue.text)
        assert "Is the flood season right in A?" in slot
        assert 'data-mode="answer"' in slot
        assert 'value="a:yes" data-keys="y"' in slot
        assert '<mark class="span-mark"' in slot  # the span asked about
        assignment_id = SLOT.search(slot).group(1)  # type: ignore[union-attr]
        refused = await rater.post(f"/assignments/{assignment_id}/judge", verdict="a:maybe")
        assert refused.status_code == 422
        assert "That verdict is not one of this item&#39;s options" in refused.text
        empty = await rater.post(f"/assignments/{assignment_id}/judge", answer="  ")
        assert empty.status_code == 422
        assert "Answer the question before submitting" in empty.text
        sent = await rater.post(f"/assignments/{assignment_id}/judge", verdict="a:unsure")
        assert sent.status_code == 200, sent.text
        judgment = (await session.scalars(select(Judgment))).one()
        assert judgment.answer == "unsure"
        await rater.aclose()


class TestRevision:
    async def test_a_subtask_answer_is_revised_over_the_api_and_on_the_page(self, app, client, make_setup) -> None:
        s: Setup = await make_setup([tree_record()], n_raters=1)
        a = await lease(client, s)
        assert a is not None
        sent = await answer(client, s.tokens[0], a, answer="yes")
        judgment = sent.json()["id"]
        url = f"/api/v1/judgments/{judgment}"
        refused = await client.patch(url, json={"answer": "perhaps"}, headers=_bearer(s, 0))
        assert refused.status_code == 422
        assert refused.json()["detail"] == "answer must be yes, no or unsure for a check, got 'perhaps'."
        revised = await client.patch(url, json={"answer": "no"}, headers=_bearer(s, 0))
        assert revised.status_code == 200, revised.text
        assert (revised.json()["answer"], revised.json()["revision"]) == ("no", 2)
        rater = await PageRater(app).login(s.raters[0].email)
        page = await rater.client.get(f"/judgments/{judgment}/revise")
        assert page.status_code == 200
        assert 'data-current-verdict="a:no"' in page.text
        assert 'value="a:yes" data-keys="y"' in page.text
        await rater.aclose()


class TestAdminPages:
    async def test_the_data_browser_and_a_subtask_page_open(self, app, client, make_setup, session) -> None:
        s: Setup = await make_setup([tree_record()], n_raters=1)
        a = await lease(client, s)
        assert a is not None
        assert (await answer(client, s.tokens[0], a, answer="yes", rationale="fine")).status_code == 201
        admin = await PageRater(app).login(s.admin.email)
        listing = await admin.client.get(f"/admin/projects/{s.project.id}/items")
        assert listing.status_code == 200
        assert "t1/0" in listing.text
        page = await admin.client.get(f"/admin/items/{a['item']['id']}")
        assert page.status_code == 200, page.text[:500]
        assert "Answered: yes" in page.text
        assert "Both bad" not in page.text
        await admin.aclose()

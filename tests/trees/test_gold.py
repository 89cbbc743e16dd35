"""Gold in task trees: checks (and ratings) with a known answer, served as gold, outside the parent's gate."""

import uuid
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Assignment, Item, Project, ProjectMember, Role
from server.quality.gold import GoldAnswer, score
from tests.factories import bearer, create_project, create_token, create_user, import_items, next_item
from tests.labeling.race import PageRater
from tests.quality.test_gold import _normalised, orjson_dumps
from tests.trees.conftest import SOURCE, SUMMARY_A, SUMMARY_B, Setup, answer, lease, tree_record


def gold_tree(ident: str = "t1", **gold_extra: Any) -> dict[str, Any]:
    """Two summaries; a gold check on A and an ordinary check on B."""
    return {
        "id": ident,
        "prompt": SOURCE,
        "responses": [{"text": SUMMARY_A}, {"text": SUMMARY_B}],
        "subtasks": [
            {"kind": "check", "question": "Is A right about the floods?", "candidate": 0,
             "gold": {"answer": "yes"}, **gold_extra},
            {"kind": "check", "question": "Is B right about the floods?", "candidate": 1},
        ],
    }  # fmt: skip


async def item(session: AsyncSession, external_id: str) -> Item:
    found = await session.scalar(
        select(Item).where(Item.external_id == external_id).execution_options(populate_existing=True)
    )
    assert found is not None
    return found


# (gold, answer, scale) -> score; unsure is missing (None), a rating is right within a tenth of its scale.
HAND = [
    ({"answer": "yes"}, "yes", None, 1.0),
    ({"answer": "yes"}, "no", None, 0.0),
    ({"answer": "yes"}, "unsure", None, None),
    ({"answer": "no"}, "no", None, 1.0),
    ({"answer": "no"}, "yes", None, 0.0),
    ({"answer": "no"}, "unsure", None, None),
    ({"value": 4}, 4, (1, 5), 1.0),
    ({"value": 4}, 4.4, (1, 5), 1.0),  # the tolerance is 0.4, ends included
    ({"value": 4}, 3.6, (1, 5), 1.0),
    ({"value": 4}, 4.41, (1, 5), 0.0),
    ({"value": 4}, 3.5, (1, 5), 0.0),
    ({"value": 70}, 79, (0, 100), 1.0),
    ({"value": 70}, 81, (0, 100), 0.0),
]


class TestScore:
    @pytest.mark.parametrize(("gold", "given", "scale", "expected"), HAND)
    def test_hand_table(self, gold: dict[str, Any], given: Any, scale: Any, expected: float | None) -> None:
        value = score(
            GoldAnswer.model_validate(gold),
            choice=None,
            ranking=None,
            tie=False,
            both_bad=False,
            answer=given,
            scale=scale or (None, None),
        )
        assert value == expected


class TestImportAndGate:
    async def test_a_gold_check_is_gold_and_does_not_gate_its_parent(self, client, make_setup, session) -> None:
        s: Setup = await make_setup([gold_tree()], overlap=1)
        gold, plain, root = await item(session, "t1/0"), await item(session, "t1/1"), await item(session, "t1")
        assert (gold.gold, gold.wanted, gold.gold_seq is not None) == ({"answer": "yes"}, 0, True)
        assert (plain.gold, plain.wanted) == (None, 1)
        assert (root.open_subtasks, root.queue_open) == (1, False)  # waits for the ordinary check only
        # gold_rate 0: the gold check is never served; answering the ordinary check opens the parent.
        first = await lease(client, s)
        assert first is not None
        assert first["item"]["external_id"] == "t1/1"
        assert (await answer(client, s.tokens[0], first)).status_code == 201
        root = await item(session, "t1")
        assert (root.open_subtasks, root.queue_open) == (0, True)
        second = await lease(client, s, 1)
        assert second is not None
        assert second["item"]["external_id"] == "t1"
        # Switching the gate recounts without the gold check (it never completes).
        url = f"/api/v1/projects/{s.project.id}"
        for gate in ("optional", "required"):
            response = await client.patch(url, json={"subtasks_gate": gate}, headers=bearer(s.admin_token))
            assert response.status_code == 200, response.text
        assert (await item(session, "t1")).open_subtasks == 0

    async def test_put_gold_on_a_check_moves_its_parents_gate(self, client, make_setup, session) -> None:
        record = gold_tree("t2")
        record["subtasks"][0].pop("gold")
        record["subtasks"].append({"kind": "rating", "question": "How complete is A?", "candidate": 0, "scale": [1, 5]})
        s: Setup = await make_setup([record], overlap=2)
        assert (await item(session, "t2")).open_subtasks == 3
        check, rating = await item(session, "t2/0"), await item(session, "t2/2")
        put = f"/api/v1/items/{check.id}/gold"
        response = await client.put(put, json={"answer": "no"}, headers=bearer(s.admin_token))
        assert response.status_code == 200, response.text
        assert response.json()["gold"] == {"answer": "no"}
        response = await client.put(f"/api/v1/items/{rating.id}/gold", json={"value": 4}, headers=bearer(s.admin_token))
        assert response.status_code == 200, response.text
        assert (await item(session, "t2")).open_subtasks == 1
        response = await client.put(put, json={"answer": "yes"}, headers=bearer(s.admin_token))  # a change
        assert (await item(session, "t2")).open_subtasks == 1
        response = await client.delete(put, headers=bearer(s.admin_token))
        assert response.status_code == 204
        assert ((await item(session, "t2")).open_subtasks, (await item(session, "t2/0")).wanted) == (2, 2)

    async def test_posted_subtasks_take_gold_too(self, client, make_setup, session) -> None:
        s: Setup = await make_setup([{"id": "t4", "prompt": SOURCE, "responses": [{"text": "a"}, {"text": "b"}]}])
        root = await item(session, "t4")
        posted = [
            {"kind": "check", "question": "Known?", "candidate": 0, "gold": {"answer": "no"}},
            {"kind": "check", "question": "Unknown?", "candidate": 1},
        ]
        response = await client.post(
            f"/api/v1/items/{root.id}/subtasks", json={"subtasks": posted}, headers=bearer(s.admin_token)
        )
        assert response.status_code == 201, response.text
        gold = await item(session, "t4/0")
        assert (gold.gold, gold.wanted, gold.gold_seq is not None) == ({"answer": "no"}, 0, True)
        assert (await item(session, "t4")).open_subtasks == 1

    async def test_put_refusals(self, client, make_setup, session) -> None:
        s: Setup = await make_setup([tree_record("t3")])
        cases = [
            ("t3/0", {"answer": "unsure"}, 'gold.answer must be yes or no; "unsure" is not a known answer.'),
            ("t3/0", {"preferred": 0}, "gold.preferred does not fit a check: its gold is answer (yes or no)."),
            ("t3/0", {}, 'gold.answer is missing: a check\'s gold is {"answer": "yes"} or {"answer": "no"}.'),
            ("t3/2", {"value": 6}, "gold.value 6 is outside the scale: a number from 1 to 5."),
            ("t3/2", {"value": 4, "answer": "yes"}, "gold.answer does not fit a rating: its gold is value"),
            ("t3/0", {"answer": "y" * 17}, "Invalid request: answer: String should have at most 16 characters"),
        ]
        for target, body, message in cases:
            found = await item(session, target)
            response = await client.put(f"/api/v1/items/{found.id}/gold", json=body, headers=bearer(s.admin_token))
            assert response.status_code == 422, response.text
            answered = response.json()
            text = answered.get("detail") or answered["errors"][0]["message"]
            assert text.startswith(message), text
        assert (await item(session, "t3/0")).gold is None


QUESTIONS = {  # the gold trees' checks and rating, what the rater answers, and whether it is right
    "Is A right about the floods?": ("yes", 1.0),  # gold yes
    "Is B right about the floods?": ("yes", 0.0),  # gold no
    "Is the bridge date right?": ("unsure", None),  # gold yes: unsure is missing
    "How complete is A?": (4.3, 1.0),  # gold 4 on [1, 5]: within 0.4
}


def scored_tree() -> dict[str, Any]:
    return {
        "id": "s1",
        "prompt": SOURCE,
        "responses": [{"text": SUMMARY_A}, {"text": SUMMARY_B}],
        "subtasks": [
            {"kind": "check", "question": "Is A right about the floods?", "candidate": 0, "gold": {"answer": "yes"}},
            {"kind": "check", "question": "Is B right about the floods?", "candidate": 1, "gold": {"answer": "no"}},
            {"kind": "check", "question": "Is the bridge date right?", "candidate": 1, "gold": {"answer": "yes"}},
            {"kind": "rating", "question": "How complete is A?", "candidate": 0, "scale": [1, 5], "gold": {"value": 4}},
        ],
    }


class TestAccuracy:
    async def test_gold_accuracy_counts_checks_and_ratings(self, client, make_setup, session) -> None:
        s: Setup = await make_setup([scored_tree()], n_raters=1, gold_rate=1.0, gold_feedback=True)
        served, sentences = [], []
        while (a := await lease(client, s)) is not None and a["item"]["kind"] != "comparison":
            given, _ = QUESTIONS[a["item"]["question"]]
            response = await answer(client, s.tokens[0], a, answer=given)
            assert response.status_code == 201, response.text
            served.append(a["item"]["external_id"])
            sentences.append(response.json()["feedback"]["message"])
        assert served == ["s1/0", "s1/1", "s1/2", "s1/3"]  # gold order; each once
        assert sentences[2] == "This item has a known answer; an unsure answer is not compared with it."
        assert sentences[:2] == ["Your answer matched the known answer.", "Your answer did not match the known answer."]
        quality = await client.get(f"/api/v1/projects/{s.project.id}/quality", headers=bearer(s.admin_token))
        assert quality.status_code == 200, quality.text
        (rater,) = [r for r in quality.json()["raters"] if r["user_id"] == str(s.raters[0].id)]
        expected = [v for _, v in QUESTIONS.values() if v is not None]
        assert (rater["gold_judged"], rater["gold_scored"]) == (4, 3)
        assert rater["gold_accuracy"] == pytest.approx(sum(expected) / len(expected))

    async def test_the_suspension_rule_counts_check_gold(self, client, make_setup, session) -> None:
        s: Setup = await make_setup(
            [scored_tree()], n_raters=1, gold_rate=1.0, suspension_window=2, suspension_threshold=0.6
        )
        for _ in range(2):  # s1/0 right, s1/1 wrong: 1 of 2 = 50% < 60%
            a = await lease(client, s)
            assert a is not None
            assert (await answer(client, s.tokens[0], a, answer="yes")).status_code == 201
        member = await session.scalar(
            select(ProjectMember)
            .where(ProjectMember.user_id == s.raters[0].id)
            .execution_options(populate_existing=True)
        )
        assert member is not None
        assert member.suspended_reason is not None
        assert "1 of the last 2 gold answers matched (50%)" in member.suspended_reason


class TestServing:
    async def test_a_pooled_gold_check_goes_to_its_group_only(self, client, make_setup, session) -> None:
        s: Setup = await make_setup([gold_tree(group="expert")], gold_rate=1.0, overlap=1)
        await session.execute(
            update(ProjectMember).where(ProjectMember.user_id == s.raters[1].id).values(group="expert")
        )
        await session.commit()
        outsider = await lease(client, s, 0)
        assert outsider is not None
        assert outsider["item"]["external_id"] == "t1/1"  # the ordinary check, never the expert's gold
        expert = await lease(client, s, 1)
        assert expert is not None
        assert expert["item"]["external_id"] == "t1/0"
        assigned = await session.scalar(select(Assignment.gold).where(Assignment.rater_id == s.raters[1].id))
        assert assigned is True

    async def test_a_rater_cannot_tell_a_gold_check_from_an_ordinary_one(self, app, client, session) -> None:
        """The same tree, its checks gold in one project and ordinary in the other: the same page, lease,
        judgment and next page on the API and the rater page."""
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        token = await create_token(session, rater)
        seen: dict[str, list[str]] = {"api": [], "page": [], "judgment": [], "page judgment": []}
        for gold in (True, False):
            project: Project = await create_project(
                session, admin, members=(rater,), gold_rate=1.0 if gold else 0.0, overlap=1
            )
            records = []
            for ident in ("x1", "x2"):
                check = {"kind": "check", "question": "Same question?", "candidate": 0}
                records.append(
                    {
                        "id": ident,
                        "prompt": "Same prompt",
                        "responses": [{"text": "Same"}, {"text": "Same"}],
                        "subtasks": [{**check, "gold": {"answer": "yes", "explanation": "E"}} if gold else check],
                    }
                )
            await import_items(session, project, admin, records)
            page = await PageRater(app).login(rater.email)
            html = (await page.post(f"/projects/{project.id}/label/queue")).text  # leases x1/0 and x2/0
            leased = (await next_item(client, project, token)).json()
            assert leased["item"]["external_id"] == "x1/0"
            judged = await client.post(
                f"/api/v1/assignments/{leased['id']}/judgment", json={"answer": "yes"}, headers=bearer(token)
            )
            assert judged.status_code == 201, judged.text
            ahead = await session.scalar(
                select(Assignment).where(Assignment.project_id == project.id, Assignment.id != uuid.UUID(leased["id"]))
            )
            assert ahead is not None
            page_judged = await page.post(f"/assignments/{ahead.id}/judge", verdict="a:no", ahead="")
            assert page_judged.status_code == 200
            await page.aclose()
            answers = {
                "page": html,
                "api": orjson_dumps(leased),
                "judgment": orjson_dumps(judged.json()),
                "page judgment": page_judged.text,
            }
            for kind, text in answers.items():
                seen[kind].append(_normalised(text.replace("x1/0", "X").replace("x2/0", "X"), project))
        for kind, (as_gold, as_work) in seen.items():
            assert as_gold == as_work, kind


class TestItemPage:
    async def test_the_gold_form_takes_a_checks_answer_and_a_ratings_value(self, app, client, make_setup, session):
        record = gold_tree("p1")
        record["subtasks"][0].pop("gold")
        record["subtasks"].append({"kind": "rating", "question": "How complete is A?", "candidate": 0, "scale": [1, 5]})
        s: Setup = await make_setup([record], overlap=2)
        check, other, rating = [await item(session, f"p1/{i}") for i in range(3)]
        page = await PageRater(app).login(s.admin.email)
        form = (await page.client.get(f"/admin/items/{check.id}")).text
        assert 'value="check:yes"' in form
        assert 'value="check:no"' in form
        assert 'value="tie"' not in form
        csrf = {"X-CSRF-Token": page.csrf}
        sent = await page.client.post(f"/admin/items/{check.id}/gold", data={"answer": "check:yes"}, headers=csrf)
        assert sent.status_code in (200, 303), sent.text
        refused = await page.client.post(
            f"/admin/items/{rating.id}/gold", data={"answer": "value", "value": "four"}, headers=csrf
        )
        assert refused.status_code == 422
        assert "Write the known rating as a number on the item&#39;s scale (for example 4 or 3.5)." in refused.text
        sent = await page.client.post(
            f"/admin/items/{rating.id}/gold", data={"answer": "value", "value": "3.5"}, headers=csrf
        )
        assert sent.status_code in (200, 303), sent.text
        # "Use as gold" from a rater's check answer; an unsure answer is refused.
        a = await lease(client, s)
        assert a is not None
        assert a["item"]["external_id"] == "p1/1"
        judged = await answer(client, s.tokens[0], a, answer="unsure")
        refused = await page.client.post(
            f"/admin/items/{other.id}/gold", data={"judgment": judged.json()["id"]}, headers=csrf
        )
        assert refused.status_code == 422
        assert "An unsure answer is no known answer, so it cannot be a gold answer." in refused.text
        b = await lease(client, s, 1)
        assert b is not None
        assert b["item"]["external_id"] == "p1/1"
        assert (await answer(client, s.tokens[1], b, answer="no")).status_code == 201
        judged_page = (await page.client.get(f"/admin/items/{other.id}")).text
        assert judged_page.count("Use as gold<span") == 1  # the no, not the unsure
        shown = (await page.client.get(f"/admin/items/{check.id}")).text
        assert "the answer “yes”" in shown
        assert (
            "the rating 3.5 (right within a tenth of the scale, ±0.4)"
            in (await page.client.get(f"/admin/items/{rating.id}")).text
        )
        await page.aclose()
        rows = await session.execute(select(Item.external_id, Item.gold).where(Item.gold.is_not(None)))
        golds = {external_id: gold for external_id, gold in rows}
        assert golds == {"p1/0": {"answer": "yes"}, "p1/2": {"value": 3.5}}

"""Gold items: their shape, import, serving at the project's gold rate, and gold accuracy."""

import itertools
import re
import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.labeling import service as labeling
from server.models import Assignment, Item, Judgment, Project, Role, Scope, User
from server.quality.gold import GoldError, parse_gold, score, wilson
from tests.batches.test_api import upload
from tests.factories import (
    bearer,
    create_project,
    create_token,
    create_user,
    import_items,
    jsonl,
    native_items,
    next_item,
)
from tests.labeling.race import PageRater


def gold_items(n: int, *, prefix: str = "g", answer: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    records = native_items(n, prefix=prefix)
    for record in records:
        record["gold"] = answer or {"preferred": 1, "explanation": "The second answer is right."}
    return records


class TestShape:
    @pytest.mark.parametrize(
        ("value", "candidates", "message"),
        [
            (3, 2, 'gold must be an object such as {"preferred": 0}, {"ranking": [1, 0]} or {"tie": true}.'),
            ({"preferred": 2}, 2, "gold.preferred is 2, but this item has 2 responses (indices 0 to 1)."),
            ({"preferred": 0, "tie": True}, 2, "gold needs exactly one of preferred, ranking or tie; found 2."),
            ({"explanation": "why"}, 2, "gold needs exactly one of preferred, ranking or tie; found 0."),
            ({"ranking": [0, 0, 1]}, 3, "gold.ranking must list every response index 0 to 2 once, best first."),
            ({"tie": False}, 2, "gold.tie can only be true; give preferred or ranking for a gold winner."),
            ({"preferred": True}, 2, "gold.preferred: Input should be a valid integer."),
            ({"winner": 0}, 2, "gold.winner: Extra inputs are not permitted."),
        ],
    )
    def test_refusals_say_what_is_wrong(self, value: Any, candidates: int, message: str) -> None:
        with pytest.raises(GoldError) as refused:
            parse_gold(value, candidates)
        assert str(refused.value) == message

    def test_scoring(self) -> None:
        pair = parse_gold({"preferred": 1}, 2)
        assert score(pair, choice=1, ranking=None, tie=False, both_bad=False) == 1.0
        assert score(pair, choice=0, ranking=None, tie=False, both_bad=False) == 0.0
        assert score(pair, choice=None, ranking=None, tie=True, both_bad=False) == 0.0
        assert score(pair, choice=None, ranking=None, tie=False, both_bad=True) is None
        ranked = parse_gold({"ranking": [2, 0, 1]}, 3)
        assert score(ranked, choice=None, ranking=[2, 0, 1], tie=False, both_bad=False) == 1.0
        assert score(ranked, choice=None, ranking=[0, 2, 1], tie=False, both_bad=False) == pytest.approx(2 / 3)
        assert score(ranked, choice=2, ranking=None, tie=False, both_bad=False) == 1.0
        tie = parse_gold({"tie": True}, 2)
        assert score(tie, choice=None, ranking=None, tie=True, both_bad=False) == 1.0
        assert score(tie, choice=0, ranking=None, tie=False, both_bad=False) == 0.0

    def test_wilson_interval_matches_the_textbook(self) -> None:
        # Wilson (1927) / Newcombe (1998), case 8/10 at 95%: 0.490 to 0.943.
        low, high = wilson(8, 10)
        assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
        assert wilson(0, 0) == (0.0, 1.0)


@pytest.fixture
async def admin_setup(session: AsyncSession) -> tuple[User, str]:
    admin = await create_user(session, role=Role.admin)
    return admin, await create_token(session, admin)


class TestImport:
    async def test_gold_items_stay_out_of_the_queue_and_progress(self, client, session, admin_setup) -> None:
        admin, token = admin_setup
        project = await create_project(session, admin, overlap=2)
        response = await upload(client, project, token, jsonl(native_items(3) + gold_items(2)))
        assert response.status_code == 201, response.text
        gold = list(await session.scalars(select(Item).where(Item.gold.is_not(None)).order_by(Item.gold_seq)))
        assert [(i.external_id, i.wanted, i.gold) for i in gold] == [
            ("g-0", 0, {"preferred": 1, "explanation": "The second answer is right."}),
            ("g-1", 0, {"preferred": 1, "explanation": "The second answer is right."}),
        ]
        progress = (await client.get(f"/api/v1/projects/{project.id}/progress", headers=bearer(token))).json()
        assert progress["items"] == 3

    async def test_a_bad_gold_answer_refuses_the_file(self, client, session, admin_setup) -> None:
        admin, token = admin_setup
        project = await create_project(session, admin)
        records = native_items(2) + gold_items(1, answer={"preferred": 5})
        response = await upload(client, project, token, jsonl(records))
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {
                "line": 3,
                "field": "gold",
                "message": "gold.preferred is 5, but this item has 2 responses (indices 0 to 1).",
            }
        ]


async def _project_with_gold(
    session: AsyncSession, *, gold_rate: float, normal: int = 3, gold: int = 2, raters: int = 2, overlap: int = 1
) -> tuple[Project, list[User], list[str]]:
    admin = await create_user(session, role=Role.admin)
    members = [await create_user(session) for _ in range(raters)]
    project = await create_project(session, admin, members=tuple(members), overlap=overlap, gold_rate=gold_rate)
    await import_items(session, project, admin, native_items(normal) + gold_items(gold))
    return project, members, [await create_token(session, m) for m in members]


async def _judge_all(client: httpx.AsyncClient, project: Project, token: str, prefer: int = 1) -> list[str]:
    """Judge until nothing is left, preferring the candidate imported at position `prefer`; the external ids seen."""
    seen = []
    while (response := await next_item(client, project, token)).status_code == 200:
        assignment = response.json()
        seen.append(assignment["item"]["external_id"])
        texts = [c["text"] for c in assignment["item"]["candidates"]]
        chosen = next(
            c for c, t in zip(assignment["item"]["candidates"], texts, strict=True) if t.startswith(f"Answer {prefer} ")
        )
        judged = await client.post(
            f"/api/v1/assignments/{assignment['id']}/judgment", json={"choice": chosen["id"]}, headers=bearer(token)
        )
        assert judged.status_code == 201, judged.text
    assert response.status_code == 204, response.text
    return seen


class TestServing:
    async def test_each_rater_sees_each_gold_item_once_whatever_the_overlap(self, client, session) -> None:
        project, _, tokens = await _project_with_gold(session, gold_rate=1.0)
        first = await _judge_all(client, project, tokens[0])
        second = await _judge_all(client, project, tokens[1])
        # gold_rate 1: gold first while there is any, then the queue (overlap 1 splits it).
        assert first[:2] == second[:2] == ["g-0", "g-1"]
        assert sorted(first[2:] + second[2:]) == ["item-0", "item-1", "item-2"]
        gold = list(await session.scalars(select(Item).where(Item.gold.is_not(None))))
        assert [(i.leased, i.judged, i.completed_at) for i in gold] == [(0, 0, None), (0, 0, None)]
        rows = (
            await session.execute(
                select(Judgment.gold, Judgment.surplus, func.count()).group_by(Judgment.gold, Judgment.surplus)
            )
        ).all()
        assert sorted(rows) == [(False, False, 3), (True, False, 4)]
        progress = (await client.get(f"/api/v1/projects/{project.id}/progress", headers=bearer(tokens[0]))).json()
        assert (progress["items"], progress["completed_items"], progress["judgments"]) == (3, 3, 3)

    async def test_no_gold_rate_serves_no_gold(self, client, session) -> None:
        project, _, tokens = await _project_with_gold(session, gold_rate=0.0, raters=1)
        assert await _judge_all(client, project, tokens[0]) == ["item-0", "item-1", "item-2"]

    async def test_gold_is_served_at_about_the_rate(self, client, session, monkeypatch) -> None:
        draws = itertools.chain([0.9, 0.1, 0.9, 0.9, 0.1], itertools.repeat(0.9))  # < 0.3 serves gold
        monkeypatch.setattr(labeling.random, "random", lambda: next(draws))
        project, _, tokens = await _project_with_gold(session, gold_rate=0.3, normal=5, raters=1)
        assert await _judge_all(client, project, tokens[0]) == [
            "item-0",
            "g-0",
            "item-1",
            "item-2",
            "g-1",
            "item-3",
            "item-4",
        ]

    async def test_a_rater_cannot_tell_gold_from_other_items(self, app, client, session) -> None:
        """The same items, gold in one project and ordinary in another: the same lease, page and judgment,
        and (with feedback off, the default) the same answers after judging, on the API and the page.

        Both responses read the same, so the random shown order cannot make a difference of its own.
        """
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        token = await create_token(session, rater)
        items = [
            {"id": f"x-{i}", "prompt": "Same question?", "responses": [{"text": "Same"}, {"text": "Same"}]}
            for i in (1, 2)
        ]
        seen: dict[str, list[str]] = {"api": [], "page": [], "judgment": [], "page judgment": []}
        for gold in (True, False):
            project = await create_project(session, admin, members=(rater,), gold_rate=1.0 if gold else 0.0)
            records = [{**item, "gold": {"preferred": 0, "explanation": "E"}} if gold else item for item in items]
            await import_items(session, project, admin, records)
            page = await PageRater(app).login(rater.email)
            html = (await page.post(f"/projects/{project.id}/label/queue")).text  # leases x-1 and x-2
            lease = (await next_item(client, project, token)).json()  # x-1, the lease the page shows first
            first = lease["item"]["candidates"][0]["id"]
            judged = await client.post(
                f"/api/v1/assignments/{lease['id']}/judgment", json={"choice": first}, headers=bearer(token)
            )
            assert judged.status_code == 201
            ahead = await session.scalar(
                select(Assignment).where(Assignment.project_id == project.id, Assignment.id != uuid.UUID(lease["id"]))
            )
            assert ahead is not None
            page_judged = await page.post(
                f"/assignments/{ahead.id}/judge", verdict=f"c:{ahead.shown_order[0]}:", ahead=""
            )
            assert page_judged.status_code == 200
            await page.aclose()
            answers = {
                "page": html,
                "api": orjson_dumps(lease),
                "judgment": orjson_dumps(judged.json()),
                "page judgment": page_judged.text,
            }
            for kind, answer in answers.items():
                seen[kind].append(_normalised(answer, project))
        for kind, (as_gold, as_work) in seen.items():
            assert as_gold == as_work, kind


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CSRF = re.compile(r'name="csrf_token" value="[0-9a-f]+"')
TIME = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?")


def _normalised(text: str, project: Project) -> str:
    """Ids, times and the project's name replaced: what is left must not depend on gold."""
    text = CSRF.sub("CSRF", text.replace(project.name, "PROJECT"))  # the CSRF token is per session
    return TIME.sub("TIME", UUID.sub("ID", text))


def orjson_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


class TestGoldOnExistingItems:
    async def test_put_makes_an_item_gold_and_delete_returns_it_to_the_queue(self, client, session) -> None:
        project, _, tokens = await _project_with_gold(session, gold_rate=0.0, gold=0, raters=1, overlap=2)
        admin_token = await create_token(session, await create_user(session, role=Role.admin), Scope.items_write)
        item = await session.scalar(select(Item).where(Item.external_id == "item-0"))
        assert item is not None
        url = f"/api/v1/items/{item.id}/gold"
        put = await client.put(
            url, json={"ranking": [1, 0], "explanation": "B cites its source."}, headers=bearer(admin_token)
        )
        assert put.status_code == 200, put.text
        assert put.json() == {
            "item_id": str(item.id),
            "gold": {"ranking": [1, 0], "explanation": "B cites its source."},
        }
        await session.refresh(item)
        assert (item.wanted, item.gold_seq is not None) == (0, True)
        assert "item-0" not in await _judge_all(client, project, tokens[0])
        deleted = await client.delete(url, headers=bearer(admin_token))
        assert deleted.status_code == 204
        await session.refresh(item)
        assert (item.wanted, item.gold, item.gold_seq) == (2, None, None)
        assert await _judge_all(client, project, tokens[0]) == ["item-0"]

    @pytest.mark.parametrize(
        ("body", "status", "message"),
        [
            ({}, 422, "gold needs exactly one of preferred, ranking or tie; found 0."),
            ({"preferred": 2}, 422, "gold.preferred is 2, but this item has 2 responses (indices 0 to 1)."),
            ({"ranking": [0]}, 422, "gold.ranking must list every response index 0 to 1 once, best first."),
        ],
    )
    async def test_bad_answers_are_refused(self, client, session, body, status, message) -> None:
        project, _, _ = await _project_with_gold(session, gold_rate=0.0, gold=0, raters=1)
        token = await create_token(session, await create_user(session, role=Role.admin))
        item_id = await session.scalar(select(Item.id).where(Item.project_id == project.id).limit(1))
        response = await client.put(f"/api/v1/items/{item_id}/gold", json=body, headers=bearer(token))
        assert (response.status_code, response.json()["detail"]) == (status, message)

    async def test_an_item_being_judged_is_not_made_gold(self, client, session) -> None:
        project, _, tokens = await _project_with_gold(session, gold_rate=0.0, gold=0, raters=1)
        token = await create_token(session, await create_user(session, role=Role.admin))
        lease = (await next_item(client, project, tokens[0])).json()
        response = await client.put(
            f"/api/v1/items/{lease['item']['id']}/gold", json={"tie": True}, headers=bearer(token)
        )
        assert response.status_code == 409
        assert response.json()["detail"] == (
            "This item is being judged right now (1 live lease(s)); make it gold once they are judged or run out, "
            "or pause its batch first."
        )

    async def test_an_item_of_a_project_not_shared_is_not_found(self, client, session) -> None:
        trainer = await create_user(session, role=Role.trainer)
        token = await create_token(session, trainer, Scope.items_write)
        project, _, _ = await _project_with_gold(session, gold_rate=0.0, gold=0, raters=1)
        item_id = await session.scalar(select(Item.id).where(Item.project_id == project.id).limit(1))
        response = await client.delete(f"/api/v1/items/{item_id}/gold", headers=bearer(token))
        assert (response.status_code, response.json()["detail"]) == (404, f"No item {item_id} is shared with you.")


class TestExpiredGoldLease:
    async def test_a_run_out_gold_lease_is_renewed(self, client, session) -> None:
        project, _, tokens = await _project_with_gold(session, gold_rate=1.0, gold=1, normal=0, raters=1)
        lease = (await next_item(client, project, tokens[0])).json()
        await session.execute(
            text("UPDATE assignments SET expires_at = now() - interval '1 second' WHERE id = :id"), {"id": lease["id"]}
        )
        await session.commit()
        renewed = await client.post(f"/api/v1/assignments/{lease['id']}/heartbeat", headers=bearer(tokens[0]))
        assert renewed.status_code == 200, renewed.text


class TestQualityFigures:
    async def test_gold_accuracy_per_rater_with_intervals(self, client, session) -> None:
        project, raters, tokens = await _project_with_gold(session, gold_rate=1.0, gold=4, normal=0, raters=2)
        await _judge_all(client, project, tokens[0], prefer=1)  # the gold answer: always right
        await _judge_all(client, project, tokens[1], prefer=0)  # always wrong
        admin_token = await create_token(session, await create_user(session, role=Role.admin))
        body = (await client.get(f"/api/v1/projects/{project.id}/quality", headers=bearer(admin_token))).json()
        figures = {r["email"]: r for r in body["raters"]}
        right, wrong = figures[raters[0].email], figures[raters[1].email]
        low, high = wilson(4, 4)
        assert (right["gold_judged"], right["gold_accuracy"], right["gold_ci"]) == (4, 1.0, [low, high])
        assert (wrong["gold_scored"], wrong["gold_accuracy"], wrong["recent_gold_accuracy"]) == (4, 0.0, 0.0)
        assert right["suspended"] is False

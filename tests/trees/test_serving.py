"""Task trees served: subtask assignments and answers, the gate, pools, and the race on the last subtasks."""

import asyncio
import re
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.models import Item, Judgment, ProjectMember
from tests.factories import bearer
from tests.labeling.race import Holder, lock_waits, until
from tests.trees.conftest import SUMMARY_A, Setup, answer, lease, tree_record


async def item(session: AsyncSession, external_id: str) -> Item:
    found = await session.scalar(
        select(Item).where(Item.external_id == external_id).execution_options(populate_existing=True)
    )
    assert found is not None
    return found


class TestAssignments:
    async def test_a_check_carries_its_question_candidate_and_span(self, client, make_setup) -> None:
        s: Setup = await make_setup([tree_record()])
        first = await lease(client, s)
        assert first is not None
        assert first["item"]["external_id"] == "t1/0"
        assert first["item"]["kind"] == "check"
        assert first["item"]["question"] == "Is the flood season right in A?"
        assert first["item"]["candidates"] == []
        target = first["item"]["candidate"]
        assert target["text"] == SUMMARY_A
        assert target["span"] == [4, 26]
        response = await answer(client, s.tokens[0], first, answer="yes", rationale="Spring, as the source says.")
        assert response.status_code == 201, response.text
        assert response.json()["answer"] == "yes"

    async def test_answers_are_checked_against_the_kind(self, client, make_setup) -> None:
        s: Setup = await make_setup([tree_record()], n_raters=3)
        leased: dict[str, dict[str, Any]] = {}
        for rater in range(3):  # three raters: each gets the next open subtask (overlap 1)
            a = await lease(client, s, rater)
            assert a is not None
            leased[a["item"]["kind"]] = a | {"rater": rater}
        assert set(leased) == {"check", "rating", "answer"}
        check = next(a for a in leased.values() if a["item"]["kind"] == "check")
        token = s.tokens[check["rater"]]
        cases = [
            ({"answer": "maybe"}, "answer must be yes, no or unsure for a check, got 'maybe'."),
            ({}, "answer is missing; this item is a check: yes, no or unsure."),
            ({"choice": check["item"]["id"]},
             "This item is a check subtask: send answer, not a choice, ranking, strength, tie or both_bad."),
            ({"answer": True}, None),
        ]  # fmt: skip
        for body, message in cases:
            response = await answer(client, token, check, **body) if body else await client.post(
                f"/api/v1/assignments/{check['id']}/judgment", json={}, headers=bearer(token)
            )  # fmt: skip
            assert response.status_code == 422, response.text
            if message:
                assert response.json()["detail"] == message
        rating = leased["rating"]
        token = s.tokens[rating["rater"]]
        response = await answer(client, token, rating, answer=9)
        assert response.status_code == 422
        assert response.json()["detail"] == "answer 9 is outside the scale: a number from 1 to 5."
        assert (await answer(client, token, rating, answer="four")).status_code == 422
        assert (await answer(client, token, rating, answer=4.5)).status_code == 201
        text_answer = leased["answer"]
        token = s.tokens[text_answer["rater"]]
        response = await answer(client, token, text_answer, answer="   ")
        assert response.json()["detail"] == "answer must be a non-empty text for an answer subtask."
        response = await answer(client, token, text_answer, answer="x" * 2001)
        assert response.status_code == 422  # the body's own bound (2,000 characters)
        assert (await answer(client, token, text_answer, answer="  Autumn ")).json()["answer"] == "Autumn"

    async def test_a_comparison_takes_no_answer(self, client, make_setup) -> None:
        s: Setup = await make_setup([tree_record()], subtasks_gate="optional")
        a = await lease(client, s)
        assert a is not None
        assert a["item"]["external_id"] == "t1"  # optional: the parent is served at once, first in order
        body = {"choice": a["item"]["candidates"][0]["id"], "answer": "yes"}
        response = await answer(client, s.tokens[0], a, **body)
        assert response.status_code == 422
        assert response.json()["detail"] == (
            "answer belongs to a check, a rating or an answer subtask; this item is a comparison."
        )


class TestGate:
    async def test_the_parent_opens_when_its_subtasks_are_complete(self, client, make_setup, session) -> None:
        s: Setup = await make_setup([tree_record()], n_raters=1)
        served = []
        while (a := await lease(client, s)) is not None:
            served.append(a["item"]["external_id"])
            if a["item"]["external_id"] == "t1":
                root = await item(session, "t1")
                assert root.open_subtasks == 0
                break
            assert (await answer(client, s.tokens[0], a)).status_code == 201
        # Level by level: t1/1 waits for t1/1/0, and t1 for its three.
        assert served == ["t1/0", "t1/2", "t1/1/0", "t1/1", "t1"]

    async def test_switching_the_gate_recounts(self, client, make_setup, session) -> None:
        s: Setup = await make_setup([tree_record()])
        url = f"/api/v1/projects/{s.project.id}"
        response = await client.patch(url, json={"subtasks_gate": "optional"}, headers=bearer(s.admin_token))
        assert response.status_code == 200, response.text
        assert response.json()["subtasks_gate"] == "optional"
        assert (await item(session, "t1")).open_subtasks == 0
        a = await lease(client, s)
        assert a is not None
        assert await answer(client, s.tokens[0], a) is not None  # t1 (first in order), judged
        response = await client.patch(url, json={"subtasks_gate": "required"}, headers=bearer(s.admin_token))
        assert response.status_code == 200
        assert ((await item(session, "t1")).open_subtasks, (await item(session, "t1/1")).open_subtasks) == (3, 1)


class TestPools:
    async def test_a_grouped_subtask_goes_only_to_its_group(self, client, make_setup, session) -> None:
        s: Setup = await make_setup([tree_record(group="expert")], n_raters=2)
        await session.execute(
            update(ProjectMember)
            .where(ProjectMember.project_id == s.project.id, ProjectMember.user_id == s.raters[1].id)
            .values(group="expert")
        )
        await session.commit()
        outsider = await lease(client, s, 0)
        assert outsider is not None
        assert outsider["item"]["external_id"] == "t1/2"  # t1/0 is the experts'
        expert = await lease(client, s, 1)
        assert expert is not None
        assert expert["item"]["external_id"] == "t1/0"  # the pool first

    async def test_the_shared_pick_never_walks_a_pool(self, make_setup, session: AsyncSession) -> None:
        """Flat cost: 300 pooled open items and 100 gated parents ahead in the serving order are not walked
        by an outsider's pick (gated parents are not in the index: queue_open needs open_subtasks = 0)."""
        records = [tree_record(f"p{i}", group="expert") for i in range(100)]
        for r in records:  # three pooled checks each; the parents wait for them (gate required)
            r["subtasks"] = r["subtasks"][:1] * 3
        s: Setup = await make_setup([*records, tree_record("z")])
        plan = await _pick_plan(session, s, pool=None)
        assert "ix_items_queue" in plan
        assert "Rows Removed by Filter" not in plan  # the pooled items are not in the index it walks
        scan = next(line for line in plan.split("\n") if "Index Scan using ix_items_queue" in line)
        # The first entry it reads is the one given (not the 300 pooled ones); PostgreSQL 18 prints rows=1.00.
        assert re.search(r"rows=1(\.00)? loops=1", scan), scan
        plan = await _pick_plan(session, s, pool="expert")
        assert "ix_items_pool" in plan


async def _pick_plan(session: AsyncSession, s: Setup, *, pool: str | None) -> str:
    where = "i.pool IS NULL" if pool is None else "i.pool = :pool"
    await session.execute(text("ANALYZE items"))
    rows = await session.execute(
        text(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT i.id FROM items i"
            f" WHERE i.project_id = :p AND i.queue_open AND {where}"
            " AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.rater_id = :r)"
            " ORDER BY -i.batch_priority, -i.priority, i.seq LIMIT 1"
        ),
        {"p": s.project.id, "r": s.raters[0].id, "pool": pool},
    )
    return "\n".join(r[0] for r in rows)


class TestRace:
    async def test_the_last_two_subtasks_at_once_open_the_parent_exactly_once(
        self, client, make_setup, engine: AsyncEngine, session: AsyncSession
    ) -> None:
        record = tree_record()
        record["subtasks"] = record["subtasks"][:1] * 2  # two checks of A
        s: Setup = await make_setup([record], n_raters=3)
        first, second = await lease(client, s, 0), await lease(client, s, 1)
        assert first is not None
        assert second is not None
        root = await item(session, "t1")
        children = [first["item"]["id"], second["item"]["id"]]
        assert root.open_subtasks == 2
        # Both submits reach the parent's lock while it is held (each locks its subtask and the parent in
        # id order, so a submit whose subtask sorts first waits holding it: in order), then both go on.
        holder = Holder(engine)
        await holder.hold("SELECT 1 FROM items WHERE id = :id FOR NO KEY UPDATE", id=root.id)
        tasks = [
            asyncio.create_task(answer(client, s.tokens[0], first)),
            asyncio.create_task(answer(client, s.tokens[1], second)),
        ]
        await until(lambda: _waiting(engine, 2, tasks), what="both submits waiting")
        await holder.release()
        responses = await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        assert [r.status_code for r in responses] == [201, 201]
        root = await item(session, "t1")
        assert root.open_subtasks == 0
        assert root.queue_open
        for child in children:
            c = await session.get(Item, child, populate_existing=True)
            assert c is not None
            assert (c.judged, c.completed_at is not None) == (1, True)
        assert await session.scalar(select(Judgment.id).where(Judgment.item_id == root.id)) is None
        # Opened once: the third rater gets it, and then nothing is left for them.
        third = await lease(client, s, 2)
        assert third is not None
        assert third["item"]["external_id"] == "t1"
        assert await lease(client, s, 0) is None  # the only open item is leased; it wants one rater


async def _waiting(engine: AsyncEngine, n: int, tasks: list[asyncio.Task[Any]]) -> bool:
    return await lock_waits(engine) >= n or all(t.done() for t in tasks)


class TestGoldStaysOutOfTrees:
    async def test_a_tree_item_cannot_be_made_gold(self, client, make_setup, session) -> None:
        """Only a check or a rating subtask without subtasks of its own takes gold (tests/trees/test_gold.py)."""
        s: Setup = await make_setup([tree_record()])
        for external_id, body in (("t1", {"preferred": 0}), ("t1/1", {"answer": "yes"}), ("t1/1/0", {"answer": "no"})):
            target = await item(session, external_id)
            response = await client.put(f"/api/v1/items/{target.id}/gold", json=body, headers=bearer(s.admin_token))
            assert response.status_code == 409, response.text
            assert response.json()["detail"].startswith("This item is part of a task tree")

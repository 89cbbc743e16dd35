"""Nothing lost, nothing double-counted: the rater loop under concurrency and admin changes.

Each class is a defect that was reproduced on the loop (issue 7), stepped deterministically:
one connection holds a lock, the code under test runs until it is seen waiting, and the test
decides when the lock goes. Every test here failed before the fix it guards.
"""

import asyncio
import io
import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.batches import service as batches
from server.batches.formats import Encoding, ImportFormat
from server.batches.schemas import BatchUpdate
from server.labeling import service
from server.models import Assignment, Item, Judgment, Project, ProjectMember, Role, Scope, User
from server.projects import service as projects
from server.projects.schemas import ProjectUpdate
from server.quality import service as quality
from tests.factories import (
    bearer,
    create_judgment,
    create_project,
    create_token,
    create_user,
    import_items,
    jsonl,
    native_items,
    next_item,
)
from tests.labeling.race import Holder, PageRater, blocked_by, lock_waits, until


async def lease(session: AsyncSession, project: Project, rater: User, **kwargs: Any) -> service.Leased:
    leased = await service.next_assignment(session, project=project, rater=rater, **kwargs)
    assert leased is not None
    await session.commit()
    return leased


def verdict(leased: service.Leased) -> str:
    return f"c:{leased.candidates[0].id}:"


async def items_by_external_id(session: AsyncSession, project: Project) -> dict[str, Item]:
    rows = await session.scalars(select(Item).where(Item.project_id == project.id))
    return {item.external_id: item for item in rows}


class TestPageJudgeDoesNotDeadlock:
    """Defect 1: two raters near the end, each holding the item the other takes next, judging at once."""

    async def test_each_judging_while_the_other_holds_their_next_item(
        self, app, engine: AsyncEngine, session: AsyncSession, caplog: pytest.LogCaptureFixture
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        a, b = await create_user(session), await create_user(session)
        project = await create_project(session, admin, members=(a, b), overlap=2)
        batch_x = await import_items(session, project, admin, native_items(1, prefix="x"))
        await import_items(session, project, admin, native_items(1, prefix="y"))
        on_x = await lease(session, project, a)
        # B gets Y (X's batch out of the way for a moment), so each holds the other's next item.
        await session.execute(update(Item).where(Item.batch_id == batch_x).values(paused=True))
        await session.commit()
        on_y = await lease(session, project, b)
        await session.execute(update(Item).where(Item.batch_id == batch_x).values(paused=False))
        await session.commit()
        assert (on_x.item.external_id, on_y.item.external_id) == ("x-0", "y-0")

        page_a = await PageRater(app).login(a.email)
        page_b = await PageRater(app).login(b.email)
        gate = Holder(engine)  # stops B between storing its verdict and leasing ahead (before the fix)
        await gate.hold(
            "SELECT 1 FROM project_members WHERE project_id = :p AND user_id = :u FOR UPDATE", p=project.id, u=b.id
        )
        judge_b = asyncio.create_task(
            page_b.post(f"/assignments/{on_y.assignment.id}/judge", verdict=verdict(on_y), ahead="")
        )
        await until(lambda: _waits_at_least(engine, 1), what="B waiting")
        judge_a = asyncio.create_task(
            page_a.post(f"/assignments/{on_x.assignment.id}/judge", verdict=verdict(on_x), ahead="")
        )
        await until(lambda: _done_or_waits(judge_a, engine, 2), what="A done or waiting")
        await gate.release()
        answer_a, answer_b = await asyncio.wait_for(asyncio.gather(judge_a, judge_b), timeout=30)
        assert (answer_a.status_code, answer_b.status_code) == (200, 200)
        counted = await session.scalar(select(func.count()).where(Judgment.project_id == project.id, ~Judgment.surplus))
        assert counted == 2
        # Each was then given the other's item: the queue moved on.
        held = await session.scalars(select(Assignment).where(Assignment.status == "leased"))
        assert {(x.rater_id, x.item_id) for x in held} == {(a.id, on_y.item.id), (b.id, on_x.item.id)}
        assert "labeling.retry" not in caplog.text  # no deadlock was detected (and hidden by a retry)
        await page_a.aclose()
        await page_b.aclose()


async def _waits_at_least(engine: AsyncEngine, n: int) -> bool:
    return await lock_waits(engine) >= n


async def _done_or_waits(task: asyncio.Task[Any], engine: AsyncEngine, n: int) -> bool:
    return task.done() or await lock_waits(engine) >= n


class TestActiveLearningAndRaters:
    """Defect 2: a post of scores re-prioritising items while a rater judges on the page."""

    async def test_scores_and_a_page_judge_both_succeed(
        self,
        app,
        client: httpx.AsyncClient,
        engine: AsyncEngine,
        session: AsyncSession,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        trainer = await create_user(session, role=Role.trainer)
        project = await create_project(session, admin, members=(rater, trainer), active_learning=True)
        await import_items(session, project, admin, native_items(3))
        y, z, x = sorted((await items_by_external_id(session, project)).values(), key=lambda i: i.id)
        # Serve X first, then Z (which the rater skips): the rater's only next item is then Y.
        for item, priority in ((x, 3.0), (z, 2.0), (y, 1.0)):
            await session.execute(update(Item).where(Item.id == item.id).values(priority=priority))
        await session.commit()
        on_x = await lease(session, project, rater)
        on_z = await lease(session, project, rater, exclude={on_x.assignment.id})
        assert (on_x.item.id, on_z.item.id) == (x.id, z.id)
        await service.skip(session, assignment_id=on_z.assignment.id, rater=rater, reason=None)
        await session.commit()

        token = await create_token(session, trainer, Scope.reward_models_write, Scope.export_read)
        report = {
            "features": "f",
            "cursor_to": "c1",
            "metrics": {"accuracy": 0.6, "log_loss": 0.6, "n_pairs": 40, "training_seconds": 1.0},
        }
        created = await client.post(f"/api/v1/projects/{project.id}/reward-models", json=report, headers=bearer(token))
        assert created.status_code == 201, created.text
        scores = {
            "scores": [{"item_id": str(i.id), "p": 0.5, "uncertainty": u} for i, u in ((y, 0.9), (z, 0.8), (x, 0.7))]
        }
        page = await PageRater(app).login(rater.email)
        gate = Holder(engine)  # stops the score post between Y and X (it locks items in id order)
        await gate.hold("SELECT 1 FROM items WHERE id = :z FOR UPDATE", z=z.id)
        post = asyncio.create_task(
            client.post(f"/api/v1/projects/{project.id}/reward-models/1/scores", json=scores, headers=bearer(token))
        )
        await until(lambda: _waits_at_least(engine, 1), what="the score post waiting")
        judge = asyncio.create_task(page.post(f"/assignments/{on_x.assignment.id}/judge", verdict=verdict(on_x)))
        await until(lambda: _done_or_waits(judge, engine, 2), what="the judge done or waiting")
        await gate.release()
        posted, judged = await asyncio.wait_for(asyncio.gather(post, judge), timeout=30)
        assert (posted.status_code, judged.status_code) == (200, 200), (posted.text, judged.text[:300])
        assert posted.json()["prioritised"] == 3
        assert await session.scalar(select(func.count()).select_from(Judgment)) == 1
        assert "labeling.retry" not in caplog.text
        await page.aclose()


class TestOverlapChanges:
    """Defect 4: what a new overlap means for items in flight, and exactly once per aggregate revision."""

    async def setup(self, session: AsyncSession, overlap: int, raters: int):  # type: ignore[no-untyped-def]
        admin = await create_user(session, role=Role.admin)
        people = [await create_user(session) for _ in range(raters)]
        trainer = await create_user(session, role=Role.trainer)
        project = await create_project(session, admin, members=(*people, trainer), overlap=overlap)
        await import_items(session, project, admin, native_items(1))
        tokens = [await create_token(session, p) for p in people]
        return admin, project, tokens, await create_token(session, trainer, Scope.export_read)

    async def pull(self, client, project, token, after=None):  # type: ignore[no-untyped-def]
        params = {"format": "raw", "granularity": "item"} | ({"after": after} if after else {})
        response = await client.get(f"/api/v1/projects/{project.id}/export", params=params, headers=bearer(token))
        assert response.status_code == 200, response.text
        rows = [orjson.loads(line) for line in response.content.splitlines()]
        return rows, response.headers["Assay-Next-Cursor"]

    async def judge(self, client, project, token) -> httpx.Response:  # type: ignore[no-untyped-def]
        a = (await next_item(client, project, token)).json()
        body = {"choice": a["item"]["candidates"][0]["id"]}
        return await client.post(f"/api/v1/assignments/{a['id']}/judgment", json=body, headers=bearer(token))

    async def set_overlap(self, session: AsyncSession, project: Project, admin: User, overlap: int) -> None:
        await session.refresh(project)
        await projects.update_project(session, project, ProjectUpdate(overlap=overlap), actor=admin)
        await session.commit()

    async def test_lowering_completes_an_item_with_what_it_has_and_delivers_it(self, client, session) -> None:
        admin, project, tokens, trainer = await self.setup(session, overlap=3, raters=3)
        for token in tokens[:2]:
            assert (await self.judge(client, project, token)).status_code == 201
        late = (await next_item(client, project, tokens[2])).json()  # a live lease beyond the new overlap
        rows, cursor = await self.pull(client, project, trainer)
        assert rows == []
        await self.set_overlap(session, project, admin, 2)
        rows, cursor = await self.pull(client, project, trainer, cursor)
        assert [(r["judgments"], r["aggregate_revision"]) for r in rows] == [(2, 1)]
        body = {"choice": late["item"]["candidates"][0]["id"]}
        answer = await client.post(f"/api/v1/assignments/{late['id']}/judgment", json=body, headers=bearer(tokens[2]))
        assert answer.status_code == 201
        assert (answer.json()["surplus"], answer.json()["surplus_reason"]) == (True, "filled")
        item = await session.scalar(select(Item).where(Item.project_id == project.id))
        await session.refresh(item)
        assert item is not None
        assert (item.judged, item.wanted, item.leased) == (2, 2, 0)
        assert (await self.pull(client, project, trainer, cursor))[0] == []

    async def test_toggling_delivers_each_aggregate_revision_once(self, client, session) -> None:
        admin, project, tokens, trainer = await self.setup(session, overlap=2, raters=3)
        delivered: list[tuple[str, int, int]] = []
        cursor = None

        async def pull() -> None:
            nonlocal cursor
            rows, cursor = await self.pull(client, project, trainer, cursor)
            delivered.extend((r["item_id"], r["aggregate_revision"], r["judgments"]) for r in rows)

        for token in tokens[:2]:
            await self.judge(client, project, token)
        await pull()
        for overlap in (3, 2, 3, 2, 3):
            await self.set_overlap(session, project, admin, overlap)
            await pull()
        assert (await self.judge(client, project, tokens[2])).status_code == 201
        await pull()
        await pull()
        assert [(revision, votes) for _, revision, votes in delivered] == [(1, 2), (2, 2), (3, 2), (4, 3)]
        item = await session.scalar(select(Item).where(Item.project_id == project.id))
        assert item is not None
        await session.refresh(item)
        assert (item.judged, item.wanted) == (3, 3)

    async def test_leases_beyond_a_lowered_overlap_are_kept_as_surplus(self, client, session) -> None:
        admin, project, tokens, _ = await self.setup(session, overlap=3, raters=3)
        leases = [(await next_item(client, project, t)).json() for t in tokens]
        await self.set_overlap(session, project, admin, 1)
        answers = [
            await client.post(
                f"/api/v1/assignments/{a['id']}/judgment",
                json={"choice": a["item"]["candidates"][0]["id"]},
                headers=bearer(t),
            )
            for a, t in zip(leases, tokens, strict=True)
        ]
        assert [a.json()["surplus_reason"] for a in answers] == [None, "filled", "filled"]
        item = await session.scalar(select(Item).where(Item.project_id == project.id))
        assert item is not None
        await session.refresh(item)
        assert (item.judged, item.leased, item.wanted) == (1, 0, 1)

    async def test_an_import_racing_an_overlap_change_gets_the_new_overlap(
        self, session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        admin, project, _, _ = await self.setup(session, overlap=1, raters=1)
        async with sessionmaker() as importer:
            stale = await importer.get_one(Project, project.id)  # read before the change lands
            await self.set_overlap(session, project, admin, 3)
            await batches.import_file(
                importer,
                project=stale,
                file=io.BytesIO(jsonl(native_items(5, start=10))),
                filename="more.jsonl",
                name=None,
                format=ImportFormat.NATIVE,
                encoding=Encoding.JSONL,
                priority=0,
                actor=admin,
            )
            await importer.commit()
        wanted = await session.scalars(select(Item.wanted).where(Item.project_id == project.id))
        assert set(wanted) == {3}


class TestLeaseBound:
    """Defect 5: a forged `ahead` must not let one rater lease the whole queue."""

    async def test_a_rater_holds_at_most_two_leases(self, app, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        project = await create_project(session, admin, members=(rater,))
        await import_items(session, project, admin, native_items(20))
        page = await PageRater(app).login(rater.email)
        queue = await page.post(f"/projects/{project.id}/label/queue")
        current, ahead = await session.scalars(
            select(Assignment.id).where(Assignment.rater_id == rater.id).order_by(Assignment.leased_at)
        )
        first = await session.get_one(Assignment, current)
        forged = ",".join(str(x) for x in [ahead, *(uuid.uuid4() for _ in range(5))])
        for _ in range(6):  # judge once, then re-post it claiming to hold everything
            held = ",".join(
                str(x)
                for x in await session.scalars(
                    select(Assignment.id).where(Assignment.rater_id == rater.id, Assignment.status == "leased")
                )
            )
            answer = await page.post(
                f"/assignments/{current}/judge", verdict=f"c:{first.shown_order[0]}:", ahead=f"{forged},{held}"
            )
            assert answer.status_code == 200
        live = await session.scalar(
            select(func.count()).where(Assignment.rater_id == rater.id, Assignment.status == "leased")
        )
        assert queue.status_code == 200
        assert live == 2
        assert "You already hold 2 items of this project; judge or skip one before taking another." in answer.text
        await page.aclose()


class TestRemovedSuspendedPaused:
    """Defect 6: removal and suspension end leases; late work is stored uncounted and answered 409."""

    async def setup(self, session: AsyncSession, **settings: Any):  # type: ignore[no-untyped-def]
        admin = await create_user(session, role=Role.admin)
        rater, other = await create_user(session), await create_user(session)
        project = await create_project(session, admin, members=(rater, other), **settings)
        await import_items(session, project, admin, native_items(1))
        return (
            project,
            await create_token(session, admin),
            await create_token(session, rater),
            await create_token(session, other),
            rater,
        )

    async def test_a_removed_rater_loses_the_lease_and_late_work_is_stored_uncounted(self, client, session) -> None:
        project, admin, token, other, rater = await self.setup(session)
        a = (await next_item(client, project, token)).json()
        removed = await client.delete(f"/api/v1/projects/{project.id}/members/{rater.id}", headers=bearer(admin))
        assert removed.status_code == 204
        assert (await next_item(client, project, other)).status_code == 200  # the slot is free at once
        beat = await client.post(f"/api/v1/assignments/{a['id']}/heartbeat", headers=bearer(token))
        assert (beat.status_code, beat.json()["detail"]) == (
            409,
            "You were removed from this project while you held this item; there is nothing to renew or skip.",
        )
        body = {"choice": a["item"]["candidates"][0]["id"]}
        for _ in range(2):  # a retry gets the same answer and stores nothing new
            late = await client.post(f"/api/v1/assignments/{a['id']}/judgment", json=body, headers=bearer(token))
            assert late.status_code == 409
            assert late.json()["detail"] == (
                "You were removed from this project while you held this item, so your verdict is stored but does "
                "not count."
            )
            assert late.json()["judgment"]["surplus_reason"] == "removed"
        stored = (await session.scalars(select(Judgment))).all()
        assert [(j.surplus, j.surplus_reason) for j in stored] == [(True, "removed")]
        item = await session.scalar(select(Item))
        assert item is not None
        assert (item.judged, item.leased) == (0, 1)

    async def test_a_suspended_rater_is_told_why_and_can_be_reinstated(self, client, session) -> None:
        project, admin, token, _, rater = await self.setup(session)
        a = (await next_item(client, project, token)).json()
        path = f"/api/v1/projects/{project.id}/members/{rater.id}"
        suspended = await client.patch(
            path, json={"suspended": True, "reason": "Answers in under a second."}, headers=bearer(admin)
        )
        assert suspended.status_code == 200
        assert suspended.json()["suspended_reason"] == "Answers in under a second."
        refused = await next_item(client, project, token)
        assert (refused.status_code, refused.json()["detail"]) == (
            403,
            "Your access to this project is suspended, so no items are given to you. Reason: Answers in under a "
            "second. Contact the project admin.",
        )
        late = await client.post(
            f"/api/v1/assignments/{a['id']}/judgment",
            json={"choice": a["item"]["candidates"][0]["id"]},
            headers=bearer(token),
        )
        assert late.status_code == 409
        assert late.json()["judgment"]["surplus_reason"] == "suspended"
        member = await session.scalar(select(ProjectMember).where(ProjectMember.user_id == rater.id))
        assert member is not None
        assert member.suspended_at is not None
        assert (await client.patch(path, json={"suspended": False}, headers=bearer(admin))).status_code == 200
        assert (await next_item(client, project, token)).status_code == 204  # reinstated; nothing left for them

    async def test_a_paused_batch_gives_no_run_out_lease_back(self, client, session) -> None:
        project, _, token, _, _ = await self.setup(session)
        a = (await next_item(client, project, token)).json()
        await session.execute(update(Assignment).values(expires_at=func.now() - text("interval '1 minute'")))
        await session.execute(update(Item).values(paused=True))
        await session.commit()
        await service.reclaim_expired(session, project.id, limit=10)
        await session.commit()
        beat = await client.post(f"/api/v1/assignments/{a['id']}/heartbeat", headers=bearer(token))
        assert (beat.status_code, beat.json()["detail"]) == (
            409,
            "Your time on this item ran out and its batch has been paused since, so it cannot be renewed. "
            "You can still submit it (it is kept, marked surplus) or move on to the next item.",
        )
        item = await session.scalar(select(Item))
        assert item is not None
        await session.refresh(item)
        assert item.leased == 0


class TestNothingLeftMeansNothingLeft:
    """Defect 8: `next` said 204 while work existed, when it had reclaimed a lease and the rest was locked."""

    async def test_waits_for_the_locked_item_after_reclaiming(self, client, engine, session) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        project = await create_project(session, admin, members=(rater,))
        await import_items(session, project, admin, native_items(2))
        token = await create_token(session, rater)
        first = (await next_item(client, project, token)).json()
        await session.execute(update(Assignment).values(expires_at=func.now() - text("interval '1 minute'")))
        await session.commit()
        other = await session.scalar(select(Item.id).where(Item.id != uuid.UUID(first["item"]["id"])))
        holder = Holder(engine)
        await holder.hold("SELECT 1 FROM items WHERE id = :id FOR UPDATE", id=other)
        asked = asyncio.create_task(next_item(client, project, token))
        await until(lambda: _done_or_waits(asked, engine, 1), what="next done or waiting")
        await holder.release()
        answer = await asyncio.wait_for(asked, timeout=30)
        assert answer.status_code == 200
        assert answer.json()["item"]["id"] == str(other)


class TestWaitingPickWaitsForOneRow:
    """A waiting pick locked an item that had been filled since its scan began (PostgreSQL keeps such a
    lock after the recheck fails), then waited for the next item holding it: a wait out of id order,
    which raters and a post of scores turned into a deadlock under load."""

    async def test_it_holds_no_item_while_it_waits(self, client, engine, session, caplog) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        project = await create_project(session, admin, members=(rater,))
        await import_items(session, project, admin, native_items(3))
        first, *rest = (await items_by_external_id(session, project)).values()
        high, low = sorted(rest, key=lambda i: i.id, reverse=True)
        # Serving order: first, high, low; so the last two are in descending id order.
        for item, priority in ((first, 3.0), (high, 2.0), (low, 1.0)):
            await session.execute(update(Item).where(Item.id == item.id).values(priority=priority))
        await session.commit()
        token = await create_token(session, rater)
        holders = {name: Holder(engine) for name in ("first", "high", "low")}
        for name, item in (("first", first), ("high", high), ("low", low)):
            await holders[name].hold("SELECT 1 FROM items WHERE id = :id FOR UPDATE", id=item.id)
        asked = asyncio.create_task(next_item(client, project, token))
        await until(lambda: _waits_at_least(engine, 1), what="next waiting")
        for name, item in (("high", high), ("first", first)):  # filled by others, in that order
            await holders[name].hold("UPDATE items SET leased = wanted WHERE id = :id", id=item.id)
            await holders[name].release(commit=True)
        low_pid = await holders["low"].pid()
        await until(lambda: blocked_by(engine, low_pid), what="next waiting for low")
        # Whoever holds `low` now locks `high` (id order: low first): nobody may be holding `high`.
        await holders["low"].hold("SET LOCAL lock_timeout = '5s'")
        await holders["low"].hold("SELECT 1 FROM items WHERE id = :id FOR UPDATE", id=high.id)
        await holders["low"].release()
        answer = await asyncio.wait_for(asked, timeout=30)
        assert answer.status_code == 200
        assert answer.json()["item"]["id"] == str(low.id)
        # No deadlock was detected and retried on the way (the retry would have hidden it).
        assert "labeling.retry" not in caplog.text


def _judging(client: httpx.AsyncClient, lease: dict[str, Any], token: str) -> asyncio.Task[httpx.Response]:
    """The API's judgment of a lease (its first candidate), sent in a task of its own (it may wait)."""
    body = {"choice": lease["item"]["candidates"][0]["id"]}
    return asyncio.create_task(
        client.post(f"/api/v1/assignments/{lease['id']}/judgment", json=body, headers=bearer(token))
    )


async def _two_waiting_submits(
    client: httpx.AsyncClient, engine: AsyncEngine, leases: list[dict[str, Any]], tokens: list[str]
) -> tuple[asyncio.Task[httpx.Response], asyncio.Task[httpx.Response]]:
    """Two raters judge their leases (the first candidate), one after the other, each once the one
    before waits for the item's lock: the first is sure to be granted it first."""
    first = _judging(client, leases[0], tokens[0])
    await until(lambda: _waits_at_least(engine, 1), what="the first submit waiting")
    second = _judging(client, leases[1], tokens[1])
    await until(lambda: _waits_at_least(engine, 2), what="the second submit waiting")
    return first, second


class TestWaitsForTheItemInAStatementOfItsOwn:
    """Two API submits of one item deadlocked in `_TAKE_SLOT` (TestEverythingAtOnce, 2026-12-01): a
    statement that waited for the item in its CTE locked the row's newest version, then its UPDATE
    went back to the version its snapshot saw and queued for that version's tuple lock, which the
    other waiter held while it waited for the first one. That happens when the old version's xmax is
    a MultiXact kept alive by someone's KEY SHARE (the foreign-key check of a post of scores inserting
    item_scores). The waiting pick and the admin changes that write items (overlap, a batch's pause)
    had the same shape. Now the rows are waited for by a lock-only statement, and the statement that
    writes them starts after the locks are held."""

    async def _setup(self, client, session, raters: int):  # type: ignore[no-untyped-def]
        admin = await create_user(session, role=Role.admin)
        members = [await create_user(session) for _ in range(raters)]
        project = await create_project(session, admin, members=tuple(members), overlap=raters)
        await import_items(session, project, admin, native_items(1))
        tokens = [await create_token(session, m) for m in members]
        item = await session.scalar(select(Item.id).where(Item.project_id == project.id))
        return project, tokens, item

    async def _writer_and_key_share(self, engine: AsyncEngine, item: uuid.UUID) -> tuple[Holder, Holder]:
        writer, key_share = Holder(engine), Holder(engine)  # another request writing the item, a post of scores
        await writer.hold("SELECT 1 FROM items WHERE id = :id FOR NO KEY UPDATE", id=item)
        await writer.hold("UPDATE items SET priority = priority + 1 WHERE id = :id", id=item)
        # What the foreign-key check of an INSERT referencing the item takes, held until that transaction ends.
        await key_share.hold("SELECT 1 FROM items WHERE id = :id FOR KEY SHARE", id=item)
        return writer, key_share

    async def test_two_submits_of_one_item(self, client, engine, session, caplog) -> None:
        project, tokens, item = await self._setup(client, session, 2)
        leases = [(await next_item(client, project, t)).json() for t in tokens]
        writer, key_share = await self._writer_and_key_share(engine, item)

        first, second = await _two_waiting_submits(client, engine, leases, tokens)
        await writer.release(commit=True)
        answers = await asyncio.wait_for(asyncio.gather(first, second), timeout=30)
        await key_share.release()
        assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
        assert "labeling.retry" not in caplog.text  # no deadlock was detected (and hidden by a retry)
        stored = await session.get_one(Item, item, populate_existing=True)
        assert (stored.judged, stored.leased, stored.completed_at is not None) == (2, 0, True)

    async def test_a_late_verdict_waiting_behind_the_one_that_fills_the_item(
        self, client, engine, session, caplog
    ) -> None:
        """The slot is decided from the counters the lock-only statement returns (service._slot): those
        of the row's newest version, read after the wait. Two late verdicts (both leases ran out and
        were reclaimed) on an item that wants one more: the first fills it, the second, which waited
        behind it, is surplus. Counters read before the wait (the item as the submit first loaded it)
        would have counted both."""
        project, tokens, item = await self._setup(client, session, 2)
        leases = [(await next_item(client, project, t)).json() for t in tokens]
        await session.execute(update(Assignment).values(expires_at=func.now() - text("interval '1 minute'")))
        await session.commit()
        assert (await next_item(client, project, tokens[0])).status_code == 204  # reclaims both leases
        await session.execute(update(Project).where(Project.id == project.id).values(overlap=1))
        await session.execute(update(Item).where(Item.id == item).values(wanted=1))
        await session.commit()
        holder = Holder(engine)
        await holder.hold("SELECT 1 FROM items WHERE id = :id FOR NO KEY UPDATE", id=item)

        first, second = await _two_waiting_submits(client, engine, leases, tokens)
        await holder.release()
        answers = await asyncio.wait_for(asyncio.gather(first, second), timeout=30)
        assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
        assert [(a.json()["surplus"], a.json()["surplus_reason"]) for a in answers] == [(False, None), (True, "filled")]
        assert "labeling.retry" not in caplog.text
        stored = await session.get_one(Item, item, populate_existing=True)
        assert (stored.judged, stored.leased, stored.aggregate_revision) == (1, 0, 1)
        assert stored.completed_at is not None

    async def test_a_waiting_pick_and_a_submit_of_its_item(self, client, engine, session, caplog) -> None:
        project, (judging, picking), item = await self._setup(client, session, 2)
        lease = (await next_item(client, project, judging)).json()
        writer, key_share = await self._writer_and_key_share(engine, item)
        picked = asyncio.create_task(next_item(client, project, picking))  # nothing unlocked: it waits for the item
        await until(lambda: _waits_at_least(engine, 1), what="next waiting")
        judged = _judging(client, lease, judging)
        await until(lambda: _waits_at_least(engine, 2), what="the submit waiting")
        await writer.release(commit=True)
        answers = await asyncio.wait_for(asyncio.gather(picked, judged), timeout=30)
        await key_share.release()
        assert [a.status_code for a in answers] == [200, 201], [a.text for a in answers]
        assert answers[0].json()["item"]["id"] == str(item)
        assert "labeling.retry" not in caplog.text

    @pytest.mark.parametrize("change", ["overlap", "pause"])
    async def test_an_admin_change_and_a_submit_of_its_item(self, change, client, engine, session, caplog) -> None:
        project, (judging,), item = await self._setup(client, session, 1)
        admin = await session.scalar(select(User).where(User.role == Role.admin))
        admin_token = await create_token(session, admin)
        lease = (await next_item(client, project, judging)).json()
        batch = await session.scalar(select(Item.batch_id).where(Item.id == item))
        writer, key_share = await self._writer_and_key_share(engine, item)
        if change == "overlap":
            call = client.patch(f"/api/v1/projects/{project.id}", json={"overlap": 3}, headers=bearer(admin_token))
        else:
            call = client.patch(f"/api/v1/batches/{batch}", json={"status": "paused"}, headers=bearer(admin_token))
        changed = asyncio.create_task(call)
        await until(lambda: _waits_at_least(engine, 1), what="the change waiting")
        judged = _judging(client, lease, judging)
        await until(lambda: _waits_at_least(engine, 2), what="the submit waiting")
        await writer.release(commit=True)
        answers = await asyncio.wait_for(asyncio.gather(changed, judged), timeout=30)
        await key_share.release()
        assert [a.status_code for a in answers] == [200, 201], [a.text for a in answers]
        assert "labeling.retry" not in caplog.text


class TestReclaimNeverWaits:
    """Defect 10: reclaiming run-out leases waited for item locks (and so could close a deadlock)."""

    async def test_a_locked_item_with_a_run_out_lease_is_left_for_later(self, client, engine, session) -> None:
        admin = await create_user(session, role=Role.admin)
        ana, bo = await create_user(session), await create_user(session)
        project = await create_project(session, admin, members=(ana, bo))
        await import_items(session, project, admin, native_items(2))
        ana_token, bo_token = await create_token(session, ana), await create_token(session, bo)
        ran_out = (await next_item(client, project, ana_token)).json()
        await session.execute(update(Assignment).values(expires_at=func.now() - text("interval '1 minute'")))
        await session.commit()
        holder = Holder(engine)
        await holder.hold("SELECT 1 FROM items WHERE id = :id FOR UPDATE", id=uuid.UUID(ran_out["item"]["id"]))
        try:
            answer = await asyncio.wait_for(next_item(client, project, bo_token), timeout=10)
        finally:
            await holder.release()
        assert answer.status_code == 200
        assert answer.json()["item"]["id"] != ran_out["item"]["id"]
        still = await session.get_one(Assignment, uuid.UUID(ran_out["id"]))
        assert still.status == "leased"  # the next call reclaims it


class TestConcurrentUploads:
    """Defect 10: two uploads with the same ids in opposite orders deadlocked (500)."""

    async def test_they_queue_up_instead(
        self, engine: AsyncEngine, session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin)
        batch = await import_items(session, project, admin, native_items(1, prefix="seed"))
        gate = Holder(engine)  # an uncommitted item "g" that the first upload has to wait for
        await gate.hold(
            "INSERT INTO items (id, project_id, batch_id, external_id, prompt, wanted)"
            " VALUES (gen_random_uuid(), :p, :b, 'g', '\"?\"', 1)",
            p=project.id,
            b=batch,
        )

        async def upload(ids: list[str]) -> object:
            records = [{"id": i, "prompt": "P", "responses": [{"text": "a"}, {"text": "b"}]} for i in ids]
            async with sessionmaker() as own:
                result = await batches.import_file(
                    own,
                    project=await own.get_one(Project, project.id),
                    file=io.BytesIO(jsonl(records)),
                    filename="u.jsonl",
                    name=None,
                    format=ImportFormat.NATIVE,
                    encoding=Encoding.JSONL,
                    priority=0,
                    actor=await own.get_one(User, admin.id),
                )
                await own.commit()
                return result

        first = asyncio.create_task(upload(["a", "g", "b"]))
        await until(lambda: _waits_at_least(engine, 1), what="the first upload waiting")
        second = asyncio.create_task(upload(["b", "a"]))
        await until(lambda: _done_or_waits(second, engine, 2), what="the second upload waiting")
        await gate.release()
        results = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), timeout=30)
        assert not [r for r in results if isinstance(r, BaseException)], results
        external = set(await session.scalars(select(Item.external_id).where(Item.project_id == project.id)))
        assert external == {"seed-0", "a", "g", "b"}


class TestPickCostIsFlat:
    """Defect 9: a rater's pick walked every still-open item they had judged (50,000 rows, 86 ms)."""

    @pytest.mark.parametrize("history", [50_000])
    async def test_a_prolific_rater_picks_as_cheaply_as_a_new_one(self, app, engine, session, history: int) -> None:
        admin = await create_user(session, role=Role.admin)
        prolific, new = await create_user(session), await create_user(session)
        project = await create_project(session, admin, members=(prolific, new), overlap=2)
        await import_items(session, project, admin, native_items(history + 200))
        await _judged_in_bulk(session, project, prolific, history)
        for rater in (prolific, new):  # a first pick finds (and remembers) where the rater is
            await _next_and_skip(session, project, rater)
        cost = [await _buffers_of_next(engine, session, project, rater) for rater in (prolific, new)]
        assert cost[0] <= 2 * cost[1], f"buffers of next: {cost[0]} at {history} judgments, {cost[1]} at 0"

    @pytest.mark.parametrize(
        "change", ["import appended", "batch resumed", "overlap lowered", "overlap raised", "gold cleared"]
    )
    async def test_and_after_a_change_of_the_serving_order(self, app, engine, session, change: str) -> None:
        """A change that names what it moved ahead keeps every rater's resume point (queue_moves).

        5,000 judged items are enough here: a pick rewound to the front walks all of them, about a
        hundred times the new rater's buffers (test time: CI runs the suite twice)."""
        history = 5_000
        admin = await create_user(session, role=Role.admin)
        prolific, new = await create_user(session), await create_user(session)
        project = await create_project(session, admin, members=(prolific, new), overlap=2)
        await import_items(session, project, admin, native_items(history + 200))
        later = await import_items(session, project, admin, native_items(50, prefix="later"))
        await _judged_in_bulk(session, project, prolific, history)
        for rater in (prolific, new):
            await _next_and_skip(session, project, rater)
        await session.refresh(project)
        epoch = project.queue_epoch
        if change == "import appended":
            await import_items(session, project, admin, native_items(50, prefix="appended"))
        elif change == "batch resumed":
            batch = await batches.get(session, later)
            await batches.steer(session, batch, BatchUpdate(status="paused"), actor=admin)
            await session.commit()
            await batches.steer(session, batch, BatchUpdate(status="active"), actor=admin)
        elif change == "overlap lowered":
            await projects.update_project(session, project, ProjectUpdate(overlap=1), actor=admin)
        elif change == "overlap raised":
            await projects.update_project(session, project, ProjectUpdate(overlap=3), actor=admin)
        else:
            gold = await session.scalar(select(Item.id).where(Item.batch_id == later).order_by(Item.seq).limit(1))
            assert gold is not None
            await quality.set_gold(session, project, gold, {"preferred": 0})
            await session.commit()
            await quality.clear_gold(session, project, gold)
        await session.commit()
        await session.refresh(project)
        assert project.queue_epoch > epoch  # the raters' resume points are from an older epoch
        cost = [await _buffers_of_next(engine, session, project, rater) for rater in (prolific, new)]
        assert cost[0] <= 2 * cost[1], f"after '{change}': {cost[0]} at {history} judgments, {cost[1]} at 0"


async def test_a_priority_import_is_served_first_after_the_rewind(session: AsyncSession) -> None:
    """The rewind is not a shortcut past moved items: an urgent batch is next for a rater far along."""
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,), overlap=2)
    await import_items(session, project, admin, native_items(30))
    for _ in range(20):
        await _next_and_skip(session, project, rater)
    await import_items(session, project, admin, native_items(3, prefix="urgent"), priority=5)
    await session.refresh(project)
    served = []
    for _ in range(5):
        leased = await service.next_assignment(session, project=project, rater=rater)
        assert leased is not None
        served.append(leased.item.external_id)
        await service.skip(session, assignment_id=leased.assignment.id, rater=rater, reason=None)
        await session.commit()
    assert served == ["urgent-0", "urgent-1", "urgent-2", "item-20", "item-21"]


async def test_items_a_raised_overlap_reopens_behind_a_rater_are_served_to_them(session: AsyncSession) -> None:
    """The rewind after a raised overlap goes back to the items it reopened, not past them."""
    admin = await create_user(session, role=Role.admin)
    early, late = await create_user(session), await create_user(session)
    project = await create_project(session, admin, members=(early, late), overlap=1)
    await import_items(session, project, admin, native_items(30))
    for _ in range(5):  # items 0-4 complete (overlap 1)
        await create_judgment(session, project, early)
    await session.commit()
    for _ in range(10):  # the late rater passes items 5-14 by
        await _next_and_skip(session, project, late)
    await projects.update_project(session, project, ProjectUpdate(overlap=2), actor=admin)
    await session.commit()
    leased = await service.next_assignment(session, project=project, rater=late)
    assert leased is not None
    assert leased.item.external_id == "item-0"  # reopened, behind the late rater's resume point


async def _judged_in_bulk(session: AsyncSession, project: Project, rater: User, n: int) -> None:
    """The rater judged the first n items in serving order; nobody else did yet, so all stay open.

    In two statements, each after an ANALYZE of the tables its foreign keys are checked against: a
    foreign key's check is planned once for the statement, and with statistics taken while a table
    was empty (autovacuum after an earlier test) it scans the whole table for each of n rows,
    n * n / 2 row visits (a run of this test spent minutes in one statement)."""
    await session.execute(text("ANALYZE items"))
    await session.execute(
        text(
            """
            WITH first AS (
                SELECT id FROM items WHERE project_id = :p ORDER BY seq LIMIT :n
            ), a AS (
                INSERT INTO assignments (id, project_id, item_id, rater_id, status, shown_order, leased_at,
                                         expires_at, finished_at)
                SELECT gen_random_uuid(), :p, f.id, :r, 'submitted',
                       ARRAY(SELECT c.id FROM candidates c WHERE c.item_id = f.id ORDER BY c.position),
                       now(), now(), now()
                FROM first f
            )
            UPDATE items SET judged = 1 WHERE id IN (SELECT id FROM first)
            """
        ),
        {"p": project.id, "r": rater.id, "n": n},
    )
    await session.commit()
    await session.execute(text("ANALYZE assignments"))
    await session.execute(
        text(
            """
            INSERT INTO judgments (id, assignment_id, project_id, item_id, rater_id, choice_id, tie, both_bad,
                                   surplus)
            SELECT gen_random_uuid(), a.id, :p, a.item_id, :r, a.shown_order[1], false, false, false
            FROM assignments a WHERE a.project_id = :p AND a.rater_id = :r AND a.status = 'submitted'
            """
        ),
        {"p": project.id, "r": rater.id},
    )
    await session.commit()
    await session.execute(text("ANALYZE items, assignments, judgments"))
    await session.commit()


async def _next_and_skip(session: AsyncSession, project: Project, rater: User) -> None:
    await session.refresh(project)
    await session.refresh(rater)
    leased = await service.next_assignment(session, project=project, rater=rater)
    assert leased is not None
    await service.skip(session, assignment_id=leased.assignment.id, rater=rater, reason=None)
    await session.commit()


async def _buffers_of_next(engine: AsyncEngine, session: AsyncSession, project: Project, rater: User) -> int:
    """Shared buffers touched by every statement of one `next` call, from EXPLAIN (ANALYZE, BUFFERS).

    The call's statements are captured as the server sends them, then replayed under EXPLAIN in a
    transaction that is rolled back.
    """
    from sqlalchemy import event

    sent: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        sent.append((statement, parameters))

    await session.refresh(project)
    await session.refresh(rater)
    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        leased = await service.next_assignment(session, project=project, rater=rater)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    await session.rollback()
    assert leased is not None
    total = 0
    async with engine.connect() as connection:
        await connection.begin()
        for statement, parameters in sent:
            if not statement.lstrip().upper().startswith(("SELECT", "UPDATE", "INSERT", "WITH")):
                continue
            plan = await connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
            top = plan.scalar_one()
            if isinstance(top, str):
                top = orjson.loads(top)
            node = top[0]["Plan"]
            total += int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))
        await connection.rollback()
    return total


async def test_the_api_judgment_is_retried_after_a_deadlock(
    client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Defence in depth, as the page's judge has: PostgreSQL picked this submit as a deadlock's
    victim once (TestEverythingAtOnce on the 5432 server, 2026-12-01); the rater gets 201, not 500."""
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,))
    await import_items(session, project, admin, native_items(1))
    token = await create_token(session, rater)
    leased = (await next_item(client, project, token)).json()
    real, failures = service.submit, []

    async def deadlocked_once(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(1)
            error = type("DeadlockDetectedError", (Exception,), {"sqlstate": "40P01"})()
            raise DBAPIError("UPDATE items ...", {}, error)
        return await real(*args, **kwargs)

    monkeypatch.setattr(service, "submit", deadlocked_once)
    response = await client.post(
        f"/api/v1/assignments/{leased['id']}/judgment",
        json={"choice": leased["item"]["candidates"][0]["id"]},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    assert failures == [1]
    assert "labeling.retry" in caplog.text
    assert await session.scalar(select(func.count()).select_from(Judgment)) == 1

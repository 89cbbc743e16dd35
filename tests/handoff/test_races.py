"""The model phase under concurrency, with real connections (the style of tests/labeling/test_integrity.py).

Locks follow the one order (docs/ARCHITECTURE.md): a model's verdict takes membership →
assignment → item like any submit, and routes the item under that item lock, so two model judges
finishing one item at once are serialised on the item and exactly one of them routes it.
"""

import asyncio
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.labeling import service
from server.labeling.schemas import JudgmentCreate
from server.models import Item, Judgment, Project, Role, User
from tests.factories import (
    create_model,
    create_project,
    create_token,
    create_user,
    import_items,
    native_items,
    next_item,
)
from tests.labeling.race import Holder, lock_waits, until

RULE = {"min_confidence": 0.8, "min_judges": 2, "spot_check_rate": 0.0}


async def project_with_models(
    session: AsyncSession, rule: dict[str, Any], models: int
) -> tuple[Project, list[User], User]:
    admin = await create_user(session, role=Role.admin)
    human = await create_user(session)
    judges = [await create_model(session) for _ in range(models)]
    project = await create_project(session, admin, members=(human, *judges), overlap=1, handoff=rule)
    await import_items(session, project, admin, native_items(1))
    return project, judges, human


async def fresh_item(session: AsyncSession, project: Project) -> Item:
    query = select(Item).where(Item.project_id == project.id).execution_options(populate_existing=True)
    item = await session.scalar(query)
    assert item is not None
    return item


class TestTwoModelsFinishOneItem:
    async def test_exactly_one_routes_it(
        self, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
    ) -> None:
        project, judges, _ = await project_with_models(session, RULE, 2)
        leases = []
        for judge in judges:
            leased = await service.next_assignment(session, project=project, rater=judge)
            assert leased is not None
            leases.append(leased)
        await session.commit()
        first = min(leases[0].candidates, key=lambda c: c.position).id  # both prefer the same candidate
        holder = Holder(engine)
        await holder.hold("SELECT 1 FROM items WHERE id = :id FOR NO KEY UPDATE", id=leases[0].item.id)

        async def submit(judge: User, leased: service.Leased) -> None:
            async with sessionmaker() as own:
                data = JudgmentCreate(choice=first, confidence=0.95)
                await service.submit(own, assignment_id=leased.assignment.id, rater=judge, data=data)
                await own.commit()

        tasks = [asyncio.create_task(submit(j, x)) for j, x in zip(judges, leases, strict=True)]
        await until(lambda: _waiting(engine, 2), what="both verdicts waiting for the item")
        await holder.release()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        item = await fresh_item(session, project)
        # Routed once: a second routing would have counted the aggregate revision up again.
        assert (item.model_judged, item.leased, item.judged) == (2, 0, 0)
        assert (item.label_source, item.aggregate_revision) == ("model", 1)
        counted = await session.scalar(select(Judgment.id).where(Judgment.item_id == item.id, Judgment.surplus))
        assert counted is None


async def _waiting(engine: AsyncEngine, n: int) -> bool:
    return await lock_waits(engine) >= n


class TestTwoModelsPickOneSlot:
    async def test_one_gets_it_and_the_other_is_not_made_to_wait(
        self, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
    ) -> None:
        project, (a, b), _ = await project_with_models(session, {**RULE, "min_judges": 1}, 2)
        async with sessionmaker() as first, sessionmaker() as second:
            got_a = await service.next_assignment(first, project=await first.get_one(Project, project.id), rater=a)
            # `a` holds the item's lock (uncommitted pick): `b` passes it over instead of waiting.
            got_b = await asyncio.wait_for(
                service.next_assignment(second, project=await second.get_one(Project, project.id), rater=b), timeout=10
            )
            await first.commit()
            await second.commit()
        assert got_a is not None
        assert got_b is None


class TestHumanPickRacesTheOpening:
    async def test_the_pick_never_waits_and_sees_the_item_once_committed(
        self,
        client: httpx.AsyncClient,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        session: AsyncSession,
    ) -> None:
        project, (judge,), human = await project_with_models(session, {**RULE, "min_judges": 1}, 1)
        token = await create_token(session, human)
        async with sessionmaker() as model_tx:
            own_project = await model_tx.get_one(Project, project.id)
            leased = await service.next_assignment(model_tx, project=own_project, rater=judge)
            assert leased is not None
            await model_tx.commit()
            data = JudgmentCreate(choice=leased.candidates[0].id, confidence=0.51)  # unsure: opens to humans
            await service.submit(model_tx, assignment_id=leased.assignment.id, rater=judge, data=data)
            # The opening is written, the item locked, nothing committed: a human's pick must not wait.
            response = await asyncio.wait_for(next_item(client, project, token), timeout=10)
            assert response.status_code == 204
            await model_tx.commit()
        response = await next_item(client, project, token)
        assert response.status_code == 200
        assert response.json()["item"]["id"] == str(leased.item.id)


class TestTurningTheRuleOffRacesAVerdict:
    """The settings change takes project → items (id order); a model's verdict membership → assignment → item."""

    async def _setup(self, session: AsyncSession) -> tuple[Project, User, service.Leased]:
        project, (judge,), _ = await project_with_models(session, {**RULE, "min_judges": 1}, 1)
        leased = await service.next_assignment(session, project=project, rater=judge)
        assert leased is not None
        await session.commit()
        return project, judge, leased

    async def _turn_off(self, sessionmaker: async_sessionmaker[AsyncSession], project: Project) -> None:
        from server.projects import service as projects
        from server.projects.schemas import ProjectUpdate

        async with sessionmaker() as own:
            mine = await own.get_one(Project, project.id)
            admin = await own.get_one(User, mine.created_by_id)
            await projects.update_project(own, mine, ProjectUpdate.model_validate({"handoff": None}), actor=admin)
            await own.commit()

    async def test_the_verdict_first_resolves_and_the_change_leaves_it(
        self, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
    ) -> None:
        project, judge, leased = await self._setup(session)
        async with sessionmaker() as verdict:
            data = JudgmentCreate(choice=leased.candidates[0].id, confidence=0.99)
            await service.submit(verdict, assignment_id=leased.assignment.id, rater=judge, data=data)
            change = asyncio.create_task(self._turn_off(sessionmaker, project))
            await until(lambda: _waiting(engine, 1), what="the settings change waiting for the item")
            await verdict.commit()
        await asyncio.wait_for(change, timeout=30)
        item = await fresh_item(session, project)
        assert (item.label_source, item.awaiting_models, item.handoff_reason) == ("model", True, None)

    async def test_the_change_first_opens_it_and_the_verdict_is_surplus(
        self, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
    ) -> None:
        project, judge, leased = await self._setup(session)
        holder = Holder(engine)  # the settings change, stopped after it locked the items
        await holder.hold("SELECT 1 FROM projects WHERE id = :id FOR NO KEY UPDATE", id=project.id)
        change = asyncio.create_task(self._turn_off(sessionmaker, project))
        await until(lambda: _waiting(engine, 1), what="the change waiting for the project")
        await holder.release()
        await asyncio.wait_for(change, timeout=30)

        async def submit() -> None:
            async with sessionmaker() as own:
                data = JudgmentCreate(choice=leased.candidates[0].id, confidence=0.99)
                await service.submit(own, assignment_id=leased.assignment.id, rater=judge, data=data)
                await own.commit()

        await asyncio.wait_for(submit(), timeout=30)
        item = await fresh_item(session, project)
        assert (item.label_source, item.awaiting_models, item.model_judged, item.leased) == (None, False, 0, 0)
        stored = await session.scalar(select(Judgment).where(Judgment.item_id == item.id))
        assert stored is not None
        assert stored.surplus_reason == "filled"

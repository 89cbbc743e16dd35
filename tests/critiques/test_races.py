"""Two posts of critiques (or plants of flaws) to one item at once: the item row serialises them, so
together they cannot pass the per-item (per-response) limit (two real connections; the second
waits for the first)."""

import asyncio
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.critiques import planted, service
from server.critiques.schemas import CritiqueCreate, PlantedCreate, PlantedForCandidate
from server.errors import Invalid
from server.labeling import revisions
from server.labeling.schemas import JudgmentCreate
from server.models import Candidate, Critique, CritiqueRating, Item, PlantedFlaw, User
from tests.critiques.test_api import judge, lease
from tests.labeling.race import lock_waits, until


async def test_concurrent_posts_respect_the_item_limit(
    make_setup, session: AsyncSession, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await make_setup(n_items=1)
    item = (await session.scalars(select(Item))).one()
    candidate = (await session.scalars(select(Candidate).where(Candidate.position == 0))).one()
    batch = [CritiqueCreate(candidate_id=candidate.id, text="t", author="m")] * 50

    async def second_is_waiting() -> bool:
        return await lock_waits(engine) > 0

    async with sessionmaker() as first, sessionmaker() as second:
        await service.add(first, item=await first.get_one(Item, item.id), data=batch)  # holds the item row
        waiting = asyncio.create_task(service.add(second, item=await second.get_one(Item, item.id), data=batch))
        await until(second_is_waiting, what="the second post waiting for the item row")
        assert not waiting.done()
        await first.commit()
        with pytest.raises(Invalid) as refused:
            await waiting
        assert refused.value.message.startswith(f"Item {item.id} has 51 critiques; with 50 more")
        await second.rollback()
    assert await session.scalar(select(func.count()).select_from(Critique)) == 51


async def test_concurrent_plants_respect_the_per_response_limit(
    make_setup, session: AsyncSession, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A page's plant waits for a PUT of the same item (the item row), then counts what the PUT left."""
    s = await make_setup(n_items=1)
    item = (await session.scalars(select(Item))).one()
    candidate = (await session.scalars(select(Candidate).where(Candidate.position == 0))).one()
    full = [PlantedForCandidate(candidate_id=candidate.id, planted=[PlantedCreate(span=[0, 3], description="d")] * 20)]

    async def second_is_waiting() -> bool:
        return await lock_waits(engine) > 0

    async with sessionmaker() as first, sessionmaker() as second:
        actor = await first.get_one(User, s.admin.id)
        await planted.replace(first, item=await first.get_one(Item, item.id), data=full, actor=actor)
        waiting = asyncio.create_task(
            planted.add(
                second,
                item=await second.get_one(Item, item.id),
                candidate_id=candidate.id,
                span=[0, 3],
                message=None,
                description="one more",
                actor=await second.get_one(User, s.admin.id),
            )
        )
        await until(second_is_waiting, what="the plant waiting for the item row")
        assert not waiting.done()
        await first.commit()
        with pytest.raises(Invalid) as refused:
            await waiting
        assert refused.value.message == (
            "Response #1 already has 20 planted flaws, the most a response may have; remove one first."
        )
        await second.rollback()
    assert await session.scalar(select(func.count()).select_from(PlantedFlaw)) == 20


async def test_a_rating_racing_its_critiques_withdrawal(
    client, make_setup, session: AsyncSession, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Rater B rates rater A's critique while A's revision takes it back (uncommitted). B's submit waits for
    the critique row before any item lock, then leaves the withdrawn rating out: 201. Before, it checked the
    critique without a lock, took the item, and its rating's foreign key failed once A committed: a 500."""
    s = await make_setup(n_items=1, n_raters=2, overlap=2, assistance="always", revision_window_minutes=30)
    first = await lease(client, s, 0)
    cand = first["item"]["candidates"][0]["id"]
    judged = await judge(client, s.tokens[0], first, critiques=[{"candidate_id": cand, "text": "Mine."}])
    assert judged.status_code == 201, judged.text
    second = await lease(client, s, 1)
    ratings = [{"critique_id": c["id"], "verdict": "valid", "helpful": True} for c in second["assistance"]["critiques"]]
    assert len(ratings) == 2  # the imported critique and A's
    async with sessionmaker() as author:
        await revisions.revise(
            author,
            judgment_id=uuid.UUID(judged.json()["id"]),
            rater=await author.get_one(User, s.raters[0].id),
            data=JudgmentCreate(choice=uuid.UUID(cand)),  # no critiques: A takes theirs back
        )
        rating = asyncio.create_task(judge(client, s.tokens[1], second, critique_ratings=ratings))

        async def b_waits() -> bool:
            return await lock_waits(engine) > 0

        await until(b_waits, what="B's submit waiting for A's revision")
        assert not rating.done()
        await author.commit()
    response = await rating
    assert response.status_code == 201, response.text
    stored = await session.scalars(
        select(CritiqueRating.critique_id).where(CritiqueRating.judgment_id == uuid.UUID(response.json()["id"]))
    )
    (mine,) = [c["id"] for c in second["assistance"]["critiques"] if c["text"] == "Mine."]
    assert [str(c) for c in stored] == [r["critique_id"] for r in ratings if r["critique_id"] != mine]

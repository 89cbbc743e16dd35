"""Scores posted while raters work: neither side waits on the other for long, fails, or loses anything."""

import asyncio
import random

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Item, ItemScore, Judgment, Role, Scope
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items
from tests.labeling.test_concurrency import rater_loop

RATERS, ITEMS, OVERLAP, POSTS = 12, 120, 2, 8


async def test_scores_and_judgments_race_without_errors(client: httpx.AsyncClient, session: AsyncSession) -> None:
    admin = await create_user(session, role=Role.admin)
    trainer = await create_user(session, role=Role.trainer)
    raters = [await create_user(session) for _ in range(RATERS)]
    project = await create_project(session, admin, members=(trainer, *raters), overlap=OVERLAP, active_learning=True)
    await import_items(session, project, admin, native_items(ITEMS))
    item_ids = [str(i) for i in await session.scalars(select(Item.id).where(Item.project_id == project.id))]
    token = await create_token(session, trainer, Scope.reward_models_write)
    tokens = [await create_token(session, r) for r in raters]
    base = f"/api/v1/projects/{project.id}"
    for version in range(1, POSTS + 1):
        body = {
            "features": "f",
            "cursor_to": f"c{version}",
            "metrics": {"accuracy": 0.6, "log_loss": 0.6, "n_pairs": 1, "training_seconds": 0.1},
        }
        assert (await client.post(f"{base}/reward-models", json=body, headers=bearer(token))).status_code == 201

    posted: list[int] = []

    async def trainer_loop() -> None:
        rng = random.Random(7)
        for version in range(1, POSTS + 1):
            scores = [{"item_id": i, "p": round(rng.random(), 3)} for i in item_ids]
            response = await client.post(
                f"{base}/reward-models/{version}/scores", json={"scores": scores}, headers=bearer(token)
            )
            posted.append(response.status_code)
            await asyncio.sleep(0)

    accepted: list[str] = []
    errors: list[int] = []
    await asyncio.gather(trainer_loop(), *(rater_loop(client, str(project.id), t, accepted, errors) for t in tokens))
    assert errors == []
    assert posted == [200] * POSTS
    assert len(accepted) == ITEMS * OVERLAP
    assert await session.scalar(select(func.count()).select_from(Judgment)) == ITEMS * OVERLAP
    # Every item carries the last model's score, whatever order the posts and judgments interleaved in.
    versions = set(await session.scalars(select(ItemScore.model_version)))
    assert versions == {POSTS}

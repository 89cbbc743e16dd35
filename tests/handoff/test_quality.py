"""A model judge on the quality pages: its agreement with the humans is tracked, it is marked as a
model, its verdicts never sway the humans' agreement, and flags stay for humans."""

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Project, Role, User
from server.quality.reliability import reliability
from tests.factories import bearer, create_model, create_project, create_token, create_user, import_items, native_items
from tests.factories import next_item as lease

ALWAYS_HUMANS = {"min_confidence": 0.8, "min_judges": 1, "spot_check_rate": 1.0}  # every item is spot-checked


async def judge_all(client: httpx.AsyncClient, project: Project, token: str, *, position: int, **extra: object) -> int:
    done = 0
    while (response := await lease(client, project, token)).status_code == 200:
        a = response.json()
        by_position = sorted(a["item"]["candidates"], key=lambda c: c["text"])  # native_items: texts in upload order
        body = {"choice": by_position[position]["id"], "active_ms": 20_000, **extra}
        answer = await client.post(f"/api/v1/assignments/{a['id']}/judgment", json=body, headers=bearer(token))
        assert answer.status_code == 201, answer.text
        done += 1
    return done


class TestModelOnTheQualityPage:
    async def test_tracked_against_humans_marked_and_never_flagged(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        humans: list[User] = [await create_user(session) for _ in range(2)]
        model = await create_model(session)
        project = await create_project(session, admin, members=(*humans, model), overlap=2, handoff=ALWAYS_HUMANS)
        await import_items(session, project, admin, native_items(30))
        # The model always contradicts the humans, and is sure of it: a human doing that would be flagged.
        assert await judge_all(client, project, await create_token(session, model), position=1, confidence=0.99) == 30
        for human in humans:
            assert await judge_all(client, project, await create_token(session, human), position=0) == 30
        figures = await reliability(session, project, fresh=True)
        by_id = {r["user_id"]: r for r in figures["raters"]}
        judge = by_id[str(model.id)]
        assert (judge["human"], judge["judgments"], judge["agreement"], judge["flags"]) == (False, 30, 0.0, [])
        for human in humans:  # compared with the other human only: the model's dissent does not count
            assert by_id[str(human.id)]["agreement"] == 1.0

"""Reward models and scores over the API: versions, idempotent reports, scores → priority, refusals."""

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Item, ItemScore, Project, Role, Scope
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items, next_item

METRICS = {"accuracy": 0.61, "log_loss": 0.66, "n_pairs": 120, "training_seconds": 1.5, "n_judgments": 130}


def report_body(cursor_to: str = "c1", **overrides: Any) -> dict[str, Any]:
    return {
        "features": "hashed-char-ngrams-2-4-2^18",
        "cursor_to": cursor_to,
        "metrics": METRICS,
        "artefact_path": "/data/models/reward-model-0123.npz",
        "artefact_sha256": "ab" * 32,
    } | overrides


class Setup:
    def __init__(self, project: Project, admin: str, rater: str, trainer: str, items: list[uuid.UUID]) -> None:
        self.project, self.admin, self.rater, self.trainer, self.items = project, admin, rater, trainer, items

    @property
    def base(self) -> str:
        return f"/api/v1/projects/{self.project.id}"


async def setup(session: AsyncSession, n: int = 5, **settings: Any) -> Setup:
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    trainer = await create_user(session, role=Role.trainer)
    project = await create_project(session, admin, members=(rater, trainer), **settings)
    await import_items(session, project, admin, native_items(n))
    items = list(await session.scalars(select(Item.id).where(Item.project_id == project.id).order_by(Item.seq)))
    return Setup(
        project,
        await create_token(session, admin),
        await create_token(session, rater),
        await create_token(session, trainer, Scope.export_read, Scope.reward_models_write),
        items,
    )


async def report(client: httpx.AsyncClient, s: Setup, cursor_to: str = "c1") -> httpx.Response:
    return await client.post(f"{s.base}/reward-models", json=report_body(cursor_to), headers=bearer(s.trainer))


async def post_scores(
    client: httpx.AsyncClient, s: Setup, version: int, scores: list[dict[str, Any]]
) -> httpx.Response:
    return await client.post(
        f"{s.base}/reward-models/{version}/scores", json={"scores": scores}, headers=bearer(s.trainer)
    )


class TestReportModel:
    async def test_versions_count_up_and_are_listed_with_metrics(self, client, session) -> None:
        s = await setup(session)
        first = await report(client, s, "c1")
        second = await report(client, s, "c2")
        assert (first.status_code, second.status_code) == (201, 201)
        assert (first.json()["version"], second.json()["version"]) == (1, 2)
        listed = (await client.get(f"{s.base}/reward-models", headers=bearer(s.admin))).json()
        assert [m["version"] for m in listed] == [1, 2]
        assert listed[0]["metrics"] == METRICS
        assert listed[0]["cursor_to"] == "c1"
        assert listed[0]["artefact_sha256"] == "ab" * 32
        one = await client.get(f"{s.base}/reward-models/2", headers=bearer(s.admin))
        assert one.json()["id"] == second.json()["id"]

    async def test_the_same_run_reported_twice_keeps_its_version(self, client, session) -> None:
        s = await setup(session)
        first = await report(client, s, "c1")
        again = await report(client, s, "c1")
        assert again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        assert len((await client.get(f"{s.base}/reward-models", headers=bearer(s.admin))).json()) == 1

    async def test_token_without_the_scope_is_refused(self, client, session) -> None:
        s = await setup(session)
        trainer = await create_user(session, role=Role.trainer)
        from server.projects import service as projects

        await projects.add_member(session, s.project, trainer.id, actor=trainer)
        await session.commit()
        export_only = await create_token(session, trainer, Scope.export_read)
        response = await client.post(f"{s.base}/reward-models", json=report_body(), headers=bearer(export_only))
        assert response.status_code == 403
        assert response.json()["detail"] == (
            "This API token lacks the 'reward_models:write' scope; create a token that has it."
        )

    async def test_rater_cannot_report(self, client, session) -> None:
        s = await setup(session)
        response = await client.post(f"{s.base}/reward-models", json=report_body(), headers=bearer(s.rater))
        assert response.status_code == 403
        assert response.json()["detail"] == (
            "This needs the 'reward_models:write' scope, which a rater account cannot have."
        )

    async def test_unshared_project_is_invisible(self, client, session) -> None:
        s = await setup(session)
        outsider = await create_user(session, role=Role.trainer)
        token = await create_token(session, outsider, Scope.reward_models_write)
        response = await client.post(f"{s.base}/reward-models", json=report_body(), headers=bearer(token))
        assert response.status_code == 404
        assert response.json()["detail"] == f"No project with id {s.project.id} is shared with you."

    async def test_unknown_version(self, client, session) -> None:
        s = await setup(session)
        response = await client.get(f"{s.base}/reward-models/7", headers=bearer(s.admin))
        assert response.status_code == 404
        assert response.json()["detail"] == "Project 'Test project' has no reward model version 7."


class TestScores:
    async def test_without_active_learning_scores_are_stored_and_priority_untouched(self, client, session) -> None:
        s = await setup(session)
        await report(client, s)
        response = await post_scores(client, s, 1, [{"item_id": str(s.items[0]), "p": 0.52}])
        assert response.status_code == 200, response.text
        assert response.json() == {"model_version": 1, "scored": 1, "prioritised": 0, "active_learning": False}
        item = await session.get_one(Item, s.items[0])
        assert (item.priority, item.priority_reason) == (0.0, None)
        score = await session.get_one(ItemScore, s.items[0])
        assert (score.p, score.model_version) == (0.52, 1)
        assert score.uncertainty == pytest.approx(0.96)

    async def test_with_active_learning_uncertainty_becomes_priority(self, client, session) -> None:
        s = await setup(session, active_learning=True)
        await report(client, s)
        scores = [{"item_id": str(s.items[0]), "p": 0.52}, {"item_id": str(s.items[1]), "p": 0.1, "uncertainty": 0.7}]
        response = await post_scores(client, s, 1, scores)
        assert response.json()["prioritised"] == 2
        first, second = [await session.get_one(Item, i) for i in s.items[:2]]
        assert first.priority == pytest.approx(0.96)
        assert first.priority_reason == "uncertain: p=0.52 (model v1)"
        assert second.priority == pytest.approx(0.7)
        assert second.priority_reason == "uncertain: p=0.10 (model v1)"

    async def test_next_item_served_is_the_most_uncertain(self, client, session) -> None:
        s = await setup(session, active_learning=True)
        await report(client, s)
        ps = [0.9, 0.1, 0.51, 0.7, 0.97]
        await post_scores(client, s, 1, [{"item_id": str(i), "p": p} for i, p in zip(s.items, ps, strict=True)])
        served = (await next_item(client, s.project, s.rater)).json()["item"]["id"]
        assert served == str(s.items[2])  # p=0.51, the closest to a coin flip
        queue = (await client.get(f"{s.base}/queue", headers=bearer(s.admin))).json()
        # The leased item has left the queue; the rest follow uncertainty, import order breaking ties.
        assert [q["id"] for q in queue] == [str(s.items[i]) for i in (3, 0, 1, 4)]
        assert queue[0]["priority_reason"] == "uncertain: p=0.70 (model v1)"
        assert queue[0]["model_version"] == 1

    async def test_unknown_item_ids_are_refused_whole(self, client, session) -> None:
        s = await setup(session, active_learning=True)
        other = await setup(session)
        await report(client, s)
        stranger, missing = other.items[0], uuid.uuid4()
        scores = [{"item_id": str(s.items[0]), "p": 0.5}, {"item_id": str(stranger), "p": 0.5}]
        response = await post_scores(client, s, 1, [*scores, {"item_id": str(missing), "p": 0.5}])
        assert response.status_code == 422
        assert response.json()["detail"] == (
            f"2 item id(s) are not items of project 'Test project': {stranger}, {missing}."
        )
        assert await session.get(ItemScore, s.items[0]) is None  # nothing stored
        assert (await session.get_one(Item, s.items[0])).priority == 0.0

    @pytest.mark.parametrize(
        ("score", "message"),
        [
            ({"p": 1.2}, "scores[1].p is 1.2; a probability must lie between 0 and 1."),
            ({"p": -0.01}, "scores[1].p is -0.01; a probability must lie between 0 and 1."),
            (
                {"p": 0.5, "uncertainty": 2},
                "scores[1].uncertainty is 2.0; it must lie between 0 (sure) and 1 (no idea).",
            ),
        ],
    )
    async def test_values_outside_0_1_are_refused(self, client, session, score, message) -> None:
        s = await setup(session)
        await report(client, s)
        scores = [{"item_id": str(s.items[0]), "p": 0.5}, {"item_id": str(s.items[1]), **score}]
        response = await post_scores(client, s, 1, scores)
        assert response.status_code == 422
        assert response.json()["detail"] == message

    async def test_an_item_twice_is_refused(self, client, session) -> None:
        s = await setup(session)
        await report(client, s)
        response = await post_scores(client, s, 1, [{"item_id": str(s.items[0]), "p": 0.5}] * 2)
        assert response.status_code == 422
        assert response.json()["detail"] == f"scores[1] repeats item {s.items[0]}; send one score per item."

    async def test_an_older_model_never_overrides_a_newer_one(self, client, session) -> None:
        s = await setup(session, active_learning=True)
        await report(client, s, "c1")
        await report(client, s, "c2")
        await post_scores(client, s, 2, [{"item_id": str(s.items[0]), "p": 0.8}])
        late = await post_scores(client, s, 1, [{"item_id": str(s.items[0]), "p": 0.5}])
        assert late.json()["prioritised"] == 0
        score = await session.get_one(ItemScore, s.items[0])
        assert (score.model_version, score.p) == (2, 0.8)
        assert (await session.get_one(Item, s.items[0])).priority_reason == "uncertain: p=0.80 (model v2)"

    async def test_switching_active_learning_applies_then_clears_stored_scores(self, client, session) -> None:
        s = await setup(session)
        await report(client, s)
        await post_scores(client, s, 1, [{"item_id": str(s.items[3]), "p": 0.45}])
        switch = f"/api/v1/projects/{s.project.id}"
        await client.patch(switch, json={"active_learning": True}, headers=bearer(s.admin))
        item = await session.get_one(Item, s.items[3])
        assert (item.priority, item.priority_reason) == (pytest.approx(0.9), "uncertain: p=0.45 (model v1)")
        await client.patch(switch, json={"active_learning": False}, headers=bearer(s.admin))
        await session.refresh(item)
        assert (item.priority, item.priority_reason) == (0.0, None)

    async def test_scores_for_an_unknown_version(self, client, session) -> None:
        s = await setup(session)
        response = await post_scores(client, s, 3, [{"item_id": str(s.items[0]), "p": 0.5}])
        assert response.status_code == 404
        assert response.json()["detail"] == "Project 'Test project' has no reward model version 3."


class TestOpenItems:
    async def test_pages_cover_every_open_item_once(self, client, session) -> None:
        s = await setup(session, n=7)
        done = (await next_item(client, s.project, s.rater)).json()
        await client.post(
            f"/api/v1/assignments/{done['id']}/judgment",
            json={"choice": done["item"]["candidates"][0]["id"]},
            headers=bearer(s.rater),
        )
        leased = (await next_item(client, s.project, s.rater)).json()  # a leased item is still open
        seen: list[dict[str, Any]] = []
        after = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 3} | ({"after": after} if after else {})
            page = (await client.get(f"{s.base}/open-items", params=params, headers=bearer(s.trainer))).json()
            seen += page["items"]
            pages += 1
            after = page["next_cursor"]
            if after is None:
                break
        ids = [i["id"] for i in seen]
        assert len(ids) == len(set(ids)) == 6
        assert done["item"]["id"] not in ids  # completed (overlap 1)
        assert leased["item"]["id"] in ids
        assert pages == 2
        assert set(seen[0]) == {"id", "prompt", "candidates"}
        assert [c["text"][:8] for c in seen[0]["candidates"]] == ["Answer 0", "Answer 1"]  # upload order

    async def test_bad_cursor(self, client, session) -> None:
        s = await setup(session)
        response = await client.get(f"{s.base}/open-items", params={"after": "nope"}, headers=bearer(s.trainer))
        assert response.status_code == 422
        assert (
            response.json()["detail"] == "after is not an open-items cursor; pass the next_cursor of the previous page."
        )

    async def test_raters_cannot_read_open_items(self, client, session) -> None:
        s = await setup(session)
        response = await client.get(f"{s.base}/open-items", headers=bearer(s.rater))
        assert response.status_code == 403

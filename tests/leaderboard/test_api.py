"""The leaderboard over JSON: the battles the query gathers, the ratings, the matrix, the cache, and refusals."""

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.leaderboard import service
from server.models import QualitySnapshot, Role, Scope, User
from server.quality.leaderboard import Battles, leaderboard
from tests.factories import bearer, create_project, create_token, create_user, import_items
from tests.leaderboard.battles import Verdict, item, judge_all

# Models A, B, C; by positions in upload order. What each item should give, per judgment:
ITEMS = [
    item("p1", "A", "B"),  # A chosen: A beats B
    item("p2", "B", "A"),  # A chosen (second position): A beats B
    item("p3", "A", "C"),  # tie: half a win each
    item("p4", "A", "B"),  # both bad: left out
    item("r1", "A", "B", "C"),  # ranking C, A, B: C beats A, C beats B, A beats B
    item("t1", "A", "B", "C"),  # a tie of three: a half win for each pair
    item("u1", "A", None),  # an unlabelled response: left out
    item("s1", "A", "A"),  # a model against itself: left out
    item("r2", "A", None, "B"),  # ranking unlabelled, B, A: only B beats A counts
    item("p5", "B", "C"),  # B beats C
]
VERDICTS: dict[str, Verdict] = {
    "p1": ("choose", 0),
    "p2": ("choose", 1),
    "p3": ("tie",),
    "p4": ("both_bad",),
    "r1": ("rank", [2, 0, 1]),
    "t1": ("tie",),
    "u1": ("choose", 0),
    "s1": ("choose", 1),
    "r2": ("rank", [1, 2, 0]),
    "p5": ("choose", 0),
}
# (model a, model b, a's score, battles) per rater
EXPECTED = [
    ("A", "B", 0.0, 1),
    ("A", "B", 0.5, 1),
    ("A", "B", 1.0, 3),
    ("A", "C", 0.0, 1),
    ("A", "C", 0.5, 2),
    ("B", "C", 0.0, 1),
    ("B", "C", 0.5, 1),
    ("B", "C", 1.0, 1),
]
KEYS = ["model", "rating", "ci_low", "ci_high", "battles", "win_rate"]


async def _judged_project(session: AsyncSession, records: list[dict[str, object]], raters: int = 2):  # type: ignore[no-untyped-def]
    admin = await create_user(session, role=Role.admin)
    people = [await create_user(session) for _ in range(raters)]
    project = await create_project(
        session, admin, members=tuple(people), overlap=max(raters, 1), allow_tie=True, allow_both_bad=True
    )
    await import_items(session, project, admin, records)
    for rater in people:
        await judge_all(session, project, rater, VERDICTS)
    return project, admin, people


def _url(project_id: uuid.UUID, tail: str = "") -> str:
    return f"/api/v1/projects/{project_id}/leaderboard{tail}"


class TestBattles:
    async def test_each_kind_of_verdict_gives_its_battles(self, session: AsyncSession) -> None:
        project, _, _ = await _judged_project(session, ITEMS)
        battles = await service.battles(session, project)
        rows = [
            (battles.models[a], battles.models[b], float(s), int(n))
            for a, b, s, n in zip(battles.a, battles.b, battles.score, battles.count, strict=True)
        ]
        assert rows == [(a, b, s, 2 * n) for a, b, s, n in EXPECTED]  # two raters gave the same verdicts


class TestLeaderboard:
    async def test_ratings_best_first(self, client, session: AsyncSession) -> None:
        project, admin, _ = await _judged_project(session, ITEMS)
        token = await create_token(session, admin, Scope.admin)
        response = await client.get(_url(project.id), headers=bearer(token))
        assert response.status_code == 200, response.text
        body = response.json()
        expected = leaderboard(Battles.from_rows((a, b, s, 2 * n) for a, b, s, n in EXPECTED))
        assert [list(r) for r in body] == [KEYS] * 3
        assert [r["model"] for r in body] == [r.model for r in expected.ratings]
        assert [r["rating"] for r in body] == pytest.approx([r.rating for r in expected.ratings])
        assert [r["ci_low"] for r in body] == pytest.approx([r.ci_low for r in expected.ratings])
        assert [r["ci_high"] for r in body] == pytest.approx([r.ci_high for r in expected.ratings])
        assert {r["model"]: r["battles"] for r in body} == {"A": 16, "B": 16, "C": 12}
        assert {r["model"]: r["win_rate"] for r in body} == pytest.approx({"A": 9 / 16, "B": 6 / 16, "C": 7 / 12})
        assert body[0]["rating"] >= body[1]["rating"] >= body[2]["rating"]

    async def test_the_matrix_in_the_same_order(self, client, session: AsyncSession) -> None:
        project, admin, _ = await _judged_project(session, ITEMS)
        token = await create_token(session, admin, Scope.admin)
        ratings = (await client.get(_url(project.id), headers=bearer(token))).json()
        body = (await client.get(_url(project.id, "/matrix"), headers=bearer(token))).json()
        assert body["models"] == [r["model"] for r in ratings]
        at = {m: i for i, m in enumerate(body["models"])}
        assert body["win_rate"][at["A"]][at["B"]] == pytest.approx(7 / 10)  # 6 wins and 2 ties of 10
        assert body["win_rate"][at["B"]][at["A"]] == pytest.approx(3 / 10)
        assert body["win_rate"][at["C"]][at["C"]] is None
        assert body["battles"][at["A"]][at["C"]] == body["battles"][at["C"]][at["A"]] == 6
        assert (body["total_battles"], body["bootstrap"], body["pseudo_wins"]) == (22, 200, 0.1)
        assert body["empty_reason"] is None

    async def test_computed_once_per_data_version(self, client, session: AsyncSession) -> None:
        project, admin, raters = await _judged_project(session, ITEMS)
        token = await create_token(session, admin, Scope.admin)
        first = (await client.get(_url(project.id, "/matrix"), headers=bearer(token))).json()
        snapshot = await session.scalar(
            select(QualitySnapshot).where(
                QualitySnapshot.project_id == project.id, QualitySnapshot.name == "leaderboard"
            )
        )
        assert snapshot is not None
        assert snapshot.data_version == first["data_version"]
        computed_at = snapshot.computed_at
        again = (await client.get(_url(project.id, "/matrix"), headers=bearer(token))).json()
        assert again == first
        await session.refresh(snapshot)
        assert snapshot.computed_at == computed_at  # read, not recomputed

        await import_items(session, project, admin, [item("p6", "C", "A")])
        await judge_all(session, project, raters[0], {"p6": ("choose", 0)})
        after = (await client.get(_url(project.id, "/matrix?fresh=true"), headers=bearer(token))).json()
        assert after["data_version"] != first["data_version"]
        assert after["current"]
        assert after["total_battles"] == first["total_battles"] + 1


class TestEmpty:
    async def _matrix(
        self, client, session: AsyncSession, project, admin: User
    ) -> tuple[list[object], dict[str, object]]:  # type: ignore[no-untyped-def]
        token = await create_token(session, admin, Scope.admin)
        ratings = (await client.get(_url(project.id), headers=bearer(token))).json()
        return ratings, (await client.get(_url(project.id, "/matrix"), headers=bearer(token))).json()

    async def test_no_model_labels(self, client, session: AsyncSession) -> None:
        records = [item("p1", None, None), item("p2", None, None)]
        project, admin, _ = await _judged_project(session, records, raters=1)
        ratings, matrix = await self._matrix(client, session, project, admin)
        assert ratings == []
        assert (matrix["models"], matrix["total_battles"]) == ([], 0)
        assert matrix["empty_reason"] == (
            "No response in this project carries a model label, so there are no models to rank. "
            'Import responses with a "model" field (for example "model": "gpt-4o") to get a leaderboard.'
        )

    async def test_one_model(self, client, session: AsyncSession) -> None:
        project, admin, _ = await _judged_project(session, [item("s1", "A", "A"), item("u1", "A", None)], raters=1)
        ratings, matrix = await self._matrix(client, session, project, admin)
        assert ratings == []
        assert matrix["empty_reason"] == (
            "Every labelled response in this project comes from one model (A): a leaderboard needs "
            "judgments between responses of two different models."
        )

    async def test_no_judgments_yet(self, client, session: AsyncSession) -> None:
        project, admin, _ = await _judged_project(session, [item("p1", "A", "B")], raters=0)
        ratings, matrix = await self._matrix(client, session, project, admin)
        assert ratings == []
        assert matrix["empty_reason"] == (
            "No judgment compares responses of two different models yet (both-bad verdicts are left out); "
            "the leaderboard fills in as raters judge."
        )


class TestRefusals:
    @pytest.mark.parametrize("tail", ["", "/matrix"])
    async def test_a_rater_is_refused(self, client, session: AsyncSession, tail: str) -> None:
        project, _, raters = await _judged_project(session, [item("p1", "A", "B")], raters=1)
        token = await create_token(session, raters[0], Scope.judgments_write)
        response = await client.get(_url(project.id, tail), headers=bearer(token))
        assert (response.status_code, response.json()["detail"]) == (403, "Only admins can do this.")

    @pytest.mark.parametrize("tail", ["", "/matrix"])
    async def test_an_unknown_project_is_not_found(self, client, session: AsyncSession, tail: str) -> None:
        admin = await create_user(session, role=Role.admin)
        token = await create_token(session, admin, Scope.admin)
        missing = uuid.uuid4()
        response = await client.get(_url(missing, tail), headers=bearer(token))
        assert (response.status_code, response.json()["detail"]) == (
            404,
            f"No project with id {missing} is shared with you.",
        )

    async def test_no_token(self, client) -> None:
        response = await client.get(_url(uuid.uuid4()))
        assert response.status_code == 401

"""The hand-off report's threshold curve and suggestion over the API (`savings`, `budget`) and on the quality page."""

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.handoff import service, threshold
from server.models import QualitySnapshot, Role, Scope
from server.quality.cache import refreshes_done
from tests.factories import (
    PASSWORD,
    bearer,
    create_model,
    create_project,
    create_token,
    create_user,
    import_items,
    native_items,
)
from tests.factories import next_item as lease
from tests.handoff.test_report import reported  # noqa: F401 - a fixture
from tests.web.conftest import page_login
from tests.web.html import parse

N = 8
CONFIDENCES = [0.55, 0.6, 0.65, 0.7, 0.75, 0.85, 0.9, 0.95]


def url(project: Any, query: str = "") -> str:
    return f"/api/v1/projects/{project.id}/handoff-report{query}"


async def judge(client: httpx.AsyncClient, project: Any, token: str, answer: Any) -> None:
    """Judge every item the rater is offered: `answer(item number) -> (candidate index, extra body)`."""
    while (response := await lease(client, project, token)).status_code == 200:
        a = response.json()
        number = int(a["item"]["prompt"].removeprefix("Question number ").rstrip("?"))
        pick, extra = answer(number)
        choice = sorted(a["item"]["candidates"], key=lambda c: c["text"])[pick]["id"]
        posted = await client.post(
            f"/api/v1/assignments/{a['id']}/judgment", json={"choice": choice, **extra}, headers=bearer(token)
        )
        assert posted.status_code == 201, posted.text


@pytest.fixture
async def checked(client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Eight items a model judged at rising confidence, every one handed to two humans (min_confidence 1)."""
    monkeypatch.setattr(threshold, "MIN_VERDICTS", 5)  # a suggestion from eight checked verdicts
    admin = await create_user(session, role=Role.admin)
    model, first, second = await create_model(session), await create_user(session), await create_user(session)
    rule = {"min_confidence": 1.0, "min_judges": 1, "spot_check_rate": 0.1}
    project = await create_project(session, admin, members=(model, first, second), overlap=2, handoff=rule)
    await import_items(session, project, admin, native_items(N))
    # The model is right (candidate 0) from item 3 on; the humans say 0, the second human not on items 0 and 5.
    await judge(
        client, project, await create_token(session, model), lambda i: (int(i < 3), {"confidence": CONFIDENCES[i]})
    )
    await judge(client, project, await create_token(session, first), lambda i: (0, {}))
    await judge(client, project, await create_token(session, second), lambda i: (int(i in (0, 5)), {}))
    return {"project": project, "admin": admin, "token": await create_token(session, admin), "rater": first}


class TestSuggestion:
    async def test_the_curve_the_suggestion_its_cache_and_the_page(
        self, client: httpx.AsyncClient, session: AsyncSession, checked: dict[str, Any]
    ) -> None:
        project, token, email = checked["project"], checked["token"], checked["admin"].email
        project_id = project.id
        r = (await client.get(url(project), headers=bearer(token))).json()
        assert (r["human_resolved"], r["calibration"]["checked_verdicts"]) == (N, N)
        assert r["calibration"]["problem"] is None
        assert len(r["thresholds"]) == len(threshold.GRID)
        by_t = {p["threshold"]: p for p in r["thresholds"]}
        # The human share is exact: below t every item, above it the spot checks (0.1).
        assert by_t[0.8]["human_share"] == pytest.approx(5 / 8 + 0.1 * 3 / 8)
        assert by_t[0.5]["human_share"] == pytest.approx(0.1)
        assert by_t[1.0]["estimated_cost"] == {"estimate": 0.0, "ci": [0.0, 0.0]}
        # The default goals, and the suggestion read off the curve the report carries.
        points = [threshold.Point.of(p) for p in r["thresholds"]]
        expected = threshold.suggest(points, savings=0.4, budget=0.01).as_dict()
        assert r["suggestion"] == expected | {"goal": {"savings": 0.4, "budget": 0.01, "bound": "estimate"}}
        for key in ("model_resolved", "spot_checked", "human_judgments_saved", "spot_check_agreement", "bins"):
            assert key in r  # the report's keys stay

        # Other goals: the same cached curve, not computed again.
        stamp = select(QualitySnapshot.computed_at).where(
            QualitySnapshot.project_id == project.id, QualitySnapshot.name == service.CACHE_NAME
        )
        computed = await session.scalar(stamp)
        response = await client.get(url(project, "?savings=0&budget=0.2&bound=upper"), headers=bearer(token))
        assert response.status_code == 200
        other = response.json()
        assert other["thresholds"] == r["thresholds"]
        assert other["suggestion"]["goal"] == {"savings": 0.0, "budget": 0.2, "bound": "upper"}
        expected = threshold.suggest(points, savings=0.0, budget=0.2, bound="upper").as_dict()
        assert other["suggestion"] == expected | {"goal": other["suggestion"]["goal"]}
        session.expire_all()  # read the snapshot's row again (attributes of ORM objects are not read after this)
        assert await session.scalar(stamp) == computed

        # The quality page says it in words, under the reliability diagram.
        await page_login(client, email, PASSWORD)
        page = await client.get(f"/admin/projects/{project_id}/quality")
        await refreshes_done()
        (p,) = parse(page.text).find_all(id="handoff-suggestion")
        words = " ".join(p.text.split())
        assert "to keep 40% of items from humans within 1 point of accuracy:" in words
        assert r["suggestion"]["reason"] in words
        assert "The threshold in force is 1.0" in words

    async def test_too_little_checked_says_so(self, reported: dict[str, Any]) -> None:  # noqa: F811
        assert reported["report"]["thresholds"] == []
        assert reported["report"]["suggestion"] == {
            "threshold": None,
            "human_share": None,
            "estimated_cost": None,
            "meets": {"savings": False, "budget": False},
            "reason": "No checked item has two human judgments, so the humans' own accuracy is unknown.",
            "goal": {"savings": 0.4, "budget": 0.01, "bound": "estimate"},
        }


@pytest.fixture
async def bare(session: AsyncSession) -> dict[str, Any]:
    """A project with a hand-off rule and nothing in it, its admin and a rater."""
    admin, rater = await create_user(session, role=Role.admin), await create_user(session)
    project = await create_project(session, admin, members=(rater,), handoff={"min_confidence": 0.8})
    return {"project": project, "admin": admin, "rater": rater}


NOT_A_NUMBER = "Input should be a valid number, unable to parse string as a number"


BAD_GOALS = [
    ("?savings=1", "query.savings: Input should be less than or equal to 0.95"),
    ("?savings=-0.1", "query.savings: Input should be greater than or equal to 0"),
    ("?savings=nan", "query.savings: Input should be a finite number"),
    ("?savings=lots", f"query.savings: {NOT_A_NUMBER}"),
    ("?budget=0.5", "query.budget: Input should be less than or equal to 0.2"),
    ("?budget=-1", "query.budget: Input should be greater than or equal to 0"),
    ("?budget=inf", "query.budget: Input should be a finite number"),
    ("?bound=low", "query.bound: Input should be 'estimate' or 'upper'"),
]


class TestRefusals:
    async def test_bad_goals(self, client: httpx.AsyncClient, session: AsyncSession, bare: dict[str, Any]) -> None:
        token = await create_token(session, bare["admin"])
        for query, detail in BAD_GOALS:  # one project for all (accounts are slow to make)
            response = await client.get(url(bare["project"], query), headers=bearer(token))
            assert (response.status_code, response.json()["detail"]) == (422, f"Invalid request: {detail}"), query

    async def test_who_may_ask(self, client: httpx.AsyncClient, session: AsyncSession, bare: dict[str, Any]) -> None:
        project, query = bare["project"], "?savings=0.5&budget=0.02"
        assert (await client.get(url(project, query))).status_code == 401
        rater = await client.get(url(project, query), headers=bearer(await create_token(session, bare["rater"])))
        assert (rater.status_code, rater.json()["detail"]) == (403, "Only admins can do this.")
        export_only = await create_token(session, bare["admin"], Scope.export_read)
        assert (await client.get(url(project, query), headers=bearer(export_only))).status_code == 403
        admin = await create_token(session, bare["admin"])
        unknown = await client.get(f"/api/v1/projects/{uuid.uuid4()}/handoff-report{query}", headers=bearer(admin))
        assert unknown.status_code == 404
        assert (await client.get(url(project, query), headers=bearer(admin))).status_code == 200

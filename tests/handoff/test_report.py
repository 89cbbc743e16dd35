"""The hand-off report: model-resolved items, spot-check agreement and its calibration, with Wilson intervals;
and its reliability diagram on the quality page."""

from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.handoff import service
from server.handoff.report import Checked, agreement, build
from server.models import ProjectMember, QualitySnapshot, Role
from server.quality import cache
from server.quality.cache import data_version, refreshes_done
from server.quality.gold import wilson
from server.web.charts import reliability_chart
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
from tests.web.conftest import page_login
from tests.web.html import parse

A, B = ("a",), ("b",)


class TestAgreement:
    def test_plurality_and_levels(self) -> None:
        assert agreement(A, [A, A, B]) == 1.0
        assert agreement(B, [A, A, B]) == 0.0
        assert agreement(A, [A, B]) == 0.5
        assert agreement(A, []) is None


class TestBuild:
    def test_spot_checks_and_bins(self) -> None:
        checked = [
            Checked(spot_check=True, models=[(A, 0.95)], humans=[A, A]),
            Checked(spot_check=True, models=[(A, 0.92)], humans=[B, B]),
            Checked(spot_check=False, models=[(A, 0.55)], humans=[B]),
            Checked(spot_check=False, models=[(B, 0.65)], humans=[B, B, A]),
        ]
        out = build(checked, model_resolved=7, human_judgments_saved=21, human_resolved=4, spot_checked=2)
        assert (out["model_resolved"], out["spot_checked"], out["human_judgments_saved"]) == (7, 2, 21)
        assert out["spot_check_agreement"] == {"estimate": 0.5, "ci": list(wilson(1, 2))}
        by_low = {b["confidence_low"]: (b["judgments"], b["agreement"]) for b in out["bins"]}
        assert by_low[0.9] == (2, 0.5)
        assert by_low[0.5] == (1, 0.0)
        assert by_low[0.6] == (1, 1.0)
        assert by_low[0.7] == (0, None)

    def test_a_confidence_of_one_is_in_the_last_bin(self) -> None:
        out = build(
            [Checked(spot_check=False, models=[(A, 1.0)], humans=[A])],
            model_resolved=0,
            human_judgments_saved=0,
            human_resolved=1,
            spot_checked=0,
        )
        assert out["bins"][-1]["judgments"] == 1


class TestChart:
    def test_points_sit_on_the_diagonal_when_calibrated(self) -> None:
        bins = [{"confidence_low": 0.8, "confidence_high": 0.9, "judgments": 10, "agreement": 0.85, "ci": [0.6, 0.95]}]
        chart = reliability_chart(bins)
        (point,) = chart.points
        x1, y1, x2, y2 = chart.diagonal
        # on the line from (x1, y1) to (x2, y2)
        assert abs((point.y - y1) * (x2 - x1) - (y2 - y1) * (point.x - x1)) < 1e-6
        assert point.high_y < point.y < point.low_y  # SVG y grows downwards
        assert "85% agreement" in chart.desc

    def test_nothing_measured_is_empty(self) -> None:
        assert reliability_chart(
            [{"confidence_low": 0.5, "confidence_high": 0.6, "judgments": 0, "agreement": None, "ci": [0, 1]}]
        ).empty


async def judge_all(client: httpx.AsyncClient, project: Any, token: str, *, pick: int, **extra: Any) -> None:
    while (response := await lease(client, project, token)).status_code == 200:
        a = response.json()
        choice = sorted(a["item"]["candidates"], key=lambda c: c["text"])[pick]["id"]
        body = {"choice": choice, **extra}
        answer = await client.post(f"/api/v1/assignments/{a['id']}/judgment", json=body, headers=bearer(token))
        assert answer.status_code == 201, answer.text


@pytest.fixture
async def reported(client: httpx.AsyncClient, session: AsyncSession) -> dict[str, Any]:
    """A model sure of items 0-9 (resolved, some spot-checked) and unsure of 10-13 (handed over)."""
    admin = await create_user(session, role=Role.admin)
    human, model = await create_user(session), await create_model(session)
    rule = {"min_confidence": 0.8, "min_judges": 1, "spot_check_rate": 0.5}
    project = await create_project(session, admin, members=(human, model), overlap=2, handoff=rule)
    await import_items(session, project, admin, native_items(10))
    await judge_all(client, project, await create_token(session, model), pick=0, confidence=0.95)
    await import_items(session, project, admin, native_items(4, start=10))
    await judge_all(client, project, await create_token(session, model), pick=0, confidence=0.6)
    await judge_all(client, project, await create_token(session, human), pick=0)
    admin_token = await create_token(session, admin)
    response = await client.get(f"/api/v1/projects/{project.id}/handoff-report", headers=bearer(admin_token))
    assert response.status_code == 200, response.text
    return {"report": response.json(), "project": project, "admin": admin, "human": human}


class TestReportApi:
    async def test_the_figures(self, reported: dict[str, Any]) -> None:
        r = reported["report"]
        # Overlap 2 and one human: handed-over items stay open (one human judgment each), so none is
        # labelled yet; what the model resolved is counted, each saving the overlap's two judgments.
        assert r["model_resolved"] + r["spot_checked"] == 10
        assert r["human_judgments_saved"] == 2 * r["model_resolved"]
        assert r["human_resolved"] == 0
        assert r["spot_check_agreement"] == {"estimate": None, "ci": [0.0, 1.0]}

    async def test_a_rater_is_refused(
        self, client: httpx.AsyncClient, session: AsyncSession, reported: dict[str, Any]
    ) -> None:
        token = await create_token(session, reported["human"])
        response = await client.get(f"/api/v1/projects/{reported['project'].id}/handoff-report", headers=bearer(token))
        assert (response.status_code, response.json()["detail"]) == (403, "Only admins can do this.")


class TestReportComplete:
    async def test_spot_checks_measure_the_model(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        human, model = await create_user(session), await create_model(session)
        rule = {"min_confidence": 0.8, "min_judges": 1, "spot_check_rate": 1.0}
        project = await create_project(session, admin, members=(human, model), overlap=1, handoff=rule)
        await import_items(session, project, admin, native_items(6))
        await judge_all(client, project, await create_token(session, model), pick=0, confidence=0.9)
        await judge_all(client, project, await create_token(session, human), pick=0)
        token = await create_token(session, admin)
        r = (await client.get(f"/api/v1/projects/{project.id}/handoff-report", headers=bearer(token))).json()
        assert (r["model_resolved"], r["spot_checked"], r["human_resolved"]) == (0, 6, 6)
        assert r["spot_check_agreement"] == {"estimate": 1.0, "ci": list(wilson(6, 6))}
        assert [b["judgments"] for b in r["bins"] if b["confidence_low"] == 0.9] == [6]

        await page_login(client, admin.email, PASSWORD)
        page = await client.get(f"/admin/projects/{project.id}/quality?fresh=1")
        assert page.status_code == 200
        (section,) = parse(page.text).find_all("section", id="handoff")
        words = " ".join(section.text.split())
        assert "6 labelled by humans after the models, 6 of them spot checks" in words
        (desc,) = section.find_all("desc")
        assert "0.9 to 1.0: 100% agreement" in desc.text


class TestReportCache:
    async def test_cached_per_data_version_and_current_after_a_judgment(
        self, client: httpx.AsyncClient, session: AsyncSession, reported: dict[str, Any]
    ) -> None:
        project = reported["project"]
        token = await create_token(session, reported["admin"])
        url = f"/api/v1/projects/{project.id}/handoff-report"
        stored = await session.scalar(
            select(QualitySnapshot.data_version).where(
                QualitySnapshot.project_id == project.id, QualitySnapshot.name == service.CACHE_NAME
            )
        )
        assert stored == await data_version(session, project.id)  # the fixture's request stored it
        # A human judgment of a handed-over item changes the data: the next answer counts it.
        before = (await client.get(url, headers=bearer(token))).json()
        await judge_all(client, project, await create_token(session, await _member(session, project)), pick=0)
        after = (await client.get(url, headers=bearer(token))).json()
        assert after["human_resolved"] > before["human_resolved"] == 0

    async def test_the_quality_page_does_not_wait_for_a_first_report(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        reported: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        project = reported["project"]
        await session.execute(delete(QualitySnapshot).where(QualitySnapshot.project_id == project.id))
        await session.commit()
        await page_login(client, reported["admin"].email, PASSWORD)
        await client.get(f"/admin/projects/{project.id}/quality")  # the reliability figures, waited for
        await refreshes_done()
        monkeypatch.setattr(cache, "FIRST_WAIT_SECONDS", 0.0)
        await session.execute(
            delete(QualitySnapshot).where(
                QualitySnapshot.project_id == project.id, QualitySnapshot.name == service.CACHE_NAME
            )
        )
        await session.commit()
        page = parse((await client.get(f"/admin/projects/{project.id}/quality")).text)
        assert "Computing the hand-off report for the first time" in " ".join(page.by_id("handoff").text.split())
        await refreshes_done()
        page = parse((await client.get(f"/admin/projects/{project.id}/quality")).text)
        assert "items resolved by model judges" in " ".join(page.by_id("handoff").text.split())


async def _member(session: AsyncSession, project: Any) -> Any:
    """A second human member, so that handed-over items (overlap 2) complete."""
    rater = await create_user(session)
    session.add(ProjectMember(project_id=project.id, user_id=rater.id))
    await session.commit()
    return rater

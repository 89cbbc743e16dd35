"""The quality API: agreement and per-rater reliability from the database (server/quality/reliability.py)."""

from dataclasses import asdict

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bench.quality_page import accounts, fill
from server.labeling import service as labeling
from server.labeling.schemas import JudgmentCreate
from server.models import Project, QualitySnapshot, Role, User
from server.quality import cache, reliability
from server.quality.agreement import agreement
from server.quality.cache import refreshes_done
from server.quality.raters import tally
from server.quality.weighted import rater_fit
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items

ITEMS = 400  # x overlap 3 = 1,200 judgments by 10 raters: 0 always-left, 1 instant, 2 random


async def _crowd(session: AsyncSession, *, raters: int = 10) -> tuple[Project, list[User], str]:
    project, people = await accounts(session, raters, overlap=3)
    await session.execute(text("SELECT setseed(0.25)"))  # the crowd's random() answers, the same every run
    await fill(session, project, people, items=ITEMS, overlap=3)
    await session.commit()
    token = await create_token(session, await create_user(session, role=Role.admin))
    return project, people, token


async def _quality(client: httpx.AsyncClient, project: Project, token: str) -> dict:  # type: ignore[type-arg]
    response = await client.get(f"/api/v1/projects/{project.id}/quality", headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


class TestQualityApi:
    async def test_agreement_shape(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        project, _, token = await _crowd(session)
        agreement = (await _quality(client, project, token))["agreement"]
        assert agreement["level"] == "nominal"
        assert agreement["units"] == ITEMS
        assert agreement["ci"][0] <= agreement["alpha"] <= agreement["ci"][1]
        assert agreement["pairwise_ci"][0] <= agreement["pairwise"] <= agreement["pairwise_ci"][1]
        assert [b["units"] for b in agreement["batches"]] == [ITEMS]

    async def test_left_and_instant_raters_are_flagged_in_words(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        project, people, token = await _crowd(session)
        raters = {r["email"]: r for r in (await _quality(client, project, token))["raters"]}
        left, instant = raters[people[0].email], raters[people[1].email]
        assert left["position_bias"] == 1.0
        assert left["flags"][0]["text"] == "chooses the left response 100% of the time (p < 0.001)"
        assert "speed" in [f["kind"] for f in instant["flags"]]
        assert instant["median_seconds"] < 1.5

    async def test_honest_raters_are_not_flagged(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        project, people, token = await _crowd(session)
        raters = {r["email"]: r for r in (await _quality(client, project, token))["raters"]}
        assert [raters[p.email]["flags"] for p in people[3:]] == [[]] * 7

    async def test_model_accounts_are_not_flagged(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        project, people, token = await _crowd(session)
        await session.execute(text("UPDATE users SET kind = 'model' WHERE id = :id"), {"id": people[0].id})
        await session.commit()
        left = next(r for r in (await _quality(client, project, token))["raters"] if r["email"] == people[0].email)
        assert (left["position_bias"], left["flags"]) == (1.0, [])

    async def test_figures_are_cached_per_data_version(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        project, _, token = await _crowd(session)
        first = await _quality(client, project, token)
        assert first["agreement"]["stale"] is False
        again = await _quality(client, project, token)
        assert again == first
        # One snapshot of the figures, and the rater model's that they use (server/quality/weighted.py).
        names = select(QualitySnapshot.name).where(QualitySnapshot.project_id == project.id)
        assert sorted(await session.scalars(names)) == ["dawid-skene", "reliability.5:3"]

    async def test_a_slow_figure_is_served_stale_then_recomputed(
        self, client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cache, "SYNC_SECONDS", -1.0)  # every figure counts as slow to compute
        project, _, token = await _crowd(session)
        first = await _quality(client, project, token)
        await session.execute(
            text("UPDATE projects SET queue_epoch = queue_epoch + 1 WHERE id = :id"), {"id": project.id}
        )
        await session.commit()
        stale = (await _quality(client, project, token))["agreement"]
        assert (stale["stale"], stale["data_version"]) == (True, first["agreement"]["data_version"])
        await refreshes_done()  # the fresh figure was computed in the background
        fresh = (await _quality(client, project, token))["agreement"]
        assert fresh["stale"] is False
        assert fresh["data_version"] != first["agreement"]["data_version"]
        await session.execute(
            text("UPDATE projects SET queue_epoch = queue_epoch + 1 WHERE id = :id"), {"id": project.id}
        )
        await session.commit()
        response = await client.get(f"/api/v1/projects/{project.id}/quality?fresh=true", headers=bearer(token))
        waited = response.json()["agreement"]
        assert waited["stale"] is False
        assert waited["data_version"] not in (first["agreement"]["data_version"], fresh["data_version"])

    async def test_an_empty_project_has_no_agreement(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        project, _ = await accounts(session, 2, overlap=1)
        await session.commit()
        token = await create_token(session, await create_user(session, role=Role.admin))
        body = await _quality(client, project, token)
        assert (body["agreement"]["units"], body["agreement"]["alpha"]) == (0, None)
        assert {r["judgments"] for r in body["raters"]} == {0}


class TestSqlMatchesPython:
    """The aggregate queries give the same counts as the row-by-row path the simulation uses."""

    async def test_tallies(self, session: AsyncSession) -> None:
        project, _, _ = await _crowd(session, raters=6)
        rows = await reliability.judged_rows(session, project)
        fit = await rater_fit(session, project)
        expected = tally(rows, fast_seconds=3.0, fit=fit, gold=await reliability.gold_units(session, project))
        got = await reliability.tallies(session, project, fast_seconds=3.0, fit=fit)
        assert got.median_seconds == pytest.approx(expected.median_seconds)
        assert got.label_agreement == pytest.approx(expected.label_agreement)
        for rater, t in expected.raters.items():
            assert asdict(got.raters[rater]) == pytest.approx(asdict(t))
            assert [b.judgments for b in got.blocks[rater]] == [b.judgments for b in expected.blocks[rater]]


class TestFastSecondsSetting:
    async def test_api_refuses_zero(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        token = await create_token(session, await create_user(session, role=Role.admin))
        response = await client.post("/api/v1/projects", json={"name": "x", "fast_seconds": 0}, headers=bearer(token))
        assert response.status_code == 422
        assert response.json()["detail"] == "Invalid request: fast_seconds: Input should be greater than 0"

    async def test_a_new_threshold_is_a_new_figure(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        project, people, token = await _crowd(session)
        response = await client.patch(
            f"/api/v1/projects/{project.id}", json={"fast_seconds": 0.5}, headers=bearer(token)
        )
        assert response.status_code == 200, response.text
        instant = next(r for r in (await _quality(client, project, token))["raters"] if r["email"] == people[1].email)
        assert "speed" not in [f["kind"] for f in instant["flags"]]


async def _mixed(session: AsyncSession) -> Project:
    """An 8-point project judged through the labeling service: choices with strength, ties,
    both-bad answers, and rankings of three candidates, by three raters at overlap 3."""
    admin = await create_user(session, role=Role.admin)
    raters = [await create_user(session) for _ in range(3)]
    project = await create_project(
        session, admin, members=tuple(raters), overlap=3, scale="8-point", allow_tie=True, allow_both_bad=True
    )
    await import_items(session, project, admin, native_items(6) + native_items(4, start=6, candidates=3))
    for r, rater in enumerate(raters):
        for n in range(10):
            leased = await labeling.next_assignment(session, project=project, rater=rater)
            assert leased is not None
            ids = [c.id for c in leased.candidates]
            kind = (n + r) % 4
            if len(ids) == 3:
                verdict = JudgmentCreate(ranking=ids if kind else ids[::-1], strength=1 + kind % 2, active_ms=900 * n)
            elif kind == 0:
                verdict = JudgmentCreate(tie=True, active_ms=1000 * n)
            elif kind == 1:
                verdict = JudgmentCreate(both_bad=True, active_ms=None)
            else:
                verdict = JudgmentCreate(choice=ids[kind % 2], strength=kind, active_ms=1100 * n)
            await labeling.submit(session, assignment_id=leased.assignment.id, rater=rater, data=verdict)
    await session.commit()
    return project


class TestSqlMatchesPythonOnEveryKindOfVerdict:
    async def test_tallies_and_patterns(self, session: AsyncSession) -> None:
        project = await _mixed(session)
        rows = await reliability.judged_rows(session, project)
        fit = await rater_fit(session, project)
        expected = tally(rows, fast_seconds=3.0, fit=fit, gold=await reliability.gold_units(session, project))
        got = await reliability.tallies(session, project, fast_seconds=3.0, fit=fit)
        assert got.label_agreement == pytest.approx(expected.label_agreement)
        assert got.median_seconds == pytest.approx(expected.median_seconds)
        for rater, t in expected.raters.items():
            assert asdict(got.raters[rater]) == pytest.approx(asdict(t))
        units: dict[object, list[int]] = {}
        for j in rows:
            for unit, value in j.values.items():
                units.setdefault(unit, []).append(value)
        sql = await reliability._agreement(session, project, "ordinal")
        python = agreement(units.values(), level="ordinal", direction=True)
        assert (sql["units"], sql["alpha"], sql["pairwise"]) == (python.units, python.alpha, python.pairwise)
        assert sql["units"] == 6 + 4 * 3  # 6 pairs, and 3 candidate pairs on each of 4 three-way items

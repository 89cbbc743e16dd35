"""The leaderboard page in a real browser: chart, tables and heat table render without console errors
(CSP included), keep text contrast and fit a phone's width; screenshots at 1280 and 390 wide."""

import random
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Role
from tests.factories import PASSWORD, create_project, create_user, import_items
from tests.leaderboard.battles import Verdict, item, judge_all
from tests.web.conftest import BrowserLog, login
from tests.web.test_admin_browser import NARROW, _contrast_failures, _fits_width, _full_shot

# Elo-like strengths; the last two never meet, so one head-to-head cell is empty.
MODELS = {
    "meta-llama/Llama-3.1-70B-Instruct": 120.0,
    "gpt-4o-mini": 60.0,
    "claude-3-haiku": 30.0,
    "mistral-7b-instruct": -60.0,
    "tiny-baseline": -150.0,
}


def _items_and_verdicts(n: int, seed: int) -> tuple[list[dict[str, object]], dict[str, Verdict]]:
    rng = random.Random(seed)
    names = list(MODELS)
    records, verdicts = [], {}
    for k in range(n):
        a, b = rng.sample(names, 2)
        if {a, b} == {"mistral-7b-instruct", "tiny-baseline"}:
            continue
        external_id = f"i{k}"
        records.append(item(external_id, a, b))
        p_a = 1 / (1 + 10 ** ((MODELS[b] - MODELS[a]) / 400))
        roll = rng.random()
        verdicts[external_id] = ("tie",) if roll < 0.1 else ("choose", 0 if rng.random() < p_a else 1)
    return records, verdicts


async def test_leaderboard_page(page, session: AsyncSession, artifacts: Path, browser_log: BrowserLog) -> None:
    admin = await create_user(session, role=Role.admin)
    raters = [await create_user(session) for _ in range(2)]
    project = await create_project(
        session, admin, members=tuple(raters), overlap=2, allow_tie=True, name="Chat models, round 3"
    )
    records, verdicts = _items_and_verdicts(60, seed=4)
    await import_items(session, project, admin, records)
    for rater in raters:
        await judge_all(session, project, rater, verdicts)

    await login(page, admin.email, PASSWORD)
    await page.goto(f"/admin/projects/{project.id}")
    async with page.expect_navigation():
        await page.get_by_role("link", name="Leaderboard").click()
    assert page.url.endswith(f"/admin/projects/{project.id}/leaderboard")
    assert await page.locator("#leaderboard-table tbody tr").count() == 5
    assert await page.locator("svg.chart-leaderboard g.chart-interval").count() == 5
    assert await page.locator("#win-rate-matrix td.heat-none").count() == 2  # the pair that never met
    assert await _contrast_failures(page) == []
    await _full_shot(page, artifacts, "leaderboard-1280")
    await page.set_viewport_size(NARROW)
    assert await _fits_width(page)
    await _full_shot(page, artifacts, "leaderboard-390")
    browser_log.assert_clean()


async def test_empty_leaderboard_page(page, session: AsyncSession, artifacts: Path, browser_log: BrowserLog) -> None:
    admin = await create_user(session, role=Role.admin)
    project = await create_project(session, admin, name="Unlabelled")
    await import_items(session, project, admin, [item("p1", None, None)])
    await login(page, admin.email, PASSWORD)
    await page.goto(f"/admin/projects/{project.id}/leaderboard")
    assert "carries a model label" in (await page.locator("#leaderboard-empty").text_content() or "")
    await _full_shot(page, artifacts, "leaderboard-empty-1280")
    browser_log.assert_clean()

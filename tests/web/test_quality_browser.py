"""The quality pages in a real browser, at 1280x800 and 390x844: the rater table sorted by a click,
a flagged rater's page with its flags and trend, agreement on the overview; screenshots in artifacts/
(and /tmp/shots/agree/ when that folder exists)."""

import re
import shutil
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from bench.quality_page import accounts, fill
from server.models import Role
from tests.factories import PASSWORD, create_user
from tests.web.conftest import BrowserLog, login
from tests.web.test_admin_browser import NARROW, _assert_clean, _contrast_failures, _fits_width, _full_shot

SHOTS = Path("/tmp/shots/agree")


async def _shot(page, artifacts: Path, name: str, *, full: bool = True) -> None:  # type: ignore[no-untyped-def]
    if full:
        await _full_shot(page, artifacts, name)
    else:
        await page.screenshot(path=str(artifacts / f"{name}.png"))
    if SHOTS.is_dir():
        shutil.copy(artifacts / f"{name}.png", SHOTS / f"{name}.png")


class TestQualityPagesInBrowser:
    async def test_table_sort_rater_page_and_overview(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin = await create_user(session, role=Role.admin, email="admin@example.com")
        project, raters = await accounts(session, 8, overlap=3)
        await fill(session, project, raters, items=300, overlap=3)
        await session.commit()
        await login(page, admin.email, PASSWORD)

        await page.goto(f"/admin/projects/{project.id}/quality")
        rows = page.locator("#rater-quality tbody tr")
        assert await rows.count() == 9  # the 8 raters and the admin who created the project
        # flagged first by default: the always-left and the instant rater
        assert await rows.nth(0).get_attribute("class") == "flagged"
        flags = await page.locator("#rater-quality .flags li").all_inner_texts()
        assert "chooses the left response 100% of the time (p < 0.001)" in flags
        assert await _contrast_failures(page) == []
        await _shot(page, artifacts, "quality-table-1280")

        # Sort by median time with a click: the instant rater comes first in ascending order.
        await page.get_by_role("link", name="Median time").click()
        await page.wait_for_url(re.compile(r"sort=-seconds"))
        await page.get_by_role("link", name="Median time ↓").click()
        await page.wait_for_url(re.compile(r"sort=seconds"))
        assert await rows.nth(0).locator("th a").inner_text() == raters[1].email

        await rows.nth(0).locator("th a").click()
        await page.wait_for_url(re.compile(rf"/raters/{raters[1].id}"))
        # The instant rater's active times are drawn at random between 0.7 and 1.3 s (bench/quality_page.py).
        median = re.search(r"answers in ([0-9.]+) s median", await page.locator("#flags").inner_text())
        assert median is not None
        assert 0.7 <= float(median.group(1)) <= 1.3
        assert await page.locator("#trend tbody tr").count() >= 2
        await _shot(page, artifacts, "quality-rater-1280")

        await page.goto(f"/admin/projects/{project.id}")
        assert "pairwise agreement" in await page.locator("#agreement").inner_text()
        await _shot(page, artifacts, "quality-overview-1280")

        await page.set_viewport_size(NARROW)
        await page.goto(f"/admin/projects/{project.id}/quality")
        assert await _fits_width(page)
        await _shot(page, artifacts, "quality-table-390", full=False)
        await page.goto(f"/admin/projects/{project.id}/raters/{raters[0].id}")
        assert await _fits_width(page)
        await _shot(page, artifacts, "quality-rater-390", full=False)
        _assert_clean(browser_log)

    async def test_a_bad_sort_is_refused_in_words(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin = await create_user(session, role=Role.admin, email="admin@example.com")
        project, _ = await accounts(session, 2, overlap=1)
        await session.commit()
        await login(page, admin.email, PASSWORD)
        response = await page.goto(f"/admin/projects/{project.id}/quality?sort=nonsense")
        assert response is not None
        assert response.status == 422
        assert (
            "sort must be one of email, judgments, agreement, gold, left, seconds, fast, ties, both_bad, skips, "
            "revisions, flags, with a leading - for descending order." in await page.locator("main").inner_text()
        )
        _assert_clean(browser_log)


async def test_a_first_view_fills_in_by_itself(
    page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A figure never computed: the page answers at once with a placeholder, and htmx swaps the
    figures in when the background computation is done (server/quality/cache.py)."""
    from server.quality import cache

    admin = await create_user(session, role=Role.admin, email="admin@example.com")
    project, raters = await accounts(session, 4, overlap=2)
    await fill(session, project, raters, items=40, overlap=2)
    await session.commit()
    await login(page, admin.email, PASSWORD)
    monkeypatch.setattr(cache, "FIRST_WAIT_SECONDS", 0.0)

    await page.goto(f"/admin/projects/{project.id}/quality")
    placeholder = page.locator("#quality-body.computing")
    assert "Computing the quality figures for the first time" in await placeholder.inner_text()
    await _shot(page, artifacts, "quality-computing-1280", full=False)
    await page.locator("#rater-quality").wait_for(timeout=20_000)  # polled every 2 s, swapped in
    assert await page.locator(".computing").count() == 0
    assert await page.locator("#rater-quality tbody tr").count() == 5
    _assert_clean(browser_log)

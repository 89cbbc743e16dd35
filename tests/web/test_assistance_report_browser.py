"""The assistance experiment page in a real browser, on the demo's experiment (server/demo/assistance.py):
findings in words, the arms table, the group split and the effect form; no console errors (CSP
included), text contrast, a phone's width; screenshots at 1280 and 390 wide."""

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.demo import load_demo
from server.demo.assistance import NAME
from server.models import Project
from tests.factories import PASSWORD
from tests.web.conftest import BrowserLog, login
from tests.web.test_admin_browser import NARROW, _contrast_failures, _fits_width, _full_shot


async def test_assistance_report_page(page, session: AsyncSession, artifacts: Path, browser_log: BrowserLog) -> None:
    await load_demo(session, admin_email="admin@example.com", admin_password=PASSWORD, rater_password=PASSWORD + "!")
    await session.commit()
    project = await session.scalar(select(Project).where(Project.name == NAME))
    assert project is not None

    await login(page, "admin@example.com", PASSWORD)
    await page.goto(f"/admin/projects/{project.id}")
    async with page.expect_navigation():
        await page.get_by_role("link", name="Assistance").click()
    assert page.url.endswith(f"/admin/projects/{project.id}/assistance")
    catch = await page.locator("#finding-catch_rate").text_content() or ""
    assert catch.startswith("With critiques, raters caught ")
    assert "judgments by 8 raters" in catch
    assert await page.locator("#arms-table tbody tr").count() == 6
    assert await page.locator("#no-experiment").count() == 0
    assert await _contrast_failures(page) == []
    await _full_shot(page, artifacts, "assistance-report-1280")

    await page.get_by_label("Raters").select_option("novice")
    await page.get_by_label("Effect to detect").fill("0.2")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Show").click()
    assert "group=novice" in page.url
    assert "Raters of the group novice only." in (await page.locator("#report-scope").text_content() or "")
    assert "by 6 raters" in (await page.locator("#finding-catch_rate").text_content() or "")
    assert await _contrast_failures(page) == []
    await page.set_viewport_size(NARROW)
    assert await _fits_width(page)
    await _full_shot(page, artifacts, "assistance-report-390")

    # The groups behind the split, on the Members page: set one from the keyboard-reachable form.
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.goto(f"/admin/projects/{project.id}/members")
    field = page.get_by_label("Group of rater@example.com")
    await field.fill("novice")
    async with page.expect_navigation():
        await field.press("Enter")
    assert await page.get_by_label("Group of rater@example.com").input_value() == "novice"
    assert await page.get_by_label("Group of expert-1@simulated.example.com").input_value() == "expert"
    assert await _contrast_failures(page) == []
    await _full_shot(page, artifacts, "assistance-members-groups-1280")
    browser_log.assert_clean()

"""The quality page of a project with task trees, in a real browser: a line per subtask kind and each
rater's agreement per kind; screenshots in artifacts/."""

from pathlib import Path

from tests.factories import PASSWORD
from tests.trees.conftest import make_setup  # noqa: F401  (the fixture)
from tests.trees.test_quality import answered_trees
from tests.web.conftest import BrowserLog, login
from tests.web.test_admin_browser import NARROW, _assert_clean, _fits_width, _full_shot


class TestSubtaskAgreementInBrowser:
    async def test_a_line_per_kind(
        self,
        page,
        client,
        make_setup,  # noqa: F811  (the fixture imported above)
        browser_log: BrowserLog,
        artifacts: Path,
    ) -> None:
        s = await answered_trees(client, make_setup)
        await login(page, s.admin.email, PASSWORD)
        await page.goto(f"/admin/projects/{s.project.id}/quality")
        check = await page.locator("#subtask-agreement-check").inner_text()
        rating = await page.locator("#subtask-agreement-rating").inner_text()
        assert check.startswith("Checks (yes / no, nominal)")
        assert "71%" in check
        assert rating.startswith("Ratings (interval)")
        assert "56%" in rating
        cell = page.locator(f"#rater-{s.raters[0].id} .subtask-agreement")
        assert await cell.all_inner_texts() == ["checks 80%", "ratings 67%"]
        await _full_shot(page, artifacts, "quality-subtasks-1280")
        await page.set_viewport_size(NARROW)
        assert await _fits_width(page)
        await page.screenshot(path=str(artifacts / "quality-subtasks-390.png"))
        _assert_clean(browser_log)

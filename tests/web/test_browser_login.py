"""Logging in and out in a real browser."""

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Role
from tests.factories import PASSWORD, create_project, create_user
from tests.web.conftest import BrowserLog, login, screenshot


class TestBrowserLogin:
    async def test_login_lands_on_my_projects_and_logout(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        await create_project(session, admin, members=(rater,), name="Helpfulness")
        await page.goto("/")
        assert page.url.endswith("/login")
        await page.fill("input[name=email]", rater.email)
        await page.fill("input[name=password]", "wrong password")
        await page.press("input[name=password]", "Enter")
        assert await page.inner_text("#login-error") == "Not done: Wrong email or password."
        await login(page, rater.email, PASSWORD)
        assert await page.inner_text("h1") == "My projects"
        assert await page.get_by_role("link", name="Helpfulness").count() == 1
        await screenshot(page, artifacts, "my-projects-1280")
        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_url("**/login")
        assert "You are logged out." in await page.inner_text("#flash")
        browser_log.assert_clean()

"""The export page's label, trusted-raters and gold options in a real browser: each download link
takes them along, the item-only ones only on per-item links (a per-judgment export refuses them)."""

from pathlib import Path
from urllib.parse import parse_qs, urlparse

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Role
from tests.factories import PASSWORD, create_judgment, create_project, create_user, import_items, native_items
from tests.web.conftest import BrowserLog, login, screenshot


async def test_options_go_with_the_downloads(
    page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
) -> None:
    admin = await create_user(session, role=Role.admin)
    project = await create_project(session, admin, name="Helpfulness, round 3")
    await import_items(session, project, admin, native_items(3))
    for _ in range(3):
        await create_judgment(session, project, admin)
    await login(page, admin.email, PASSWORD)
    await page.goto(f"/admin/projects/{project.id}/export")
    await page.select_option("#x-aggregation", "weighted")
    await page.get_by_label("only trusted raters").check()
    await page.get_by_label("gold items too (per item)").check()
    await screenshot(page, artifacts, "export-options", full_page=True)

    async def download(name: str) -> dict[str, list[str]]:
        async with page.expect_download() as info:
            await page.get_by_label(name, exact=True).click()
        made = await info.value
        return parse_qs(urlparse(made.url).query)

    item = await download("Download TRL pairs (prompt, chosen, rejected), per completed item, jsonl")
    assert (item["granularity"], item["aggregation"], item["raters"], item["gold"]) == (
        ["item"],
        ["weighted"],
        ["trusted"],
        ["include"],
    )
    judgment = await download("Download TRL pairs (prompt, chosen, rejected), per judgment, jsonl")
    assert judgment["raters"] == ["trusted"]
    assert "aggregation" not in judgment
    assert "gold" not in judgment
    browser_log.assert_clean()

"""The admin item page lists each judgment's earlier verdicts (judgment_revisions) in a real browser,
at 1280 by 800 and 390 by 844 (screenshots)."""

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from server.labeling import revisions
from server.labeling import service as labeling
from server.labeling.schemas import JudgmentCreate
from server.models import Role
from tests.factories import PASSWORD, create_project, create_user, import_items, native_items
from tests.web.conftest import BrowserLog, login, screenshot


async def test_revision_history_on_the_item_page(
    page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
) -> None:
    admin = await create_user(session, role=Role.admin, email="admin@example.com")
    rater = await create_user(session, email="ana@example.com")
    project = await create_project(session, admin, members=(rater,), allow_tie=True, scale="4-point")
    await import_items(session, project, admin, native_items(1))
    leased = await labeling.next_assignment(session, project=project, rater=rater)
    assert leased is not None
    a, b = leased.candidates
    sent = await labeling.submit(
        session,
        assignment_id=leased.assignment.id,
        rater=rater,
        data=JudgmentCreate(choice=a.id, strength=2, rationale="A answers the question."),
    )
    await session.commit()
    for verdict in (
        JudgmentCreate(choice=b.id, strength=1, rationale="On reflection B is safer."),
        JudgmentCreate(tie=True),
    ):
        await revisions.revise(session, judgment_id=sent.judgment.id, rater=rater, data=verdict)
        await session.commit()
    item_id = leased.item.id
    await login(page, admin.email, PASSWORD)
    await page.goto(f"/admin/items/{item_id}")
    summary = page.locator("details.revisions summary")
    assert (await summary.inner_text()).endswith(": 2 earlier verdicts")
    await summary.click()
    entries = page.locator("details.revisions li")
    assert await entries.count() == 2
    assert await entries.nth(1).locator(".rationale").inner_text() == "“On reflection B is safer.”"
    await screenshot(page, artifacts, "item-revisions-1280", full_page=True)
    await page.set_viewport_size({"width": 390, "height": 844})
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await screenshot(page, artifacts, "item-revisions-390", full_page=True)
    browser_log.assert_clean()

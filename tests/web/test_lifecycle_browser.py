"""Archive and delete in a real browser: the confirmation names what goes, a wrong name deletes
nothing, the right one deletes and says what went; archiving a batch and a project and undoing it.
Screenshots at 1280 by 800 and 390 by 844."""

import re
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import AuditEvent, Batch, Item, Judgment, Role
from tests.factories import PASSWORD, create_judgment, create_project, create_user, import_items, native_items
from tests.web.conftest import BrowserLog, login, screenshot

NARROW = {"width": 390, "height": 844}


async def _count(session: AsyncSession, model: object, *where: object) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]


class TestDeleteAndArchive:
    async def test_the_confirmation_flow(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin = await create_user(session, role=Role.admin, email="admin@example.com")
        raters = [await create_user(session, email=f"{n}@example.com") for n in ("ana", "bo")]
        project = await create_project(session, admin, members=tuple(raters), name="Helpfulness", overlap=2)
        project_id = project.id
        await import_items(session, project, admin, native_items(3, prefix="keep"))
        doomed = await import_items(session, project, admin, native_items(5, prefix="pilot"), priority=9)
        await session.execute(Batch.__table__.update().where(Batch.id == doomed).values(name="Pilot run"))
        await session.commit()
        for rater in raters:
            await create_judgment(session, project, rater, active_ms=3000)
        await login(page, admin.email, PASSWORD)

        await page.goto(f"/admin/projects/{project_id}/batches")
        await page.get_by_role("link", name="Delete… Pilot run").click()
        await page.wait_for_url(re.compile(r"/admin/batches/[0-9a-f-]{36}/delete$"))
        heading = "Delete batch “Pilot run”: 5 items, 2 judgments by 2 raters."
        assert await page.inner_text("#delete-title") == heading
        await screenshot(page, artifacts, "delete-batch-confirm-1280", full_page=True)
        await page.set_viewport_size(NARROW)
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await screenshot(page, artifacts, "delete-batch-confirm-390", full_page=True)
        await page.set_viewport_size({"width": 1280, "height": 800})

        # A wrong name deletes nothing and says what to type.
        await page.get_by_label("Type the batch name to confirm").fill("pilot")
        await page.get_by_role("button", name="Delete batch").click()
        error = page.locator("#f-confirm-error")
        await error.wait_for()
        assert await error.inner_text() == "Type the batch's name, “Pilot run”, to delete it; nothing was deleted."
        assert await _count(session, Item, Item.batch_id == doomed) == 5
        await screenshot(page, artifacts, "delete-batch-refused-1280", full_page=True)

        # Cancel goes back without deleting; then the right name deletes it.
        await page.get_by_role("link", name="Cancel").click()
        await page.wait_for_url(re.compile(r"/batches$"))
        await page.get_by_role("link", name="Delete… Pilot run").click()
        await page.get_by_label("Type the batch name to confirm").fill("Pilot run")
        await page.get_by_role("button", name="Delete batch").click()
        await page.wait_for_url(re.compile(r"/admin/projects/[0-9a-f-]{36}/batches$"))
        assert await page.inner_text("#flash") == (
            "Deleted batch “Pilot run”: 5 items, 2 judgments by 2 raters. Export manifests are kept."
        )
        assert await page.locator("li.batch h3").all_inner_texts() == ["items.jsonl"]
        assert await _count(session, Item, Item.batch_id == doomed) == 0
        assert await _count(session, Judgment) == 0
        await screenshot(page, artifacts, "delete-batch-done-1280", full_page=True)

        # Archive the remaining batch, then undo it.
        await page.get_by_role("button", name="Archive items.jsonl").click()
        await page.locator("#upload-result").filter(has_text="Batch “items.jsonl” archived").wait_for()
        assert await page.locator("li.batch .badge").inner_text() == "Archived"
        await screenshot(page, artifacts, "archive-batch-1280", full_page=True)
        await page.get_by_role("button", name="Unarchive items.jsonl").click()
        await page.locator("#upload-result").filter(has_text="unarchived").wait_for()
        assert await page.locator("li.batch .badge").inner_text() == "Active"

        # The project: archive (the header says so), unarchive, then delete with its name.
        await page.goto(f"/admin/projects/{project_id}/settings")
        await page.get_by_role("button", name="Archive project").click()
        await page.wait_for_url(re.compile(r"/settings$"))
        assert (await page.inner_text("#flash")).startswith("Project “Helpfulness” archived")
        assert await page.inner_text("h1 .badge") == "Archived"
        await screenshot(page, artifacts, "archive-project-1280", full_page=True)
        await page.get_by_role("button", name="Unarchive project").click()
        await page.wait_for_url(re.compile(r"/settings$"))
        assert await page.inner_text("h1 .badge") == "Active"
        await page.get_by_role("link", name="Delete project…").click()
        assert await page.inner_text("#delete-title") == "Delete project “Helpfulness”: 3 items, 0 judgments."
        await page.get_by_label("Type the project name to confirm").fill("Helpfulness")
        await screenshot(page, artifacts, "delete-project-confirm-1280", full_page=True)
        await page.get_by_role("button", name="Delete project").click()
        await page.wait_for_url(re.compile(r"/admin/projects$"))
        assert await page.inner_text("#flash") == (
            "Deleted project “Helpfulness”: 3 items, 0 judgments. Export manifests are kept."
        )
        assert await page.locator("main table").get_by_text("Helpfulness").count() == 0
        actions = set((await session.scalars(select(AuditEvent.action))).all())
        assert {"batch.delete", "batch.archive", "batch.unarchive", "project.archive", "project.delete"} <= actions
        gone = await page.goto(f"/admin/projects/{project_id}/settings")
        assert gone is not None
        assert gone.status == 404
        browser_log.console_errors = [e for e in browser_log.console_errors if "status of 4" not in e]
        browser_log.assert_clean()

"""The data browser and the export pages in a real browser, at 1280x800 and 390x844: filter by
keyboard and by mouse, follow an item to its judgments and a rater, download from the export page,
and a trainer's landing page after login; screenshots in artifacts/."""

import gzip
import re
from pathlib import Path

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.items import search
from server.labeling import service as labeling
from server.labeling.schemas import JudgmentCreate
from server.models import Project, Role, User
from server.projects import service as projects
from tests.factories import PASSWORD, create_project, create_user, import_items, native_items
from tests.web.conftest import BrowserLog, login
from tests.web.test_admin_browser import NARROW, WIDE, _assert_clean, _contrast_failures, _fits_width, _full_shot


async def _judge(session: AsyncSession, project: Project, rater: User, **verdict: object) -> None:
    leased = await labeling.next_assignment(session, project=project, rater=rater)
    assert leased is not None
    if verdict.pop("first", False):
        verdict["choice"] = leased.candidates[0].id
    data = JudgmentCreate.model_validate(verdict)
    await labeling.submit(session, assignment_id=leased.assignment.id, rater=rater, data=data)
    await session.commit()


async def _world(session: AsyncSession) -> tuple[User, User, Project]:
    admin = await create_user(session, role=Role.admin, email="admin@example.com")
    rater = await create_user(session, role=Role.rater, email="rater@example.com")
    project = await create_project(session, admin, members=(rater,), name="Helpfulness", allow_tie=True)
    records = native_items(12)
    records[3]["prompt"] = [
        {"role": "user", "content": "How do I bake sourdough bread?"},
        {"role": "assistant", "content": "Start with a starter."},
        {"role": "user", "content": "And then <script>alert(1)</script>?"},
    ]
    await import_items(session, project, admin, records)
    for _ in range(3):
        await _judge(session, project, rater, first=True, rationale="A explains the steps; B skips them.")
    await _judge(session, project, rater, tie=True)
    return admin, rater, project


class TestDataBrowserInBrowser:
    async def test_filter_item_rater_by_keyboard_and_mouse(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin, rater, project = await _world(session)
        await login(page, admin.email, PASSWORD)
        await page.goto(f"/admin/projects/{project.id}/items")
        rows = page.locator("#results tbody tr")
        assert await rows.count() == 12
        await _full_shot(page, artifacts, "browser-items-1280")

        # Keyboard: type words and press Enter; htmx swaps the results and the URL follows.
        await page.get_by_label("Words in the prompt or responses").fill("sourdough")
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r"q=sourdough"))
        await rows.first.wait_for()
        assert await rows.count() == 1
        assert "alert(1)" in await rows.first.locator(".excerpt").inner_text()  # text, not a script
        # Mouse: a select filters as soon as it changes.
        await page.get_by_role("link", name="Clear filters").click()
        await page.get_by_label("Verdict").select_option(label="Tie")
        await page.wait_for_url(re.compile(r"verdict=tie"))
        await page.locator("#results tbody tr").filter(has_text="item-3").wait_for()
        assert await rows.count() == 1
        assert await _contrast_failures(page) == []

        await rows.first.get_by_role("link").click()
        await page.wait_for_url(re.compile(r"/admin/items/"))
        assert await page.locator(".candidate").count() == 2
        assert await page.locator("#judgments tbody tr td[data-label=Verdict]").inner_text() == "Tie"
        await page.locator(".msg-role").first.wait_for()
        await _full_shot(page, artifacts, "browser-item-1280")
        await page.locator("#judgments tbody tr").get_by_role("link", name=rater.email).click()
        await page.wait_for_url(re.compile(rf"/raters/{rater.id}"))
        assert await page.locator("#judgments tbody tr").count() == 4
        assert "4 judgments and 0 skips in this project" in await page.locator(".item-head").inner_text()
        await _full_shot(page, artifacts, "browser-rater-1280")

        await page.set_viewport_size(NARROW)
        await page.goto(f"/admin/projects/{project.id}/items")
        assert await _fits_width(page)
        # Stacked rows: each cell names its column.
        label = await page.evaluate(
            "getComputedStyle(document.querySelector('#results tbody td[data-label=Batch]'), '::before').content"
        )
        assert label == '"Batch: "'
        await _full_shot(page, artifacts, "browser-items-390")
        await page.goto(f"/admin/projects/{project.id}/raters/{rater.id}")
        assert await _fits_width(page)
        await _full_shot(page, artifacts, "browser-rater-390")
        await page.set_viewport_size(WIDE)
        _assert_clean(browser_log)

    async def test_a_word_search_while_an_import_is_being_indexed(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Right after a big import a search computes the vectors of the next few items itself and
        says how many it has not searched yet (items/search.py: ON_THE_FLY, here 3 of 12)."""
        monkeypatch.setattr(search, "schedule", lambda engine: None)  # the vectors stay pending
        monkeypatch.setattr(search, "ON_THE_FLY", 3)
        admin = await create_user(session, role=Role.admin, email="admin@example.com")
        project = await create_project(session, admin, name="Helpfulness")
        await import_items(session, project, admin, native_items(12))
        await login(page, admin.email, PASSWORD)
        await page.goto(f"/admin/projects/{project.id}/items")
        await page.get_by_label("Words in the prompt or responses").fill("question")
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r"q=question"))
        notice = page.get_by_role("status").filter(has_text="still being indexed")
        await notice.wait_for()
        assert await notice.inner_text() == (
            "9 items imported moments ago are still being indexed and not searched by word yet; search again in "
            "a moment to include them."
        )
        assert await page.locator("#results tbody tr").count() == 3
        assert await _contrast_failures(page) == []
        await _full_shot(page, artifacts, "browser-items-indexing-1280")
        await page.set_viewport_size(NARROW)
        assert await _fits_width(page)
        await _full_shot(page, artifacts, "browser-items-indexing-390")
        await page.set_viewport_size(WIDE)
        _assert_clean(browser_log)

    async def test_export_page_and_trainer_home(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin, _, project = await _world(session)
        trainer = await create_user(session, role=Role.trainer, email="trainer@example.com")
        await projects.add_member(session, project, trainer.id, actor=admin)
        await session.commit()
        await login(page, admin.email, PASSWORD)
        await page.goto(f"/admin/projects/{project.id}/export")
        button = page.get_by_role("link", name="Download TRL pairs (prompt, chosen, rejected), per judgment, jsonl")
        async with page.expect_download() as download:
            await button.click()
        path = await (await download.value).path()
        assert len(Path(path).read_text().splitlines()) == 3  # three preferences; the tie has no pair
        # Keyboard: a filter, then Tab to a button and Enter.
        await page.get_by_label("Batch").select_option(index=1)
        parquet = page.get_by_role("link", name="Download Raw judgments (every field), per judgment, parquet")
        await parquet.focus()
        async with page.expect_download() as download:
            await page.keyboard.press("Enter")
        assert (await download.value).suggested_filename.endswith(".parquet")
        await page.reload()
        assert await page.locator("#manifests-h + .table-wrap tbody tr").count() == 2
        await _full_shot(page, artifacts, "export-page-1280")
        await page.set_viewport_size(NARROW)
        assert await _fits_width(page)
        await _full_shot(page, artifacts, "export-page-390")
        await page.set_viewport_size(WIDE)

        await page.context.clear_cookies()
        await login(page, trainer.email, PASSWORD)
        await page.wait_for_url(re.compile(r"/trainer$"))
        card = page.locator("section.card").filter(has=page.get_by_role("heading", name="Helpfulness"))
        assert await card.locator(".project-id").inner_text() == str(project.id)
        assert f"/api/v1/projects/{project.id}/export?format=trl" in await card.locator("pre").first.inner_text()
        await _full_shot(page, artifacts, "trainer-home-1280")
        await page.set_viewport_size(NARROW)
        assert await _fits_width(page)
        await _full_shot(page, artifacts, "trainer-home-390")
        _assert_clean(browser_log)


class TestLiveProgress:
    async def test_numbers_update_without_wiping_typed_input(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin, rater, project = await _world(session)
        await login(page, admin.email, PASSWORD)
        await page.goto(f"/admin/projects/{project.id}/batches")
        numbers = page.locator(".batch-numbers").first
        assert "Judgments 4" in " ".join((await numbers.inner_text()).split())
        priority = page.locator(".priority-form input[name=priority]").first
        await priority.fill("17")  # typed, not sent
        await _judge(session, project, rater, first=True)
        leased = await labeling.next_assignment(session, project=project, rater=rater)
        assert leased is not None
        await labeling.skip(session, assignment_id=leased.assignment.id, rater=rater, reason=None)
        await session.commit()
        await numbers.filter(has_text="5").wait_for(timeout=15_000)  # the poll comes every 10 s
        text = " ".join((await page.locator(".batch-numbers").first.inner_text()).split())
        assert "Judgments 5" in text
        assert "Skipped 1" in text
        assert await priority.input_value() == "17"
        assert await priority.evaluate("el => el === document.activeElement")
        await _full_shot(page, artifacts, "batches-live-1280")
        _assert_clean(browser_log)


class TestPreviewAndSettingsInBrowser:
    async def test_upload_preview_then_settings_impact(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin, _, project = await _world(session)
        await login(page, admin.email, PASSWORD)
        await page.goto(f"/admin/projects/{project.id}/batches")
        hh = [
            {"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello.\n\nHuman: Name a cat.\n\nAssistant: Mittens.",
             "rejected": "\n\nHuman: Hi?\n\nAssistant: Hello.\n\nHuman: Name a cat.\n\nAssistant: No."}
        ] * 2  # fmt: skip
        content = gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in hh))
        await page.set_input_files(
            "#f-file", {"name": "hh.jsonl.gz", "mimeType": "application/gzip", "buffer": content}
        )
        await page.get_by_role("button", name="Preview first items").click()
        heading = page.locator("#upload-preview h2")
        await heading.wait_for()
        assert await heading.inner_text() == "Preview: HH-RLHF, gzipped JSONL"
        await _full_shot(page, artifacts, "upload-preview-1280")
        await page.set_viewport_size(NARROW)
        await _full_shot(page, artifacts, "upload-preview-390")
        assert await _fits_width(page)  # a long HH id (a sha256) wraps
        await page.set_viewport_size(WIDE)

        # Settings by keyboard: a higher overlap reopens the 4 complete items; the page says so first.
        await page.goto(f"/admin/projects/{project.id}/settings")
        await page.get_by_label("Overlap").fill("2")
        await page.get_by_label("Overlap").press("Enter")
        impact = page.locator("#impact")
        await impact.wait_for()
        assert "4 items now complete will reopen" in await impact.inner_text()
        assert (
            "Overlap 2 needs at least 2 raters; this project has 1 rater."
            in await page.locator("#overlap-warning").inner_text()
        )
        await _full_shot(page, artifacts, "settings-impact-1280")
        await page.get_by_role("button", name="Save anyway").click()
        await page.wait_for_url(re.compile(rf"/admin/projects/{project.id}$"))
        assert await page.inner_text("#flash") == "Settings saved."
        _assert_clean(browser_log)

"""Gold in a real browser: the admin sets, replaces and clears an item's gold answer on the item page;
a rater reads the feedback after a gold item before the next one; the members page says who was
suspended or not admitted, and why. Screenshots in artifacts/."""

import re
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.labeling import service as labeling
from server.labeling.schemas import JudgmentCreate
from server.models import Item, ProjectMember, Role
from tests.factories import PASSWORD, create_project, create_user, import_items, native_items
from tests.quality.test_gold import gold_items
from tests.web.conftest import BrowserLog, login, open_label
from tests.web.test_admin_browser import _assert_clean, _full_shot


class TestGoldOnTheItemPage:
    async def test_set_from_the_form_replace_with_a_judgment_and_clear(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin = await create_user(session, role=Role.admin, email="gold-admin@example.com")
        expert = await create_user(session, email="expert@example.com")
        project = await create_project(session, admin, members=(expert,), name="Gold", overlap=2)
        await import_items(session, project, admin, native_items(2))
        leased = await labeling.next_assignment(session, project=project, rater=expert)
        assert leased is not None
        first = next(c for c in leased.candidates if c.position == 0)
        data = JudgmentCreate(choice=first.id)
        await labeling.submit(session, assignment_id=leased.assignment.id, rater=expert, data=data)
        await session.commit()
        item = leased.item

        await login(page, admin.email, PASSWORD)
        await page.goto(f"/admin/items/{item.id}")
        await page.get_by_label("Response #2 is better").check()
        await page.get_by_label("Explanation").fill("B <cites> its source.")
        async with page.expect_navigation():
            await page.get_by_role("button", name="Save the gold answer").click()
        gold = page.locator("#gold")
        assert "response #2 as the better one" in await gold.inner_text()
        assert "Explanation: B <cites> its source." in await gold.inner_text()  # text, not markup
        await _full_shot(page, artifacts, "gold-item-1280")

        async with page.expect_navigation():
            await page.get_by_role("button", name=re.compile(f"Use as gold.*{expert.email}")).click()
        assert "response #1 as the better one" in await gold.inner_text()
        await session.refresh(item)
        assert item.gold == {"preferred": 0}

        async with page.expect_navigation():
            await page.get_by_role("button", name="Clear the gold answer").click()
        assert "Give this item a known answer" in await gold.inner_text()
        await session.refresh(item)
        assert (item.gold, item.wanted) == (None, 2)
        _assert_clean(browser_log)


class TestFeedbackOnTheRaterPage:
    async def test_the_feedback_is_read_before_the_next_item(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session, email="learner@example.com")
        project = await create_project(
            session, admin, members=(rater,), name="Feedback", gold_rate=1.0, gold_feedback=True
        )
        await import_items(session, project, admin, gold_items(1) + native_items(2))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        gold = await session.scalar(select(Item).where(Item.external_id == "g-0"))
        assert gold is not None
        slot = page.locator("#queue > .slot:not([hidden])")
        wrong = slot.locator(".candidate").filter(has_text="Answer 0 to 0")
        letter = (await wrong.locator(".panel-title").inner_text()).strip()[-1].lower()
        await page.keyboard.press(letter)
        await page.keyboard.press("Enter")
        feedback = page.locator("[data-feedback]")
        await feedback.wait_for()
        assert "Your answer did not match the known answer." in await feedback.inner_text()
        assert "The second answer is right." in await feedback.inner_text()
        assert not await page.locator("#queue").is_visible()  # the next item waits
        await page.screenshot(path=str(artifacts / "gold-feedback-1280.png"))
        await page.keyboard.press("Enter")
        await feedback.wait_for(state="detached")
        assert await page.locator("#queue > .slot:not([hidden]) .candidate").first.is_visible()
        _assert_clean(browser_log)


class TestMembersPage:
    async def test_suspended_and_not_admitted_say_why(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin = await create_user(session, role=Role.admin, email="members-admin@example.com")
        careless = await create_user(session, email="careless@example.com")
        newcomer = await create_user(session, email="newcomer@example.com")
        project = await create_project(session, admin, members=(careless, newcomer), name="Members")
        await import_items(session, project, admin, gold_items(2))
        reason = "Suspended on 1 Dec: 4 of the last 10 gold answers matched (40%); the project requires 70%."
        await session.execute(
            update(ProjectMember)
            .where(ProjectMember.user_id == careless.id)
            .values(suspended_at=ProjectMember.created_at, suspended_reason=reason)
        )
        result = "1 of 2 qualification answers matched (50%); the project requires 80%."
        await session.execute(
            update(ProjectMember)
            .where(ProjectMember.user_id == newcomer.id)
            .values(qualification_failed_at=ProjectMember.created_at, qualification_result=result)
        )
        await session.execute(update(type(project)).where(type(project).id == project.id).values(qualification_items=2))
        await session.commit()
        await login(page, admin.email, PASSWORD)
        await page.goto(f"/admin/projects/{project.id}/settings")
        await page.get_by_text("Gold feedback", exact=True).wait_for()
        await page.get_by_label("Qualification items").scroll_into_view_if_needed()
        await page.screenshot(path=str(artifacts / "gold-settings-1280.png"))
        await page.goto(f"/admin/projects/{project.id}/members")
        rows = page.locator("tbody tr")
        assert reason in await rows.filter(has_text=careless.email).inner_text()
        assert result in await rows.filter(has_text=newcomer.email).inner_text()
        await _full_shot(page, artifacts, "gold-members-1280")
        async with page.expect_navigation():
            await rows.filter(has_text=newcomer.email).get_by_role("button", name="Admit").click()
        async with page.expect_navigation():
            await rows.filter(has_text=careless.email).get_by_role("button", name=re.compile("Reinstate")).click()
        members = {
            m.user_id: m for m in await session.scalars(select(ProjectMember).execution_options(populate_existing=True))
        }
        assert members[careless.id].suspended_at is None
        assert members[newcomer.id].qualified_at is not None
        _assert_clean(browser_log)

"""Task trees in Chromium: a check subtask answered by keyboard (y / n / u, legend), and a parent
showing its subtasks' results beside its responses when assistance is shown.
Screenshots: artifacts/trees-*.png."""

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.labeling import service as labeling
from server.labeling.schemas import JudgmentCreate
from server.models import Judgment, Role, User
from tests.factories import PASSWORD, create_project, create_user, import_items
from tests.trees.conftest import tree_record
from tests.web.conftest import BrowserLog, login, open_label, screenshot

CURRENT = "#queue > .slot:not([hidden])"
ANSWERS = {"check": "no", "rating": 4, "answer": "Autumn"}


async def answer_subtasks(session: AsyncSession, project, rater: User) -> None:  # type: ignore[no-untyped-def]
    """The rater answers every subtask the queue gives them (the tree's leaves first)."""
    while (leased := await labeling.next_assignment(session, project=project, rater=rater)) is not None:
        if leased.item.kind == "comparison":
            await labeling.skip(session, assignment_id=leased.assignment.id, rater=rater, reason=None)
            await session.commit()
            break
        data = JudgmentCreate(answer=ANSWERS[leased.item.kind], rationale="The source says spring.")
        await labeling.submit(session, assignment_id=leased.assignment.id, rater=rater, data=data)
        await session.commit()


async def test_a_check_is_answered_by_keyboard(
    page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
) -> None:
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,))
    await import_items(session, project, admin, [tree_record()])
    await login(page, rater.email, PASSWORD)
    await open_label(page, project.id)
    slot = page.locator(CURRENT)
    assert await slot.locator("[data-question]").inner_text() == "CHECK Is the flood season right in A?"
    assert await slot.locator(".subtask-target .span-mark").inner_text() == "river floods in spring"
    legend = await slot.locator(".legend").inner_text()
    assert "y / n / u yes / no / unsure" in legend
    await screenshot(page, artifacts, "trees-check")
    assignment = await slot.get_attribute("data-assignment")
    await page.keyboard.press("Enter")  # nothing chosen yet: the page says so
    assert (await slot.locator("[data-error]").inner_text()).startswith("Answer the question before submitting")
    await page.keyboard.press("y")
    assert await slot.locator("input[value='a:yes']").is_checked()
    async with page.expect_response(lambda r: r.url.endswith("/judge") and r.request.method == "POST") as sent:
        await page.keyboard.press("Enter")
    assert (await sent.value).status == 200
    judgment = (await session.scalars(select(Judgment).execution_options(populate_existing=True))).one()
    assert str(judgment.assignment_id) == assignment
    assert judgment.answer == "yes"
    # The next subtask is a rating on 1 to 5: buttons with keys 1 to 5.
    slot = page.locator(CURRENT)
    assert await slot.locator("[data-question]").inner_text() == "RATING How complete is A?"
    await page.keyboard.press("4")
    assert await slot.locator("input[value='a:4']").is_checked()
    browser_log.assert_clean()


async def test_a_parent_shows_its_subtasks_results(
    page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
) -> None:
    admin = await create_user(session, role=Role.admin)
    helper, rater = await create_user(session), await create_user(session)
    project = await create_project(session, admin, members=(helper, rater), assistance="always")
    await import_items(session, project, admin, [tree_record()])
    await answer_subtasks(session, project, helper)
    await login(page, rater.email, PASSWORD)
    await open_label(page, project.id)
    slot = page.locator(CURRENT)
    results = slot.locator("[data-subtask-results]")
    assert await results.count() == 1
    items = results.locator(".subtask-result")
    assert await items.count() == 3
    first = await items.nth(0).inner_text()
    assert "Is the flood season right in A?" in first
    assert "about response" in first
    assert "100% agree" in first
    assert "river floods in spring" in first  # the span it concerns, quoted
    # Keyboard reachable: the results are focusable; collapsible by their summary.
    await items.nth(0).focus()
    assert await page.evaluate("document.activeElement.dataset.subtask") is not None
    await results.locator(".subtask-rationales").first.locator("summary").click()
    assert "The source says spring." in await items.nth(0).inner_text()
    await screenshot(page, artifacts, "trees-parent")
    await results.locator("summary").first.click()
    assert not await results.evaluate("d => d.open")
    browser_log.assert_clean()

"""The rater page with critiques, in Chromium: a critique beside its response with its span
highlighted, rated by keyboard; the rater's own critique with a quoted span (an emoji before
it, so UTF-16 and code points differ); the unassisted arm shows nothing. Screenshots: artifacts/critiques-*.png."""

import uuid
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Assignment, Critique, CritiqueRating, Judgment, ProjectMember, Role
from tests.critiques.conftest import EMOJI_TEXT, critiqued_items
from tests.factories import PASSWORD, create_project, create_user, import_items
from tests.web.conftest import BrowserLog, login, open_label, screenshot

CURRENT = "#queue > .slot:not([hidden])"


async def rater_on(session: AsyncSession, **settings: object):  # type: ignore[no-untyped-def]
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,), **settings)
    await import_items(session, project, admin, critiqued_items(3))
    return rater, project


async def test_rater_sees_highlighted_critique_and_rates_it_by_keyboard(
    page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
) -> None:
    rater, project = await rater_on(session, assistance="always", critique_ratings="required")
    await login(page, rater.email, PASSWORD)
    await open_label(page, project.id)
    slot = page.locator(CURRENT)
    mark = slot.locator(".span-mark")
    assert await mark.count() == 1
    assert await mark.inner_text() == EMOJI_TEXT[26:32]
    assert await slot.locator(".critique-text").inner_text() == "Paris is in France, not Italy."
    # The critique sits beside the response it concerns.
    panel = slot.locator(".candidate", has=page.locator(".span-mark"))
    assert await panel.locator(".critique").count() == 1
    await screenshot(page, artifacts, "critiques-assisted")
    # Required ratings: the page says so before sending.
    assignment = await slot.get_attribute("data-assignment")
    await page.keyboard.press("1")
    await page.keyboard.press("Enter")
    error = slot.locator("[data-error]")
    assert (await error.inner_text()).startswith("Rate every critique before submitting")
    # q reaches the critique, v rates it valid, + helpful, Esc back to the verdict, Enter sends.
    await page.keyboard.press("Escape")
    await page.keyboard.press("q")
    assert await page.evaluate("document.activeElement.dataset.critique") is not None
    await page.keyboard.press("v")
    await page.keyboard.press("+")
    await screenshot(page, artifacts, "critiques-rated")
    await page.keyboard.press("Escape")
    async with page.expect_response(lambda r: r.url.endswith("/judge") and r.request.method == "POST") as answer:
        await page.keyboard.press("Enter")
    assert (await answer.value).status == 200
    judgment = await session.scalar(select(Judgment).where(Judgment.assignment_id == uuid.UUID(str(assignment))))
    assert judgment is not None
    assert judgment.assistance_shown is True
    rating = (await session.scalars(select(CritiqueRating).where(CritiqueRating.judgment_id == judgment.id))).one()
    assert (rating.verdict, rating.helpful) == ("valid", True)
    browser_log.assert_clean()


async def test_rater_quotes_a_span_after_an_emoji(page, session: AsyncSession, browser_log: BrowserLog) -> None:
    rater, project = await rater_on(session, assistance="always")
    await login(page, rater.email, PASSWORD)
    await open_label(page, project.id)
    slot = page.locator(CURRENT)
    assignment = await slot.get_attribute("data-assignment")
    panel = slot.locator(".candidate", has=page.locator(".span-mark"))
    candidate = await panel.get_attribute("data-candidate")
    await panel.locator(".my-critique summary").click()
    # Select "is the capital" (code points 8-22; UTF-16 9-23 because of the emoji) in the response.
    selected = await page.evaluate(
        """(id) => {
            const slot = document.querySelector("#queue > .slot:not([hidden])");
            const root = slot.querySelector(`.candidate[data-candidate="${id}"] [data-span-root]`);
            const text = root.textContent;
            const start = AssaySpans.toUtf16(text, 8), end = AssaySpans.toUtf16(text, 22);
            const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
            let node, seen = 0, range = document.createRange(), startSet = false;
            while ((node = walker.nextNode())) {
                const len = node.nodeValue.length;
                if (!startSet && start <= seen + len) { range.setStart(node, start - seen); startSet = true; }
                if (end <= seen + len) { range.setEnd(node, end - seen); break; }
                seen += len;
            }
            const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
            return [start, end, sel.toString()];
        }""",
        candidate,
    )
    assert selected == [9, 23, EMOJI_TEXT[8:22]]
    await panel.locator("[data-quote]").click()
    await panel.locator(".my-critique textarea").fill("Wrong country.")
    await page.keyboard.press("Escape")
    await page.keyboard.press("1")
    async with page.expect_response(lambda r: r.url.endswith("/judge") and r.request.method == "POST") as answer:
        await page.keyboard.press("Enter")
    assert (await answer.value).status == 200
    judgment = await session.scalar(select(Judgment).where(Judgment.assignment_id == uuid.UUID(str(assignment))))
    assert judgment is not None
    mine = (await session.scalars(select(Critique).where(Critique.judgment_id == judgment.id))).one()
    assert (mine.text, mine.span_start, mine.span_end) == ("Wrong country.", 8, 22)
    assert EMOJI_TEXT[mine.span_start : mine.span_end] == "is the capital"
    browser_log.assert_clean()


async def test_unassisted_arm_shows_nothing(
    page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
) -> None:
    """The unassisted arm of an experiment (the server's decision, forced here for the first lease):
    the rater's own tools (flaws, their critique) but no trace of the critiques. A `never` project too."""
    for policy in ("experiment", "never"):
        rater, project = await rater_on(session, assistance=policy)
        if policy == "experiment":  # at ratio 0.5, one decision made and it was assisted: the next is not
            await session.execute(
                update(ProjectMember)
                .where(ProjectMember.user_id == rater.id, ProjectMember.project_id == project.id)
                .values(assist_leases=1, assist_shown=1)
            )
            await session.commit()
        await page.context.clear_cookies()
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        slot = page.locator(CURRENT)
        html = await slot.evaluate("s => s.outerHTML")
        assert "Paris is in France" not in html
        assert "span-mark" not in html
        assert "data-critique=" not in html
        assert "critic-1" not in html
        critique_ids = (await session.scalars(select(Critique.id).where(Critique.project_id == project.id))).all()
        assert critique_ids
        assert all(str(i) not in html for i in critique_ids)
        assignment = await session.get(Assignment, uuid.UUID(str(await slot.get_attribute("data-assignment"))))
        assert assignment is not None
        if policy == "experiment":
            assert assignment.assistance["shown"] is False
            assert await slot.locator("[data-flaws-of]").count() == 2  # the rater's own tools stay
            await screenshot(page, artifacts, "critiques-unassisted")
        else:
            assert assignment.assistance is None
            assert await page.locator("[data-critique], .span-mark").count() == 0  # the whole page
    browser_log.assert_clean()


async def test_settings_page_and_revision_page(
    page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
) -> None:
    rater, project = await rater_on(session, assistance="experiment", revision_window_minutes=30)
    admin = await create_user(session, role=Role.admin)
    await login(page, admin.email, PASSWORD)
    await page.goto(f"/admin/projects/{project.id}/settings")
    assert await page.is_checked("input[name=assistance][value=experiment]")
    await page.locator("#f-assistance_ratio").scroll_into_view_if_needed()
    await screenshot(page, artifacts, "critiques-settings")
    await page.context.clear_cookies()
    # A rater's assisted verdict with a rating, opened again for revision: the rating is shown as sent.
    await session.execute(
        update(ProjectMember)
        .where(ProjectMember.user_id == rater.id, ProjectMember.project_id == project.id)
        .values(assist_leases=1, assist_shown=0)
    )
    await session.commit()
    await login(page, rater.email, PASSWORD)
    await open_label(page, project.id)
    slot = page.locator(CURRENT)
    assert await slot.locator("[data-critique]").count() == 1
    await page.keyboard.press("q")
    await page.keyboard.press("n")
    await page.keyboard.press("-")
    await page.keyboard.press("Escape")
    await page.keyboard.press("2")
    async with page.expect_response(lambda r: r.url.endswith("/judge") and r.request.method == "POST"):
        await page.keyboard.press("Enter")
    await page.goto(f"/projects/{project.id}/label/undo")
    await page.wait_for_selector("[data-critique]")
    checked = await page.eval_on_selector_all("[data-critique] input:checked", "els => els.map(e => e.value)")
    assert checked == ["invalid", "no"]
    await screenshot(page, artifacts, "critiques-revise")
    browser_log.assert_clean()

"""Taking a verdict back on the rater page, in Chromium: Backspace and Undo (keyboard and mouse),
"my recent judgments", the ranking restart key that Backspace replaced, and screenshots."""

import uuid
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Judgment
from tests.factories import PASSWORD, native_items
from tests.web.conftest import BrowserLog, login, open_label, screenshot
from tests.web.test_browser_rater import CURRENT, current_assignment, press_and_wait, setup, shown_candidates

REVISE_URL = "**/judgments/*/revise?back=*"


async def stored(session: AsyncSession, assignment_id: str) -> Judgment:
    session.expunge_all()
    judgment = await session.scalar(select(Judgment).where(Judgment.assignment_id == uuid.UUID(assignment_id)))
    assert judgment is not None
    return judgment


class TestTakeItBack:
    async def test_backspace_right_after_enter_revises_that_verdict_by_keyboard(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        rater, (project,) = await setup(session, ({"name": "Revisable", "allow_tie": True}, native_items(4)))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        legend = await page.inner_text(f"{CURRENT} .legend")
        assert "Backspace take back your last verdict" in legend

        first = await current_assignment(page)
        shown = await shown_candidates(page)
        await page.keyboard.press("1")
        # Backspace while the verdict is still on its way: it is stored first, then opened.
        async with page.expect_navigation(url=REVISE_URL):
            await page.keyboard.press("Enter")
            await page.keyboard.press("Backspace")
        judgment = await stored(session, first)
        assert page.url.endswith(f"/judgments/{judgment.id}/revise?back=label")
        assert await page.is_checked(f"{CURRENT} input[data-keys='1 a']")  # the stored verdict, selected
        assert await page.locator("[data-skip]").count() == 0
        await screenshot(page, artifacts, "revise-1280")

        await page.keyboard.press("2")
        async with page.expect_navigation(url=f"**/projects/{project.id}/label"):
            await page.keyboard.press("Enter")
        await page.wait_for_selector("#queue > .slot:not([hidden])")
        assert "Revised: revision 2 of your verdict is stored" in await page.inner_text("#flash")
        judgment = await stored(session, first)
        assert (judgment.revision, judgment.choice_id) == (2, shown[1])
        # The queue carries on where it was: the item after the judged one.
        assert await current_assignment(page) != first

        # Backspace on the revision page goes back without changing anything.
        async with page.expect_navigation(url=REVISE_URL):
            await page.keyboard.press("Backspace")
        async with page.expect_navigation(url=f"**/projects/{project.id}/label"):
            await page.keyboard.press("Backspace")
        assert (await stored(session, first)).revision == 2
        browser_log.assert_clean()

    async def test_undo_button_and_my_recent_judgments_by_mouse(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        rater, (project,) = await setup(session, ({"name": "Mouse", "allow_tie": True}, native_items(4)))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        sent = []
        for label in ("A is better", "B is better"):
            sent.append(await current_assignment(page))
            await page.click(f"{CURRENT} label.choice:has-text('{label}')")
            async with page.expect_response(lambda r: r.url.endswith("/judge")):
                await page.click(f"{CURRENT} [data-submit]")
        await screenshot(page, artifacts, "label-undo-1280")
        async with page.expect_navigation(url=REVISE_URL):
            await page.click("[data-undo]")
        assert await page.is_checked(f"{CURRENT} label.choice:has-text('B is better') input")
        await page.click(f"{CURRENT} label.choice:has-text('Tie')")
        async with page.expect_navigation(url=f"**/projects/{project.id}/label"):
            await page.click(f"{CURRENT} [data-submit]")
        assert (await stored(session, sent[1])).tie

        await page.click("text=My recent judgments")
        await page.wait_for_url(f"**/projects/{project.id}/label/recent")
        rows = await page.locator(".recent-table tbody tr").all_inner_texts()
        assert len(rows) == 2
        assert "Tie" in rows[0]
        assert "revision 2" in rows[0]
        assert "A is better" in rows[1]
        await screenshot(page, artifacts, "recent-1280")
        older = await stored(session, sent[0])
        async with page.expect_navigation(url="**/revise?back=recent"):
            await page.click(f"tr[data-judgment='{older.id}'] a:has-text('Revise')")
        await page.click(f"{CURRENT} label.choice:has-text('B is better')")
        async with page.expect_navigation(url=f"**/projects/{project.id}/label/recent"):
            await page.click(f"{CURRENT} [data-submit]")
        assert "revision 2" in (await page.locator(".recent-table tbody tr").all_inner_texts())[1]
        assert (await stored(session, sent[0])).revision == 2

        await page.set_viewport_size({"width": 390, "height": 844})
        await screenshot(page, artifacts, "recent-390", full_page=True)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the recent judgments page scrolls sideways at 390 px ({width} px wide)"
        browser_log.assert_clean()

    async def test_a_closed_window_is_said_on_the_page(
        self, page, session: AsyncSession, browser_log: BrowserLog
    ) -> None:
        rater, (project,) = await setup(session, ({"name": "Closed", "revision_window_minutes": 1}, native_items(2)))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        first = await current_assignment(page)
        await page.keyboard.press("1")
        await press_and_wait(page, "Enter", f"/assignments/{first}/judge")
        async with page.expect_navigation(url=REVISE_URL):
            await page.keyboard.press("Backspace")
        await session.execute(text("UPDATE judgments SET created_at = now() - interval '2 minutes'"))
        await session.commit()
        await page.keyboard.press("2")
        async with page.expect_response(lambda r: "/revise" in r.url and r.request.method == "POST") as answer:
            await page.keyboard.press("Enter")
        assert (await answer.value).status == 409
        await page.wait_for_selector("#revise-error")
        assert "The time to revise this judgment ran out at" in await page.inner_text("#revise-error")
        assert (await stored(session, first)).revision == 1
        browser_log.assert_clean()

    async def test_revision_off_has_no_undo(self, page, session: AsyncSession) -> None:
        rater, (project,) = await setup(session, ({"name": "Final", "revision_window_minutes": 0}, native_items(2)))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        assert await page.locator("[data-undo]").count() == 0
        assert "Backspace" not in await page.inner_text(f"{CURRENT} .legend")
        first = await current_assignment(page)
        await page.keyboard.press("1")
        await press_and_wait(page, "Enter", f"/assignments/{first}/judge")
        await page.keyboard.press("Backspace")
        await page.wait_for_timeout(300)
        assert page.url.endswith(f"/projects/{project.id}/label")


class TestRankingRestartKey:
    async def test_escape_starts_the_ranking_over(self, page, session: AsyncSession) -> None:
        rater, (project,) = await setup(session, ({"name": "Rank"}, native_items(2, candidates=3)))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        assert "Esc starts over" in await page.inner_text(f"{CURRENT} .legend")
        await page.keyboard.press("b")
        await page.keyboard.press("a")
        assert (await page.inner_text(f"{CURRENT} [data-rank-status]")).startswith("Your ranking: B > A")
        await page.keyboard.press("Escape")
        assert await page.inner_text(f"{CURRENT} [data-rank-status]") == (
            "Not ranked yet: press the letters in order, best first."
        )
        assert page.url.endswith(f"/projects/{project.id}/label")

    async def test_a_ranking_comes_back_placed_and_is_revised_by_letters(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        rater, (project,) = await setup(session, ({"name": "Rank again"}, native_items(2, candidates=3)))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        first = await current_assignment(page)
        shown = await shown_candidates(page)
        for key in ("b", "a"):
            await page.keyboard.press(key)
        await press_and_wait(page, "Enter", f"/assignments/{first}/judge")
        async with page.expect_navigation(url=REVISE_URL):
            await page.keyboard.press("Backspace")
        assert (await page.inner_text(f"{CURRENT} [data-rank-status]")) == "Your ranking: B > A > C"
        await screenshot(page, artifacts, "revise-ranking-1280")
        await page.keyboard.press("Escape")
        for key in ("c", "b"):
            await page.keyboard.press(key)
        async with page.expect_navigation(url=f"**/projects/{project.id}/label"):
            await page.keyboard.press("Enter")
        judgment = await stored(session, first)
        assert (judgment.revision, judgment.ranking) == (2, [shown[2], shown[1], shown[0]])
        browser_log.assert_clean()


class TestRevisePageLegend:
    async def test_it_lists_only_keys_that_work_there_and_each_does_what_it_says(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        rater, (project,) = await setup(session, ({"name": "Legend", "allow_tie": True}, native_items(3)))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        first = await current_assignment(page)
        await page.keyboard.press("1")
        async with page.expect_navigation(url=REVISE_URL):
            await page.keyboard.press("Enter")
            await page.keyboard.press("Backspace")
        legend = page.locator(f"{CURRENT} .legend .legend-item")
        items = [(await i.locator("kbd").inner_text(), await i.inner_text()) for i in await legend.all()]
        assert [k for k, _ in items] == ["1 / a, 2 / b", "t", "Enter", "↓ ↑", "Shift+↓ ↑", "Backspace", "r", "Esc"]
        assert "i instructions" not in await page.inner_text(f"{CURRENT} .legend")
        assert await page.locator("[data-instructions]").count() == 0  # what `i` would open is not on this page
        assert await page.locator("[data-skip], [data-skip-code], [data-skip-text]").count() == 0  # no skipping here
        await screenshot(page, artifacts, "revise-legend-1280")

        # Each key in the legend works here.
        await page.keyboard.press("2")
        assert await page.is_checked(f"{CURRENT} input[data-keys='2 b']")
        await page.keyboard.press("t")
        assert await page.is_checked(f"{CURRENT} input[value=tie]")
        await page.keyboard.press("a")
        assert await page.is_checked(f"{CURRENT} input[data-keys='1 a']")
        await page.keyboard.press("r")
        assert await page.evaluate("document.activeElement.name") == "rationale"
        await page.keyboard.press("Escape")
        assert await page.evaluate("document.activeElement.name") != "rationale"
        await page.eval_on_selector_all(
            f"{CURRENT} .candidate .text", "els => els.forEach(e => { e.textContent = 'line\\n'.repeat(80); })"
        )
        top = "(l) => document.querySelector(`#queue > .slot:not([hidden]) [data-scroll=${l}]`).scrollTop"
        await page.keyboard.press("ArrowDown")
        assert await page.evaluate(top, "A") > 0
        await page.keyboard.press("Shift+ArrowDown")
        assert await page.evaluate(top, "B") > 0
        # Backspace goes back without changing the stored verdict; Enter saves a revision.
        async with page.expect_navigation(url=f"**/projects/{project.id}/label"):
            await page.keyboard.press("Backspace")
        assert (await stored(session, first)).revision == 1
        async with page.expect_navigation(url=REVISE_URL):
            await page.goto(f"/judgments/{(await stored(session, first)).id}/revise?back=label")
        await page.keyboard.press("2")
        async with page.expect_navigation(url=f"**/projects/{project.id}/label"):
            await page.keyboard.press("Enter")
        assert (await stored(session, first)).revision == 2
        browser_log.assert_clean()

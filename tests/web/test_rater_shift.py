"""The rater page as a shift, measured in a real browser on the HH-RLHF sample: responses first at
1280x800 (also on a first visit), a compact verdict bar, folded conversations, scroll keys, the
instructions' remembered state, the phone, text size, the dark theme, the break reminder, touch
wording and skipping with a reason. Screenshots go to artifacts/."""

import io
import json
import os
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.batches import service as batches
from server.batches.formats.readers import Encoding
from server.batches.formats.records import ImportFormat
from server.labeling import pages
from server.models import Assignment, Project, Role, User
from tests.factories import PASSWORD, create_project, create_user, import_items, native_items
from tests.web.conftest import ARTIFACTS, BrowserLog, login, open_label, screenshot
from tests.web.fold import INSTRUCTIONS, SWAP_PROBE_JS, hh_sample, measure

CURRENT = "#queue > .slot:not([hidden])"
HH_SETTINGS: dict[str, Any] = {
    "name": "HH-RLHF harmless",
    "instructions": INSTRUCTIONS,
    "scale": "4-point",
    "allow_tie": True,
    "allow_both_bad": True,
    "rationale": "optional",
}


async def hh_project(session: AsyncSession, n: int, **settings: Any) -> tuple[User, Project]:
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,), **(HH_SETTINGS | settings))
    await batches.import_file(
        session,
        project=project,
        file=io.BytesIO(hh_sample(n)),
        filename="hh.jsonl",
        name="HH sample",
        format=ImportFormat.HH,
        encoding=Encoding.JSONL,
        priority=0,
        actor=admin,
    )
    await session.commit()
    return rater, project


async def judge(page, key: str = "1") -> None:  # type: ignore[no-untyped-def]
    """Pick a verdict and submit; wait for the server's answer (the next item is on screen at once)."""
    shown = await page.get_attribute(CURRENT, "data-assignment")
    await page.keyboard.press(key)
    async with page.expect_response(lambda r: r.url.endswith(f"/assignments/{shown}/judge")) as answer:
        await page.keyboard.press("Enter")
    assert (await answer.value).status == 200


class TestResponsesFirst:
    async def test_first_lines_of_both_responses_above_the_fold_on_hh(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        rater, project = await hh_project(session, 100)
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)  # a first visit: nothing stored in this browser
        await screenshot(page, artifacts, "rater-hh-first-visit-1280x800")
        await page.evaluate(SWAP_PROBE_JS)
        results = []
        for _ in range(100):
            results.append(await measure(page))
            await judge(page)
        assert await page.inner_text(f"{CURRENT} h2") == "All done for now"
        passed = sum(all(c["ok"] for c in r["candidates"]) for r in results)
        swaps = await page.evaluate("window.__swaps")
        assert len(swaps) == 100
        assert all(s["swapped"] for s in swaps), "the next item was not on screen when Enter's handlers had run"
        report = {"viewport": "1280x800", "items": len(results), "passed": passed, "results": results, "swaps": swaps}
        out = Path(os.environ.get("ASSAY_FOLD_REPORT", ARTIFACTS / "fold-after.json"))
        out.write_text(json.dumps(report, indent=1))
        failing = [i for i, r in enumerate(results) if not all(c["ok"] for c in r["candidates"])]
        assert passed >= 90, f"only {passed} of 100 items show 5 lines of both responses; failing: {failing[:20]}"
        browser_log.assert_clean()

    async def test_compact_bar_folded_turns_scroll_keys_and_remembered_instructions(
        self, page, session: AsyncSession, browser_log: BrowserLog
    ) -> None:
        rater, project = await hh_project(session, 12)
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        # First visit at 1280 wide: the instructions are open, beside the item (not above it).
        instructions = await page.locator("[data-instructions]").bounding_box()
        item = await page.locator(CURRENT).bounding_box()
        assert instructions is not None
        assert item is not None
        assert await page.get_attribute("[data-instructions]", "open") is not None
        assert instructions["x"] >= item["x"] + item["width"]
        # The page itself does not scroll: the panels do.
        assert await page.evaluate("document.scrollingElement.scrollHeight <= window.innerHeight")

        # The verdict bar keeps its height when the rationale box is focused and typed in.
        bar = f"{CURRENT} form.verdict"
        before = await page.eval_on_selector(bar, "e => e.getBoundingClientRect().height")
        await page.keyboard.press("r")
        await page.keyboard.type("A declines politely.\nIt also explains why.")
        after = await page.eval_on_selector(bar, "e => e.getBoundingClientRect().height")
        assert after == before
        await page.keyboard.press("Escape")

        # The legend names the scroll keys; they scroll A and B each in its own panel.
        legend = await page.inner_text(f"{CURRENT} .legend")
        assert "↓ ↑ scroll A" in legend
        assert "Shift+↓ ↑ scroll B" in legend
        # Make both responses long enough to scroll (the text is the page's own, so this is layout only).
        await page.eval_on_selector_all(
            f"{CURRENT} .candidate .text", "els => els.forEach(e => { e.textContent = 'line\\n'.repeat(80); })"
        )
        top = "(l) => document.querySelector(`#queue > .slot:not([hidden]) [data-scroll=${l}]`).scrollTop"
        await page.keyboard.press("ArrowDown")
        assert await page.evaluate(top, "A") > 0
        assert await page.evaluate(top, "B") == 0
        await page.keyboard.press("Shift+ArrowDown")
        assert await page.evaluate(top, "B") > 0
        await page.keyboard.press("ArrowUp")
        assert await page.evaluate(top, "A") == 0

        # A long conversation shows its last two turns; the earlier ones are folded and open on demand.
        for _ in range(12):
            folded = await page.locator(f"{CURRENT} .prompt details.earlier").count()
            if folded:
                break
            await judge(page)
        assert folded == 1
        shown = await page.locator(f"{CURRENT} .prompt .panel-body > .chat > .msg").count()
        assert shown == 2
        assert not await page.locator(f"{CURRENT} .prompt details.earlier .msg").first.is_visible()
        await page.click(f"{CURRENT} .prompt details.earlier > summary")
        assert await page.locator(f"{CURRENT} .prompt details.earlier .msg").first.is_visible()

        # Closing the instructions is remembered for this project, across reloads.
        await page.keyboard.press("i")
        assert await page.get_attribute("[data-instructions]", "open") is None
        await open_label(page, project.id)
        assert await page.get_attribute("[data-instructions]", "open") is None
        line = await page.inner_text("[data-instructions] .instructions-line")
        assert line.startswith("How to judge Read the whole conversation")
        browser_log.assert_clean()


class TestShift:
    async def test_session_progress_break_reminder_text_size_and_dark_theme(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        rater, project = await hh_project(session, 6, break_reminder_minutes=1)
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        assert await page.inner_text("[data-judged-session]") == "0"
        await judge(page)
        await judge(page, "t")
        assert await page.inner_text("[data-judged-session]") == "2"
        assert await page.inner_text("[data-judged-today]") == "2"
        assert await page.is_hidden("[data-break]")
        await screenshot(page, artifacts, "rater-hh-1280x800-light")

        # A minute on task (stored for this tab, as after a minute of work) brings the reminder.
        key = f"assay:shift:{project.id}"
        await page.goto("/")  # this tab's sessionStorage, without the rater page writing it meanwhile
        await page.evaluate(
            "([k, v]) => sessionStorage.setItem(k, v)",
            [key, json.dumps({"judged": 2, "activeMs": 61000, "sinceBreakMs": 61000})],
        )
        await open_label(page, project.id)
        await page.locator("[data-break]").wait_for(state="visible")
        assert "Time for a short break?" in await page.inner_text("[data-break]")
        assert await page.inner_text("[data-time-on-task]") == "1 min"
        assert await page.inner_text("[data-judged-session]") == "2"
        await page.click("[data-break-dismiss]")
        assert await page.is_hidden("[data-break]")

        # Text size and theme are remembered across pages.
        size = f"parseFloat(getComputedStyle(document.querySelector('{CURRENT} .candidate .text')).fontSize)"
        normal = await page.evaluate(size)
        await page.click("[data-text-step='1']")
        await page.click("[data-text-step='1']")
        larger = await page.evaluate(size)
        assert larger > normal
        await page.click("[data-theme-toggle]")
        assert await page.get_attribute("html", "data-theme") == "dark"
        assert await page.get_attribute("[data-theme-toggle]", "aria-pressed") == "true"
        await open_label(page, project.id)
        assert await page.get_attribute("html", "data-theme") == "dark"
        assert await page.evaluate(size) == larger
        background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"
        await page.click("[data-text-step='-1']")
        await page.click("[data-text-step='-1']")
        await screenshot(page, artifacts, "rater-hh-1280x800-dark")
        await page.set_viewport_size({"width": 390, "height": 844})
        await screenshot(page, artifacts, "rater-hh-390x844-dark")
        browser_log.assert_clean()

    async def test_phone_with_touch_wording(
        self, browser, live_server: str, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        rater, project = await hh_project(session, 4)
        context = await browser.new_context(
            base_url=live_server, viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
        )
        page = await context.new_page()
        page.on("pageerror", lambda e: browser_log.page_errors.append(str(e)))
        try:
            await login(page, rater.email, PASSWORD)
            await open_label(page, project.id)
            # First visit on a phone: one line of instructions, the responses follow.
            assert await page.get_attribute("[data-instructions]", "open") is None
            assert await page.is_hidden(f"{CURRENT} .legend")
            assert await page.is_hidden(f"{CURRENT} [data-submit] kbd")
            await screenshot(page, artifacts, "rater-hh-390x844-light")
            await screenshot(page, artifacts, "rater-hh-390x844-light-full", full_page=True)
            first = await page.get_attribute(CURRENT, "data-assignment")
            await page.tap(f"{CURRENT} [data-submit]")
            assert await page.inner_text(f"#error-{first}") == pages.NO_VERDICT_TOUCH
            await page.tap(f"{CURRENT} label.choice >> nth=0")
            async with page.expect_response(lambda r: r.url.endswith(f"/assignments/{first}/judge")) as answer:
                await page.tap(f"{CURRENT} [data-submit]")
            assert (await answer.value).status == 200
            assert await page.get_attribute(CURRENT, "data-assignment") != first
            assert await page.inner_text("[data-judged-session]") == "1"
            # Nothing is wider than the phone.
            assert await page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
        finally:
            await context.close()
        browser_log.assert_clean()


class TestSkipWithReason:
    async def test_skip_reason_from_the_page_is_stored(
        self, page, session: AsyncSession, browser_log: BrowserLog
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        project = await create_project(session, admin, members=(rater,), name="Skips")
        await import_items(session, project, admin, native_items(3))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        first = await page.get_attribute(CURRENT, "data-assignment")
        assert await page.is_hidden(f"{CURRENT} [data-skip-text]")
        await page.select_option(f"{CURRENT} [data-skip-code]", "harmful")
        await page.fill(f"{CURRENT} [data-skip-text]", "Graphic violence.")
        await page.focus(f"{CURRENT} h2")
        async with page.expect_response(lambda r: r.url.endswith(f"/assignments/{first}/skip")) as answer:
            await page.keyboard.press("s")
        assert (await answer.value).status == 200
        second = await page.get_attribute(CURRENT, "data-assignment")
        await page.wait_for_timeout(450)  # a skip within 0.4 s of a swap is taken for a bounced key
        async with page.expect_response(lambda r: r.url.endswith(f"/assignments/{second}/skip")):
            await page.keyboard.press("s")
        rows = {
            a.id: (a.status, a.skip_reason_code, a.skip_reason)
            for a in await session.scalars(select(Assignment).where(Assignment.rater_id == rater.id))
        }
        assert rows[uuid.UUID(first)] == ("skipped", "harmful", "Graphic violence.")
        assert rows[uuid.UUID(str(second))] == ("skipped", None, None)
        browser_log.assert_clean()

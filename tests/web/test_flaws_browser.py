"""Flaw marking on the rater page, in Chromium: a flaw marked with the mouse (a real drag over a span
after an emoji, so UTF-16 and code points differ) and one by keyboard (m, Shift+→, Enter, note,
Enter), both listed under their response and highlighted; one removed before sending; the verdict
sent with its flaws; the admin item page lists them. Screenshots: artifacts/flaws-*.png."""

import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Flaw, Judgment, Role
from tests.critiques.conftest import EMOJI_TEXT
from tests.factories import PASSWORD, create_project, create_user, import_items
from tests.web.conftest import BrowserLog, login, open_label, screenshot
from tests.web.test_browser_critiques import CURRENT, rater_on

HIGHLIGHTED = "CSS.highlights.get('assay-flaw') ? CSS.highlights.get('assay-flaw').size : 0"


async def test_rater_marks_flaws_by_mouse_and_keyboard(
    page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
) -> None:
    rater, project = await rater_on(session, assistance="always")
    await login(page, rater.email, PASSWORD)
    await open_label(page, project.id)
    slot = page.locator(CURRENT)
    assignment = await slot.get_attribute("data-assignment")
    panel = slot.locator(".candidate", has=page.locator(".span-mark"))  # the response with the emoji
    candidate = await panel.get_attribute("data-candidate")
    # --- the mouse: drag over "Italy." (code points 26-32), then the button.
    rects = await page.evaluate(
        """(id) => {
            const slot = document.querySelector("#queue > .slot:not([hidden])");
            const root = slot.querySelector(`.candidate[data-candidate="${id}"] [data-span-root]`);
            const range = AssaySpans.rangeOf(root, 26, 32);
            const all = range.getClientRects();
            const a = all[0], b = all[all.length - 1];
            return [a.left, a.top + a.height / 2, b.right, b.top + b.height / 2];
        }""",
        candidate,
    )
    await page.mouse.move(rects[0] + 1, rects[1])
    await page.mouse.down()
    await page.mouse.move((rects[0] + rects[2]) / 2, rects[3], steps=4)
    await page.mouse.move(rects[2] - 1, rects[3], steps=4)
    await page.mouse.up()
    assert await page.evaluate("String(window.getSelection())") == "Italy."
    await panel.locator("[data-mark-flaw]").click()
    new = panel.locator("[data-flaw-new]")
    assert await new.is_visible()
    assert await new.locator("[data-flaw-quote]").inner_text() == "Italy."
    await new.locator("[data-flaw-severity]").select_option("critical")
    await new.locator("[data-flaw-note]").fill("Paris is in France.")
    await new.locator("[data-flaw-add]").click()
    assert await panel.locator("[data-flaw]").count() == 1
    assert await page.evaluate(HIGHLIGHTED) == 1
    # --- the keyboard: m starts at the first word of response A; Shift+→ takes two words.
    await slot.locator("h2").focus()
    await page.keyboard.press("m")
    assert await slot.evaluate("s => s.classList.contains('marking')")
    first = slot.locator(".candidate").first
    first_id = await first.get_attribute("data-candidate")
    words = (await first.locator("[data-span-root]").first.text_content() or "").split()
    assert await page.evaluate("String(window.getSelection())") == words[0]
    await page.keyboard.press("Shift+ArrowRight")
    assert await page.evaluate("String(window.getSelection())") == f"{words[0]} {words[1]}"
    await screenshot(page, artifacts, "flaws-keyboard-marking")
    await page.keyboard.press("Enter")
    focused = await page.evaluate("document.activeElement.hasAttribute('data-flaw-severity')")
    assert focused
    await page.keyboard.press("Tab")
    await page.keyboard.type("Starts badly.")
    await page.keyboard.press("Enter")
    assert await first.locator("[data-flaw]").count() >= 1
    assert await page.evaluate(HIGHLIGHTED) == 2
    # A third flaw by keyboard (the next word), removed before sending.
    await slot.locator("h2").focus()
    await page.keyboard.press("m")
    await page.keyboard.press("ArrowRight")
    await page.keyboard.press("ArrowRight")
    await page.keyboard.press("Enter")
    await page.keyboard.press("Enter")
    assert await slot.locator("[data-flaw]").count() == 3
    assert await page.evaluate(HIGHLIGHTED) == 3
    await screenshot(page, artifacts, "flaws-listed")
    await first.locator("[data-flaw]").last.locator("[data-flaw-remove]").click()  # the third, in A
    assert await slot.locator("[data-flaw]").count() == 2
    assert await page.evaluate(HIGHLIGHTED) == 2
    await screenshot(page, artifacts, "flaws-rater")
    # Send the verdict: the flaws go with it.
    await slot.locator("h2").focus()
    await page.keyboard.press("1")
    async with page.expect_response(lambda r: r.url.endswith("/judge") and r.request.method == "POST") as answer:
        await page.keyboard.press("Enter")
    assert (await answer.value).status == 200
    judgment = await session.scalar(select(Judgment).where(Judgment.assignment_id == uuid.UUID(str(assignment))))
    assert judgment is not None
    flaws = (await session.scalars(select(Flaw).where(Flaw.judgment_id == judgment.id).order_by(Flaw.position))).all()
    by_note = {f.note: f for f in flaws}
    assert set(by_note) == {"Paris is in France.", "Starts badly."}
    mouse, keys = by_note["Paris is in France."], by_note["Starts badly."]
    assert (str(mouse.candidate_id), mouse.span_start, mouse.span_end, mouse.severity) == (
        candidate,
        26,
        32,
        "critical",
    )
    assert EMOJI_TEXT[26:32] == "Italy."
    assert (str(keys.candidate_id), keys.span_start, keys.severity) == (first_id, 0, "major")
    assert keys.span_end == len(f"{words[0]} {words[1]}")
    browser_log.assert_clean()
    # --- the admin item page lists them.
    admin = await create_user(session, role=Role.admin)
    await page.context.clear_cookies()
    await login(page, admin.email, PASSWORD)
    await page.goto(f"/admin/items/{judgment.item_id}")
    cell = page.locator(f"#j-{judgment.id} [data-label='Flaws marked']")
    assert await cell.locator("li").count() == 2
    assert "Paris is in France." in await cell.inner_text()
    assert "Italy." in await cell.inner_text()
    await page.locator(f"#j-{judgment.id}").scroll_into_view_if_needed()
    await screenshot(page, artifacts, "flaws-admin-item")
    # Plant a flaw from a selection in the response: "Italy" (26-31), which the rater's mark overlaps.
    await page.evaluate(
        """(id) => {
            const root = document.querySelector(`[data-planted-in="${id}"] [data-span-root]`);
            const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(AssaySpans.rangeOf(root, 26, 31));
        }""",
        candidate,
    )
    await page.locator("[data-use-selection]").click()
    form = page.locator("[data-plant-form]")
    assert (await form.locator("[name=start]").input_value(), await form.locator("[name=end]").input_value()) == (
        "26",
        "31",
    )
    await form.locator("[name=description]").fill("Italy instead of France.")
    async with page.expect_navigation():
        await form.locator("button[type=submit]").click()
    planted = page.locator(".planted-list li")
    assert await planted.count() == 1
    assert "caught by 1 of 1 rater" in await planted.inner_text()
    assert await page.locator(".item-view .span-mark").inner_text() == "Italy"
    await screenshot(page, artifacts, "flaws-admin-planted", full_page=True)
    browser_log.assert_clean()


CONTROL_TEXT = "Bell\x07 then\x1b[1m Paris is in Italy."  # two control characters before the flaw
CONTROL_ITEM = {
    "id": "ctl-1",
    "prompt": "Where is Paris?",
    "responses": [{"text": CONTROL_TEXT}, {"text": "Paris is in France."}],
    "critiques": [{"candidate": 0, "text": "Not Italy.", "author": "critic-1", "span": [27, 33]}],
}
SYMBOLS = "els => els.map(e => getComputedStyle(e, '::before').content)"
# The width the control characters themselves take on screen (their symbol stands in for them).
RAW_WIDTH = """els => els.map(e => {
    const range = document.createRange();
    range.selectNodeContents(e);
    return range.getBoundingClientRect().width;
})"""


async def test_control_characters_show_a_symbol_and_keep_offsets(
    page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
) -> None:
    """A flaw dragged with the mouse after two control characters: the page shows a symbol for each
    (CSS, not text), and the stored span counts the response's own characters."""
    assert CONTROL_TEXT[27:33] == "Italy."
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,), assistance="always")
    await import_items(session, project, admin, [CONTROL_ITEM])
    await login(page, rater.email, PASSWORD)
    await open_label(page, project.id)
    slot = page.locator(CURRENT)
    panel = slot.locator(".candidate", has=page.locator(".span-mark"))
    assert await panel.locator(".span-mark").inner_text() == "Italy."
    assert await panel.locator(".ctl").evaluate_all(SYMBOLS) == ['"\u2407"', '"\u241b"']
    assert await panel.locator(".ctl").evaluate_all(RAW_WIDTH) == [0, 0]
    # Drag over "Italy." as a person would: the rectangles come from the text nodes themselves.
    rects = await panel.locator("[data-span-root]").evaluate(
        """root => {
            const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
            let node;
            while ((node = walker.nextNode())) {
                const at = node.nodeValue.indexOf("Italy.");
                if (at < 0) continue;
                const range = document.createRange();
                range.setStart(node, at);
                range.setEnd(node, at + 6);
                const r = range.getBoundingClientRect();
                return [r.left, r.top + r.height / 2, r.right];
            }
            return null;
        }"""
    )
    await page.mouse.move(rects[0] + 1, rects[1])
    await page.mouse.down()
    await page.mouse.move(rects[2] - 1, rects[1], steps=6)
    await page.mouse.up()
    assert await page.evaluate("String(window.getSelection())") == "Italy."
    await panel.locator("[data-mark-flaw]").click()
    await panel.locator("[data-flaw-add]").click()
    await screenshot(page, artifacts, "flaws-control-characters")
    assignment = await slot.get_attribute("data-assignment")
    await slot.locator("h2").focus()
    await page.keyboard.press("2")
    async with page.expect_response(lambda r: r.url.endswith("/judge") and r.request.method == "POST") as answer:
        await page.keyboard.press("Enter")
    assert (await answer.value).status == 200
    judgment = await session.scalar(select(Judgment).where(Judgment.assignment_id == uuid.UUID(str(assignment))))
    assert judgment is not None
    flaw = (await session.scalars(select(Flaw).where(Flaw.judgment_id == judgment.id))).one()
    assert (flaw.span_start, flaw.span_end) == (27, 33)
    browser_log.assert_clean()
    # The admin item page draws the same symbols (its own stylesheet) around the planted-flaw highlights.
    await page.context.clear_cookies()
    await login(page, admin.email, PASSWORD)
    await page.goto(f"/admin/items/{judgment.item_id}")
    response = page.locator(f"[data-planted-in='{flaw.candidate_id}']")
    assert await response.locator(".ctl").evaluate_all(SYMBOLS) == ['"\u2407"', '"\u241b"']
    await screenshot(page, artifacts, "flaws-control-characters-admin")
    browser_log.assert_clean()

"""The rater page in a real browser: keyboard-only judging, ranking, inert model output,
double clicks, lost connections, refusals, heartbeat, and screenshots to look at."""

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.demo import DEMO_FILE, INSTRUCTIONS
from server.labeling import pages
from server.labeling.rules import RATIONALE_REQUIRED
from server.models import Assignment, Item, Judgment, Project, Role, User
from tests.factories import PASSWORD, create_project, create_user, import_items, native_items
from tests.web.conftest import BrowserLog, login, open_label, screenshot

CURRENT = "#queue > .slot:not([hidden])"
EVIL = "<script>alert(1)</script>\n<img src=x onerror=alert(1)>\n[click me](javascript:alert(1))"


async def setup(
    session: AsyncSession, *projects: tuple[dict[str, Any], list[dict[str, Any]]]
) -> tuple[User, list[Project]]:
    """A rater sharing the given projects (settings, items)."""
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    made = []
    for settings, items in projects:
        project = await create_project(session, admin, members=(rater,), **settings)
        await import_items(session, project, admin, items)
        made.append(project)
    return rater, made


async def current_assignment(page) -> str:  # type: ignore[no-untyped-def]
    value = await page.get_attribute(CURRENT, "data-assignment")
    assert value is not None, "no item on screen"
    return value


async def shown_candidates(page) -> list[uuid.UUID]:  # type: ignore[no-untyped-def]
    ids = await page.eval_on_selector_all(f"{CURRENT} .candidate", "els => els.map(e => e.dataset.candidate)")
    return [uuid.UUID(i) for i in ids]


async def press_and_wait(page, key: str, path: str) -> None:  # type: ignore[no-untyped-def]
    """Press a key that sends the item away, and wait until the server has answered."""
    async with page.expect_response(lambda r: r.url.endswith(path) and r.request.method == "POST") as answer:
        await page.keyboard.press(key)
    response = await answer.value
    assert response.status == 200, await response.text()


async def judgment_of(session: AsyncSession, assignment_id: str) -> Judgment:
    judgment = await session.scalar(select(Judgment).where(Judgment.assignment_id == uuid.UUID(assignment_id)))
    assert judgment is not None, f"no judgment stored for {assignment_id}"
    return judgment


async def stored_order(session: AsyncSession, assignment_id: str) -> list[uuid.UUID]:
    assignment = await session.get(Assignment, uuid.UUID(assignment_id))
    assert assignment is not None
    await session.refresh(assignment)
    return list(assignment.shown_order)


class TestKeyboardOnly:
    async def test_binary_and_eight_point_with_rationale_and_skip(
        self, page, session: AsyncSession, browser_log: BrowserLog
    ) -> None:
        rater, (binary, eight) = await setup(
            session,
            ({"name": "Binary", "rationale": "optional"}, native_items(3, prefix="bin")),
            ({"name": "Eight", "scale": "8-point", "allow_tie": True}, native_items(3, prefix="eight")),
        )
        await login(page, rater.email, PASSWORD)
        await open_label(page, binary.id)
        seen: dict[str, list[uuid.UUID]] = {}

        async def on_screen() -> str:
            assignment = await current_assignment(page)
            seen[assignment] = await shown_candidates(page)
            return assignment

        first = await on_screen()
        await page.keyboard.press("2")
        assert await page.is_checked(f"{CURRENT} input[data-keys='2 b']")
        await press_and_wait(page, "Enter", f"/assignments/{first}/judge")

        second = await on_screen()
        assert second != first
        await page.keyboard.press("r")
        typed = "1 2 s t x: B invents a fact; A is right."
        await page.keyboard.type(typed)  # keys must not fire while typing
        assert await page.eval_on_selector_all(f"{CURRENT} input[name=verdict]:checked", "els => els.length") == 0
        assert await current_assignment(page) == second
        await page.keyboard.press("Escape")
        await page.keyboard.press("a")
        await press_and_wait(page, "Enter", f"/assignments/{second}/judge")

        third = await on_screen()
        await page.wait_for_timeout(500)  # a skip within 0.4 s of a swap is taken for a bounced key
        await press_and_wait(page, "s", f"/assignments/{third}/skip")
        assert await page.inner_text(f"{CURRENT} h2") == "All done for now"

        await open_label(page, eight.id)
        verdicts = {}
        for key in ("8", "3", "t"):
            assignment = await on_screen()
            await page.keyboard.press(key)
            await press_and_wait(page, "Enter", f"/assignments/{assignment}/judge")
            verdicts[key] = assignment
        assert await page.inner_text(f"{CURRENT} h2") == "All done for now"
        assert await page.inner_text("[data-judged-today]") == "3"

        # What the browser showed is what the database says it showed, and what was stored.
        for assignment, shown in seen.items():
            assert shown == await stored_order(session, assignment)
        j = await judgment_of(session, first)
        assert (j.choice_id, j.strength, j.rationale) == (seen[first][1], None, None)
        j = await judgment_of(session, second)
        assert (j.choice_id, j.rationale) == (seen[second][0], typed)
        skipped = await session.get(Assignment, uuid.UUID(third))
        assert skipped is not None
        assert skipped.status == "skipped"
        j = await judgment_of(session, verdicts["8"])
        assert (j.choice_id, j.strength) == (seen[verdicts["8"]][1], 4)
        j = await judgment_of(session, verdicts["3"])
        assert (j.choice_id, j.strength) == (seen[verdicts["3"]][0], 2)
        j = await judgment_of(session, verdicts["t"])
        assert (j.tie, j.choice_id, j.strength) == (True, None, None)
        rows = list(await session.scalars(select(Judgment).where(Judgment.rater_id == rater.id)))
        assert len(rows) == 5
        assert all(r.active_ms is not None and r.active_ms > 0 for r in rows)
        browser_log.assert_clean()

    async def test_ranking_by_letters_and_by_drag(self, page, session: AsyncSession, browser_log: BrowserLog) -> None:
        rater, (project,) = await setup(session, ({"name": "Rank"}, native_items(6, candidates=4)))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)

        first = await current_assignment(page)
        shown = await shown_candidates(page)
        for key in ("c", "a", "d"):
            await page.keyboard.press(key)
        assert await page.inner_text(f"{CURRENT} [data-rank-status]") == "Your ranking: C > A > D > B"
        await press_and_wait(page, "Enter", f"/assignments/{first}/judge")
        j = await judgment_of(session, first)
        assert j.ranking == [shown[2], shown[0], shown[3], shown[1]]

        second = await current_assignment(page)
        shown = await shown_candidates(page)
        await page.drag_and_drop(
            f"{CURRENT} li[data-label=D]", f"{CURRENT} li[data-label=A]", target_position={"x": 5, "y": 2}
        )
        assert await page.inner_text(f"{CURRENT} [data-rank-status]") == "Your ranking: D > A > B > C"
        await press_and_wait(page, "Enter", f"/assignments/{second}/judge")
        j = await judgment_of(session, second)
        assert j.ranking == [shown[3], shown[0], shown[1], shown[2]]

        # Typing every letter, the last one too, keeps the order typed (it used to start over on the last).
        third = await current_assignment(page)
        shown = await shown_candidates(page)
        for key in ("c", "a", "d", "b"):
            await page.keyboard.press(key)
        assert await page.inner_text(f"{CURRENT} [data-rank-status]") == "Your ranking: C > A > D > B"
        await press_and_wait(page, "Enter", f"/assignments/{third}/judge")
        j = await judgment_of(session, third)
        assert j.ranking == [shown[2], shown[0], shown[3], shown[1]]

        orders = [tuple(a.shown_order) for a in await session.scalars(select(Assignment))]
        positions = {tuple(sorted(o).index(c) for c in o) for o in orders}
        assert len(orders) >= 4
        assert len(positions) > 1, "every assignment showed the candidates in the same order"
        browser_log.assert_clean()


class TestSafety:
    async def test_model_output_stays_text(self, page, session: AsyncSession, browser_log: BrowserLog) -> None:
        record = {
            "id": "evil",
            "prompt": EVIL,
            "responses": [{"text": EVIL}, {"messages": [{"role": "assistant", "content": EVIL}]}],
        }
        rater, (project,) = await setup(session, ({"name": "Evil", "instructions": EVIL}, [record]))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        texts = await page.eval_on_selector_all(f"{CURRENT} .text", "els => els.map(e => e.textContent)")
        assert texts == [EVIL, EVIL, EVIL]
        assert await page.locator(f"{CURRENT} img").count() == 0
        assert await page.locator(f"{CURRENT} a").count() == 0
        assert await page.locator(".instructions img").count() == 0
        assert await page.locator(".instructions a[href^='javascript']").count() == 0
        await page.click(f"{CURRENT} .candidate .panel-body")
        await asyncio.sleep(0.5)  # time for an onerror or a script to fire, if any could
        browser_log.assert_clean()


class TestSubmitting:
    async def test_double_click_stores_one_judgment(self, page, session: AsyncSession, browser_log: BrowserLog) -> None:
        rater, (project,) = await setup(session, ({"name": "Clicks"}, native_items(3)))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        first = await current_assignment(page)
        await page.click(f"{CURRENT} label.choice >> nth=0")
        async with page.expect_response(lambda r: "/judge" in r.url):
            await page.dblclick(f"{CURRENT} [data-submit]")
        await asyncio.sleep(0.5)
        assert await session.scalar(select(func.count()).select_from(Judgment)) == 1
        assert (await judgment_of(session, first)).assignment_id == uuid.UUID(first)
        assert await current_assignment(page) != first
        browser_log.assert_clean()

    async def test_network_failure_keeps_choice_and_rationale(
        self, page, session: AsyncSession, browser_log: BrowserLog
    ) -> None:
        rater, (project,) = await setup(session, ({"name": "Offline"}, native_items(3)))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        first = await current_assignment(page)
        await page.route("**/judge", lambda route: route.abort())
        await page.keyboard.press("1")
        await page.keyboard.press("r")
        await page.keyboard.type("A cites its source.")
        await page.keyboard.press("Control+Enter")
        error = page.locator(f"#error-{first}")
        await error.wait_for(state="visible")
        assert await error.inner_text() == pages.NETWORK_FAILED
        assert await current_assignment(page) == first
        assert await page.input_value(f"{CURRENT} textarea") == "A cites its source."
        assert await page.is_checked(f"{CURRENT} input[data-keys='1 a']")
        await page.unroute("**/judge")
        await page.focus(f"{CURRENT} h2")
        await press_and_wait(page, "Enter", f"/assignments/{first}/judge")
        assert (await judgment_of(session, first)).rationale == "A cites its source."
        assert await current_assignment(page) != first
        # The aborted request (and htmx reporting it) are the console errors this test caused.
        browser_log.console_errors = [
            e for e in browser_log.console_errors if "ERR_FAILED" not in e and not e.startswith("htmx:")
        ]
        browser_log.assert_clean()

    async def test_refusals_inline_and_late_verdict_kept(
        self, page, session: AsyncSession, browser_log: BrowserLog
    ) -> None:
        rater, (project,) = await setup(session, ({"name": "Strict", "rationale": "required"}, native_items(3)))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        first = await current_assignment(page)
        await page.keyboard.press("Enter")
        assert await page.inner_text(f"#error-{first}") == pages.NO_VERDICT
        await page.keyboard.press("2")
        await page.keyboard.press("Enter")
        assert await page.inner_text(f"#error-{first}") == RATIONALE_REQUIRED
        assert await page.evaluate("document.activeElement.name") == "rationale"
        await page.keyboard.type("B answers the question.")
        # Meanwhile the lease ran out and another rater filled the item.
        await session.execute(update(Assignment).where(Assignment.id == uuid.UUID(first)).values(status="expired"))
        item_id = await session.scalar(select(Assignment.item_id).where(Assignment.id == uuid.UUID(first)))
        await session.execute(
            update(Item).where(Item.id == item_id).values(leased=0, judged=1, completed_at=func.now())
        )
        await session.commit()
        async with page.expect_response(lambda r: "/judge" in r.url):
            await page.keyboard.press("Control+Enter")
        await page.locator("#notice .notice").wait_for()
        assert await page.inner_text("#notice") == pages.SURPLUS
        j = await judgment_of(session, first)
        assert (j.surplus, j.rationale) == (True, "B answers the question.")
        browser_log.assert_clean()

    async def test_heartbeat_renews_leases(self, page, session: AsyncSession, browser_log: BrowserLog) -> None:
        rater, (project,) = await setup(session, ({"name": "Beat", "lease_seconds": 60}, native_items(3)))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        first = await current_assignment(page)
        await session.execute(
            update(Assignment)
            .where(Assignment.id == uuid.UUID(first))
            .values(expires_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, 5))
        )
        await session.commit()
        async with page.expect_response(lambda r: r.url.endswith(f"/assignments/{first}/heartbeat")) as beat:
            await page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
        assert (await beat.value).status == 200
        left = await session.scalar(
            select(func.extract("epoch", Assignment.expires_at - func.now())).where(Assignment.id == uuid.UUID(first))
        )
        assert left is not None
        assert float(left) > 50
        browser_log.assert_clean()


class TestScreenshots:
    async def test_rater_page_wide_and_narrow(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        records = [orjson.loads(line) for line in DEMO_FILE.read_bytes().splitlines() if line.strip()]
        settings = {
            "name": "Demo: helpful answers",
            "instructions": INSTRUCTIONS,
            "scale": "8-point",
            "allow_tie": True,
            "allow_both_bad": True,
        }
        rater, (project,) = await setup(session, (settings, records))
        await login(page, rater.email, PASSWORD)
        await open_label(page, project.id)
        await page.keyboard.press("6")
        await screenshot(page, artifacts, "rater-1280x800")
        await page.set_viewport_size({"width": 390, "height": 844})
        await screenshot(page, artifacts, "rater-390x844")
        await screenshot(page, artifacts, "rater-390-full", full_page=True)
        await page.goto("/")
        await screenshot(page, artifacts, "my-projects-390x844")
        browser_log.assert_clean()

    async def test_chat_and_ranking(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        records = [orjson.loads(line) for line in DEMO_FILE.read_bytes().splitlines() if line.strip()]
        chat = next(r for r in records if isinstance(r["prompt"], list))
        code = "def median(xs):\n    xs = sorted(xs)\n    n = len(xs)\n    return xs[n // 2]  # wrong for even n\n"
        ranked = {
            "id": "rank",
            "prompt": "Write median(xs).",
            "responses": [{"text": code}, {"text": "Use statistics.median."}, {"text": "I cannot help."}],
        }
        rater, (chats, ranks) = await setup(
            session,
            ({"name": "Chats", "rationale": "required", "allow_both_bad": True}, [chat]),
            ({"name": "Ranks", "scale": "4-point", "allow_tie": True}, [ranked]),
        )
        await login(page, rater.email, PASSWORD)
        await open_label(page, chats.id)
        roles = await page.eval_on_selector_all(f"{CURRENT} .prompt .msg-role", "els => els.map(e => e.textContent)")
        assert roles == ["user", "assistant", "user"]
        assert await page.get_attribute("[data-instructions]", "open") is None  # none to show: one line
        await screenshot(page, artifacts, "rater-chat-1280x800")
        await open_label(page, ranks.id)
        for key in ("b", "a"):
            await page.keyboard.press(key)
        await page.keyboard.press("2")
        assert await page.is_checked(f"{CURRENT} input[name=strength][value='1']")
        assert await page.inner_text(f"{CURRENT} [data-rank-status]") == "Your ranking: B > A > C"
        await page.keyboard.press("r")
        await page.keyboard.type("B is correct, A only names a function.")
        await page.keyboard.press("Escape")
        assert await page.inner_text(f"{CURRENT} [data-rank-status]") == "Your ranking: B > A > C"
        assert await page.input_value(f"{CURRENT} textarea") == "B is correct, A only names a function."
        await screenshot(page, artifacts, "rater-ranking-1280x800")
        browser_log.assert_clean()

"""The admin pages in a real browser: create a project, upload a refused file and see its errors by
line, upload a good one and see the batch's progress (with the upload progress bar), create a token
and see it once, and the overview charts; screenshots at 1280 by 800 and 390 by 844."""

import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Project, Role, User
from server.projects import service as projects
from tests.factories import PASSWORD, create_judgment, create_project, create_user, import_items, jsonl, native_items
from tests.web.conftest import BrowserLog, login, screenshot

NARROW = {"width": 390, "height": 844}
WIDE = {"width": 1280, "height": 800}
# Chromium and htmx log every 4xx answer to a script's request; those are the refusals under test
# (swapped into the page on purpose), not faults.
REFUSED_REQUEST = re.compile(
    r"Failed to load resource: the server responded with a status of 4\d\d|Response Status Error Code 4\d\d from "
)


def _assert_clean(log: BrowserLog) -> None:
    log.console_errors = [e for e in log.console_errors if not REFUSED_REQUEST.search(e)]
    log.assert_clean()


async def _fits_width(page) -> bool:  # type: ignore[no-untyped-def]
    """No sideways scrolling of the page itself (wide content scrolls inside its own box)."""
    return bool(await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


# Every visible piece of text against the background it sits on (WCAG 2 contrast): 4.5:1, or 3:1
# for large text. SVG text is measured by its fill. Disabled controls are exempt, as in WCAG.
CONTRAST_JS = """
() => {
  const lum = (c) => {
    const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map((v) => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const opaque = (c) => c && c !== "transparent" && !/rgba\\(.*,\\s*0\\)$/.test(c);
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const bg = getComputedStyle(e).backgroundColor;
      if (opaque(bg)) return bg;
    }
    return "rgb(255, 255, 255)";
  };
  const failures = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest("[disabled], [hidden], details:not([open]) > :not(summary)")) continue;
    const rect = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!rect.width || !rect.height || style.visibility === "hidden" || el.closest(".visually-hidden")) continue;
    const fg = el instanceof SVGElement ? style.fill : style.color;
    const [a, b] = [lum(fg), lum(background(el))].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) failures.push(`${el.tagName} "${el.textContent.trim().slice(0, 40)}" ${ratio.toFixed(2)}:1`);
  }
  return failures;
}
"""


async def _contrast_failures(page) -> list[str]:  # type: ignore[no-untyped-def]
    return list(await page.evaluate(CONTRAST_JS))


async def _full_shot(page, artifacts: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    """The whole page at the current viewport width (1280 or 390 wide)."""
    await page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


async def _focus_ring(page) -> str:  # type: ignore[no-untyped-def]
    return str(await page.evaluate("getComputedStyle(document.activeElement).outlineStyle"))


class TestAdminInBrowser:
    async def test_project_upload_errors_then_progress(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin = await create_user(session, role=Role.admin, email="admin@example.com")
        await login(page, admin.email, PASSWORD)

        await page.goto("/admin/projects")
        await page.get_by_role("link", name="New project").click()
        await page.fill("#f-name", "Helpfulness, round 2")
        await page.fill("#f-instructions", "Prefer the **more helpful** answer.")
        await page.locator("#preview strong").filter(has_text="more helpful").wait_for()  # the live preview
        await page.get_by_label("4-point: better or much better, either way").check()
        await page.fill("#f-overlap", "0")
        await page.get_by_role("button", name="Create project").click()
        assert await page.inner_text("#f-overlap-error") == "Overlap must be at least 1."
        await page.fill("#f-overlap", "2")
        await page.get_by_role("button", name="Create project").click()
        await page.wait_for_url(re.compile(r"/admin/projects/[0-9a-f-]{36}$"))
        assert await page.inner_text("#flash") == "Project “Helpfulness, round 2” created."
        project = await session.scalar(select(Project))
        assert project is not None
        assert (project.scale, project.overlap) == ("4-point", 2)

        await page.get_by_role("navigation", name="Project pages").get_by_role("link", name="Batches").click()
        bad = native_items(5)
        bad[2]["responses"] = bad[2]["responses"][:1]
        bad[4]["prompt"] = 42
        await page.set_input_files(
            "#f-file", {"name": "bad.jsonl", "mimeType": "application/jsonl", "buffer": jsonl(bad)}
        )
        await page.get_by_role("button", name="Upload").click()
        refusal = page.locator(".refusal")
        await refusal.wait_for()
        assert (await refusal.locator("p").first.inner_text()).startswith(
            "Not imported. The file was refused: 2 error(s)."
        )
        lines = await refusal.locator("tbody tr td:first-child").all_inner_texts()
        fields = await refusal.locator("tbody tr td:nth-child(2)").all_inner_texts()
        assert (lines, fields) == (["3", "5"], ["responses", "prompt"])
        assert await _contrast_failures(page) == []

        # A good file, sent slowly enough that the upload progress bar is seen moving.
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("Network.enable")
        await cdp.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 200 * 1024},
        )
        good = native_items(400)
        for item in good:
            item["responses"][0]["text"] += " " + "lorem ipsum " * 200
        content = jsonl(good)
        assert len(content) > 1_000_000
        await page.set_input_files(
            "#f-file", {"name": "good.jsonl", "mimeType": "application/jsonl", "buffer": content}
        )
        await page.fill("#f-name", "First 400")
        await page.get_by_role("button", name="Upload").click()
        status = page.locator("#upload-status")
        await status.filter(has_text=re.compile(r"Uploading… \d+% \(\d+\.\d of \d+\.\d MB\)")).wait_for()
        assert float(await page.get_attribute(".upload-progress progress", "value") or 0) >= 0
        assert await page.locator("#upload-form button.button-primary").is_disabled()
        await page.locator("#upload-result .flash-success").wait_for(timeout=60_000)
        await cdp.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        assert await page.inner_text("#upload-result") == "Imported 400 items."
        assert await page.locator(".upload-progress").is_hidden()
        batch = page.locator("li.batch").first
        assert await batch.locator("h3").inner_text() == "First 400"
        assert await batch.locator(".meter-text").inner_text() == "0 / 400 items complete (0%)"

        # Judgments arrive; "Refresh progress" shows them without reloading the page.
        raters = [await create_user(session, email=f"{n}@example.com") for n in ("ana", "bo")]
        await _add_members(session, project, admin, raters)
        for rater in raters:
            for _ in range(3):
                await create_judgment(session, project, rater, active_ms=5000)
        await page.get_by_role("link", name="Refresh progress").click()
        await batch.locator(".meter-text").filter(has_text="3 / 400").wait_for()
        await batch.get_by_role("button", name="Pause First 400").click()
        await page.locator("#upload-result").filter(has_text="Batch “First 400” paused.").wait_for()
        await page.locator("#f-file").focus()
        await page.keyboard.press("Tab")  # to "Records", by keyboard: its focus ring must show
        assert await _focus_ring(page) == "solid"
        await import_items(session, project, admin, native_items(50, prefix="urgent"), priority=5)
        await page.get_by_role("link", name="Refresh progress").click()
        await page.locator("li.batch").nth(1).wait_for()
        assert await _contrast_failures(page) == []
        await _full_shot(page, artifacts, "admin-batches-1280")
        await page.set_viewport_size(NARROW)
        assert await _fits_width(page)
        await _full_shot(page, artifacts, "admin-batches-390")
        _assert_clean(browser_log)

    async def test_token_shown_once(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await login(page, admin.email, PASSWORD)
        await page.goto("/admin/users")
        await page.fill("#f-email", "trainer@example.com")
        await page.select_option("#f-role", "trainer")
        await page.fill("#f-password", "a long password")
        await page.get_by_role("button", name="Create account").click()
        await page.wait_for_url(re.compile(r"/admin/users/[0-9a-f-]{36}$"))
        assert await page.inner_text("#flash") == "Account trainer@example.com created (trainer)."

        await page.get_by_role("button", name="Create token").click()
        assert await page.inner_text("#f-scopes-error") == "Choose at least one scope."
        await page.fill("#tokens #f-name", "reward-model trainer")
        await page.get_by_label("export:read").check()
        await page.get_by_role("button", name="Create token").click()
        secret_box = page.locator("#new-token")
        await secret_box.wait_for()
        secret = await secret_box.input_value()
        assert secret.startswith("assay_pat_")
        await page.get_by_role("button", name="Copy").click()
        await page.locator("#new-token-status").filter(has_text="Copied to the clipboard.").wait_for()
        assert await page.evaluate("navigator.clipboard.readText()") == secret
        response = await page.request.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})
        assert (await response.json())["email"] == "trainer@example.com"
        assert await _contrast_failures(page) == []
        await screenshot(page, artifacts, "admin-token-1280")

        await page.reload()
        assert secret not in await page.content()
        row = page.locator("#tokens tbody tr").first
        assert (await row.locator("th").inner_text()).endswith("reward-model trainer")
        assert (await row.locator("td").nth(3).inner_text()).endswith("UTC")  # last used: just now
        await row.get_by_role("button", name=re.compile("^Revoke")).click()
        await page.locator("#tokens .flash-success").filter(has_text="revoked.").wait_for()
        response = await page.request.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})
        assert response.status == 401
        _assert_clean(browser_log)

    async def test_overview_charts(self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path) -> None:
        admin = await create_user(session, role=Role.admin)
        raters = [await create_user(session, email=f"{n}@example.com") for n in ("ana", "bo", "chen.long-surname")]
        project = await create_project(session, admin, members=tuple(raters), name="Helpfulness, round 2", overlap=3)
        await import_items(session, project, admin, native_items(60))
        now, rng = datetime.now(UTC), random.Random(7)
        for i, rater in enumerate(raters):
            for _ in range(24 - 6 * i):
                ago = timedelta(hours=rng.triangular(0, 47, 6), minutes=rng.randint(0, 59))
                await create_judgment(
                    session, project, rater, active_ms=rng.randint(3000, 9000 * (i + 1)), at=now - ago
                )
        await login(page, admin.email, PASSWORD)
        await page.goto(f"/admin/projects/{project.id}")
        chart = page.get_by_role("img", name="Judgments per hour")
        assert await chart.count() == 1
        assert (await chart.locator("desc").text_content() or "").startswith("54 judgments in the last 48 hours")
        assert await page.locator(".chart-rater-counts .chart-value").all_text_contents() == [
            "24 judgments",
            "18 judgments",
            "12 judgments",
        ]
        assert await _contrast_failures(page) == []
        await _full_shot(page, artifacts, "admin-overview-1280")
        await page.get_by_role("link", name="7 days").click()
        await page.wait_for_url("**?hours=168")
        await page.get_by_role("link", name="48 hours").focus()
        assert await _focus_ring(page) == "solid"
        await page.set_viewport_size(NARROW)
        await page.goto(f"/admin/projects/{project.id}")
        assert await _fits_width(page)
        await _full_shot(page, artifacts, "admin-overview-390")
        await page.set_viewport_size(WIDE)
        _assert_clean(browser_log)


async def _add_members(session: AsyncSession, project: Project, admin: User, raters: list[User]) -> None:
    for rater in raters:
        await projects.add_member(session, project, rater.id, actor=admin)
    await session.commit()


class TestUploadRefusedInBrowser:
    async def test_too_large_and_network_failure(self, page, session: AsyncSession, browser_log: BrowserLog) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin)
        await login(page, admin.email, PASSWORD)
        await page.goto(f"/admin/projects/{project.id}/batches")
        content = jsonl(native_items(3))
        # The page carries the server's limit; pretend it is 2 MB to refuse a 3 MB file before sending it.
        await page.evaluate("document.getElementById('upload-form').dataset.maxBytes = String(2 * 1024 * 1024)")
        await page.set_input_files(
            "#f-file", {"name": "big.jsonl", "mimeType": "application/jsonl", "buffer": b" " * (3 * 1024 * 1024)}
        )
        await page.get_by_role("button", name="Upload").click()
        assert await page.inner_text("#upload-result .refusal") == (
            "Not imported. The upload is larger than the 2 MB limit; split it into several batches."
        )
        await page.route("**/batches", lambda route: route.abort())
        await page.set_input_files("#f-file", {"name": "a.jsonl", "mimeType": "application/jsonl", "buffer": content})
        await page.get_by_role("button", name="Upload").click()
        await page.locator("#upload-result .refusal").filter(has_text="network error").wait_for()
        assert await page.inner_text("#upload-result .refusal") == (
            "Not imported. The upload did not reach the server (network error). Nothing was imported; "
            "check the connection and try again."
        )
        assert await page.locator("#upload-form button.button-primary").is_enabled()
        # The browser and htmx report the request this test aborted on purpose.
        forced = ("Failed to load resource: net::ERR_FAILED", "htmx:sendError", "htmx:afterRequest")
        browser_log.console_errors = [e for e in browser_log.console_errors if not e.startswith(forced)]
        _assert_clean(browser_log)

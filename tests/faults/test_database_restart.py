"""PostgreSQL restarts under a rater load: requests in the outage are answered 503 at once, the pool
recovers by itself, and nothing a client saw acknowledged is lost.

The test stops and starts the embedded PostgreSQL that holds this run's database (server/pgserver.py),
so it runs only on the embedded pass of `make test`.
"""

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Item, Judgment, Role
from server.pgserver import start_embedded, stop_embedded
from tests.conftest import EMBEDDED_DIR
from tests.factories import PASSWORD, bearer, create_project, create_token, create_user, import_items, native_items
from tests.faults.conftest import DATABASE_DOWN, RETRY_AFTER, UNAVAILABLE_TITLE
from tests.web.conftest import page_login

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("ASSAY_TEST_DATABASE_URL")),
    reason="this test stops and starts the embedded PostgreSQL; this pass runs on the shared server that "
    "ASSAY_TEST_DATABASE_URL names, which a test must not stop (the embedded pass of `make test` runs it)",
)

ITEMS, RATERS, OUTAGE_SECONDS = 150, 6, 2.0
FAIL_FAST_SECONDS = 3
AUDIT = text(
    """
    SELECT count(*) FROM items i WHERE i.project_id = :p AND (
        i.leased <> (SELECT count(*) FROM assignments a WHERE a.item_id = i.id AND a.status = 'leased')
        OR i.judged <> (SELECT count(*) FROM judgments j WHERE j.item_id = i.id AND NOT j.surplus)
        OR (i.completed_at IS NOT NULL) <> (i.judged >= i.wanted))
    """
)


@dataclass
class Seen:
    acknowledged: dict[str, str] = field(default_factory=dict)  # judgment id -> assignment id
    unavailable: list[tuple[float, httpx.Response]] = field(default_factory=list)  # 503s and how long each took
    pages: list[httpx.Response] = field(default_factory=list)  # 503 pages
    retried_judgments: int = 0
    after_restart: int = 0  # judgments acknowledged once the database was back
    restarted: bool = False
    unexpected: list[str] = field(default_factory=list)


async def _timed(seen: Seen, call: Any) -> httpx.Response | None:
    started = time.monotonic()
    try:
        response: httpx.Response = await call
    except httpx.TransportError as exc:  # a hang past the client's timeout lands here too
        seen.unexpected.append(f"{type(exc).__name__} after {time.monotonic() - started:.1f} s")
        return None
    if response.status_code == 503:
        seen.unavailable.append((time.monotonic() - started, response))
    return response


async def api_rater(client: httpx.AsyncClient, project_id: str, token: str, seen: Seen) -> None:
    """next, then judge; a 503 is retried after a moment with the same request."""
    auth = bearer(token)
    while True:
        leased = await _timed(seen, client.post(f"/api/v1/projects/{project_id}/assignments/next", headers=auth))
        if leased is None:
            return
        if leased.status_code == 503:
            await asyncio.sleep(0.2)
            continue
        if leased.status_code == 204:
            return
        if leased.status_code != 200:
            seen.unexpected.append(f"next: {leased.status_code}")
            return
        assignment = leased.json()
        verdict = {"choice": assignment["item"]["candidates"][0]["id"]}
        retried = False
        while True:
            judged = await _timed(
                seen, client.post(f"/api/v1/assignments/{assignment['id']}/judgment", json=verdict, headers=auth)
            )
            if judged is None:
                return
            if judged.status_code != 503:
                break
            retried = True
            await asyncio.sleep(0.2)
        if judged.status_code not in (200, 201) or judged.json()["choice"] != verdict["choice"]:
            seen.unexpected.append(f"judgment: {judged.status_code} {judged.text[:200]}")
            return
        seen.retried_judgments += retried
        seen.after_restart += seen.restarted
        seen.acknowledged[judged.json()["id"]] = assignment["id"]
        await asyncio.sleep(0.2)  # a (very fast) rater's look at the next item: the load outlasts the stop


async def page_visitor(client: httpx.AsyncClient, seen: Seen, done: asyncio.Event) -> None:
    """A rater reloading "My projects" all along: a page, never a traceback or a hang."""
    while not done.is_set():
        page = await _timed(seen, client.get("/"))
        if page is None:
            return
        if page.status_code == 503:
            seen.pages.append(page)
        elif page.status_code != 200:
            seen.unexpected.append(f"page: {page.status_code}")
        await asyncio.sleep(0.1)


async def test_requests_in_the_outage_fail_fast_and_the_pool_recovers(launch, session: AsyncSession) -> None:  # type: ignore[no-untyped-def]
    admin = await create_user(session, role=Role.admin)
    raters = [await create_user(session) for _ in range(RATERS)]
    project = await create_project(session, admin, members=tuple(raters))
    await import_items(session, project, admin, native_items(ITEMS))
    tokens = [await create_token(session, r) for r in raters]
    await session.close()  # this test's own connection must not sit in the pool across the restart
    (server,) = launch(1)
    seen, done = Seen(), asyncio.Event()

    async def restart() -> None:
        while len(seen.acknowledged) < 20:
            await asyncio.sleep(0.02)
        await asyncio.to_thread(stop_embedded, EMBEDDED_DIR)
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(start_embedded, EMBEDDED_DIR, "postgres")
        seen.restarted = True

    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        httpx.AsyncClient(base_url=server.url, timeout=30) as browser,
    ):
        await page_login(browser, raters[0].email, PASSWORD)
        visitor = asyncio.create_task(page_visitor(browser, seen, done))
        await asyncio.gather(restart(), *(api_rater(client, str(project.id), t, seen) for t in tokens))
        done.set()
        await visitor

    assert seen.unexpected == []  # no 500, no hang, no other status
    # The outage was seen, by the API and by the page, each time as a 503 with a sentence and Retry-After.
    assert seen.unavailable
    assert seen.pages
    for took, response in seen.unavailable:
        assert took < FAIL_FAST_SECONDS
        assert response.headers["Retry-After"] == RETRY_AFTER
        if response.url.path.startswith("/api/"):
            assert response.json() == {"detail": DATABASE_DOWN}
    for page in seen.pages:
        assert UNAVAILABLE_TITLE in page.text
        assert DATABASE_DOWN in page.text
    assert "unhandled error" not in server.log()
    # The pool recovered by itself: the same process finished the work after the restart.
    assert seen.after_restart > 0
    stored = {str(j): str(a) for j, a in await session.execute(select(Judgment.id, Judgment.assignment_id))}
    per_assignment = {
        str(a): n
        for a, n in await session.execute(select(Judgment.assignment_id, func.count()).group_by(Judgment.assignment_id))
    }
    for judgment_id, assignment_id in seen.acknowledged.items():  # nothing acknowledged lost, nothing twice
        assert stored.get(judgment_id) == assignment_id
        assert per_assignment[assignment_id] == 1
    assert len(seen.acknowledged) == ITEMS
    assert await session.scalar(select(func.count()).where(Item.completed_at.is_(None))) == 0
    assert await session.scalar(AUDIT, {"p": project.id}) == 0

"""What one rater request sends to PostgreSQL, counted (never timed): the budgets below are the
counts measured when issue 7's "nothing more than 10% slower" was checked (docs/BENCHMARKS.md,
"Before and after, a third time"; lowered in "a fourth time" and "a fifth time"). A change that adds a statement or a
transaction to the rater loop fails here and must raise the budget on purpose. `python -m
bench.requests --show next submit swap` lists the statements on any commit."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.items.search import indexing_done
from server.models import Role
from tests.factories import PASSWORD, bearer, create_project, create_token, create_user, import_items, native_items
from tests.labeling.test_routes import SLOT, Rater
from tests.web.conftest import page_login

# (statements, transactions) per request
NEXT = (4, 1)  # auth, membership with its project, reclaim with the live leases, pick with its item and candidates
SUBMIT = (5, 1)  # auth, membership, assignment with its item, item lock with its counters, judgment with the
# status and the item's slot
SWAP = (8, 2)  # session; the verdict as SUBMIT less auth; commit; membership, reclaim with live leases, pick


@dataclass
class Sent:
    statements: list[str] = field(default_factory=list)
    transactions: int = 0

    def within(self, budget: tuple[int, int]) -> None:
        shown = "\n".join(s[:160] for s in self.statements)
        assert len(self.statements) <= budget[0], f"{len(self.statements)} statements:\n{shown}"
        assert self.transactions <= budget[1], f"{self.transactions} transactions:\n{shown}"


@contextmanager
def recording(engine: AsyncEngine) -> Iterator[Sent]:
    sent = Sent()

    def statement(conn: Any, cursor: Any, text: str, params: Any, context: Any, many: bool) -> None:
        sent.statements.append(" ".join(text.split()))

    def begin(conn: Any) -> None:
        sent.transactions += 1

    sync = engine.sync_engine
    event.listen(sync, "before_cursor_execute", statement)
    event.listen(sync, "begin", begin)
    try:
        yield sent
    finally:
        event.remove(sync, "before_cursor_execute", statement)
        event.remove(sync, "begin", begin)


async def test_the_api_loop(client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine) -> None:
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,))
    await import_items(session, project, admin, native_items(6))
    token = await create_token(session, rater)
    await indexing_done()  # the search indexer shares the engine: let it finish first
    for _ in range(3):  # the first rounds prepare statements and write last_used_at
        with recording(engine) as next_sent:
            leased = await client.post(f"/api/v1/projects/{project.id}/assignments/next", headers=bearer(token))
        assert leased.status_code == 200, leased.text
        body = leased.json()
        with recording(engine) as submit_sent:
            submitted = await client.post(
                f"/api/v1/assignments/{body['id']}/judgment",
                json={"choice": body["item"]["candidates"][0]["id"]},
                headers=bearer(token),
            )
        assert submitted.status_code == 201, submitted.text
    next_sent.within(NEXT)
    submit_sent.within(SUBMIT)
    assert len(next_sent.statements) >= 3  # the recorder saw them
    assert len(submit_sent.statements) >= 4


def _verdict(html: str, assignment: str) -> str:
    """The first candidate's verdict value in the item section of this assignment."""
    section = html.split(f'id="a-{assignment}"', 1)[1]
    found = re.search(r'name="verdict" value="(c:[0-9a-f-]+:)"', section)
    assert found is not None
    return found.group(1)


async def test_the_page_swap(client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine) -> None:
    admin = await create_user(session, role=Role.admin)
    user = await create_user(session)
    project = await create_project(session, admin, members=(user,))
    await import_items(session, project, admin, native_items(8))
    await indexing_done()
    await page_login(client, user.email, PASSWORD)
    rater = Rater(client, user)
    html = (await rater.open(project)).text
    queue = [m.group(1) for m in SLOT.finditer(html)]
    for _ in range(3):
        current, ahead = queue[0], queue[1:]
        with recording(engine) as sent:
            swapped = await rater.post(
                f"/assignments/{current}/judge", verdict=_verdict(html, current), ahead=",".join(ahead)
            )
        assert swapped.status_code == 200, swapped.text[:500]
        html += swapped.text
        queue = ahead + [m.group(1) for m in SLOT.finditer(swapped.text)]
    sent.within(SWAP)
    assert len(sent.statements) >= 8


async def test_the_item_lock_of_a_verdict_keeps_a_generic_plan(
    client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    """A prepared statement is planned again at each execution while PostgreSQL finds its custom plans
    cheaper than its generic one. The submit's item lock, as `id = ANY(:ids)` with one id, was such a
    statement (0.13 ms of planning per verdict in make bench, nine times its execution). Sent as the
    submit sends it, on one connection, it must switch to the generic plan after PostgreSQL's five
    custom ones."""
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,))
    await import_items(session, project, admin, native_items(2000))  # plans are chosen on a table's size
    token = await create_token(session, rater)
    await indexing_done()
    await session.execute(text("ANALYZE items"))
    leased = await client.post(f"/api/v1/projects/{project.id}/assignments/next", headers=bearer(token))
    body = leased.json()
    sent: list[tuple[str, Any]] = []

    def statement(conn: Any, cursor: Any, text: str, params: Any, context: Any, many: bool) -> None:
        sent.append((text, params))

    event.listen(engine.sync_engine, "before_cursor_execute", statement)
    try:
        submitted = await client.post(
            f"/api/v1/assignments/{body['id']}/judgment",
            json={"choice": body["item"]["candidates"][0]["id"]},
            headers=bearer(token),
        )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", statement)
    assert submitted.status_code == 201, submitted.text
    [(lock, params)] = [(t, p) for t, p in sent if "AS open" in t and "FOR NO KEY UPDATE" in t]
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        prepared = await raw.prepare(lock)
        async with raw.transaction():
            for _ in range(8):
                assert len(await prepared.fetch(*params)) == 1
        plans = await raw.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = $1",
            prepared.get_name(),
        )
    assert plans is not None
    assert plans["generic_plans"] > 0, f"planned at every execution: {dict(plans)}\n{lock}"

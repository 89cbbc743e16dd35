"""The data browser's word index is written after the import commits (server/items/search.py):
items are found before and after, the indexer resumes where it stopped, locks no item, and
deletions take the vectors with them."""

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.items import search
from server.items import service as items_service
from server.items.filters import ItemFilters
from server.labeling import service as labeling
from server.models import Batch, Item, ItemSearch, Project, Role, SearchPending, User
from server.projects import lifecycle
from tests.factories import create_project, create_user, import_items, native_items
from tests.items.test_browser import _ids
from tests.web.admin import htmx, login_as


@pytest.fixture
def no_indexer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports leave their vectors pending: the test runs the indexer itself."""
    monkeypatch.setattr(search, "schedule", lambda engine: None)


async def _world(client: httpx.AsyncClient, session: AsyncSession) -> tuple[Project, User, User]:
    admin, _ = await login_as(client, session)
    rater = await create_user(session, role=Role.rater)
    project = await create_project(session, admin, members=(rater,))
    records = native_items(6)
    records[1]["prompt"] = "How do I bake sourdough bread?"
    records[2]["responses"][1]["text"] = "Knead the dough gently, then bake."
    records[3]["prompt"] = [{"role": "user", "content": "Name a fermented tea"}]
    records[3]["responses"][0] = {"messages": [{"role": "assistant", "content": "Kombucha is one."}]}
    await import_items(session, project, admin, records)
    return project, admin, rater


async def _found(client: httpx.AsyncClient, project: Project, q: str) -> list[str]:
    response = await client.get(f"/admin/projects/{project.id}/items?q={q}", headers=htmx("results"))
    assert response.status_code == 200, response.text
    return _ids(response.text)


async def _first_chunk(engine: AsyncEngine, project: Project, size: int) -> None:
    """The indexer's first transaction on the first pending batch: `size` vectors written, its place kept
    (as a server stopped after that transaction would leave it)."""
    async with AsyncSession(engine) as indexer, indexer.begin():
        pending = (await indexer.execute(search._NEXT_BATCH)).one()
        done = (
            await indexer.execute(
                search._WRITE_CHUNK,
                {"batch_id": pending.batch_id, "after_seq": 0, "chunk": size},
            )
        ).one()
        await indexer.execute(
            text("UPDATE search_pending SET after_seq = :seq WHERE batch_id = :b"),
            {"seq": done.last_seq, "b": pending.batch_id},
        )


SEARCHES = {"sourdough": ["item-1"], "kneading": ["item-2"], "kombucha": ["item-3"], "fermented": ["item-3"]}


@pytest.mark.usefixtures("no_indexer")
async def test_found_before_and_after_the_vectors_are_written(
    client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    project, _, _ = await _world(client, session)
    assert await session.scalar(select(func.count()).select_from(ItemSearch)) == 0
    assert await session.scalar(select(func.count()).select_from(SearchPending)) == 1
    before = {q: await _found(client, project, q) for q in SEARCHES}
    assert before == SEARCHES  # matched on the fly while pending
    assert await search.fill(engine) == 6
    assert await session.scalar(select(func.count()).select_from(SearchPending)) == 0
    after = {q: await _found(client, project, q) for q in SEARCHES}
    assert after == SEARCHES  # from item_search (no batch pending: no on-the-fly arm)
    # What the indexer wrote is what the on-the-fly arm computes, item by item.
    differing = await session.scalar(
        select(func.count())
        .select_from(ItemSearch)
        .join(Item, Item.id == ItemSearch.item_id)
        .where(ItemSearch.search != search.vector(Item))
    )
    assert differing == 0


@pytest.mark.usefixtures("no_indexer")
async def test_the_indexer_resumes_where_it_stopped(
    client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    project, admin, _ = await _world(client, session)
    await import_items(session, project, admin, native_items(5, start=10))
    await _first_chunk(engine, project, 2)
    assert await search.fill(engine, chunk=2) == 6 - 2 + 5
    assert await session.scalar(select(func.count()).select_from(ItemSearch)) == 11
    assert await session.scalar(select(func.count()).select_from(SearchPending)) == 0


@pytest.mark.usefixtures("no_indexer")
async def test_while_pending_only_the_items_past_the_indexer_are_computed_on_the_fly(
    client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    """The on-the-fly arm covers a pending batch's items past the indexer's place, not the whole batch
    (for a 40,000-item import the first search took 4.4 s computing every vector; docs/BENCHMARKS.md).
    Seen here by taking away the written vector of an item the indexer has passed: found by the
    index only, it is no longer found; the items past the place still are."""
    project, _, _ = await _world(client, session)
    await _first_chunk(engine, project, 2)
    assert await _found(client, project, "sourdough") == ["item-1"]  # written: item-0 and item-1
    await session.execute(
        text("DELETE FROM item_search s USING items i WHERE i.id = s.item_id AND i.external_id = 'item-1'")
    )
    await session.commit()
    assert await _found(client, project, "sourdough") == []
    assert await _found(client, project, "kombucha") == ["item-3"]  # past the place: computed


@pytest.mark.usefixtures("no_indexer")
async def test_a_search_computes_at_most_so_many_vectors_per_pending_batch_and_says_what_it_left(
    client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after a 100,000-item import a word search computed every vector of the batch on the fly:
    40 s (docs/BENCHMARKS.md, "The search index at `make bench`'s size"). It now computes the next
    ON_THE_FLY past the indexer's place and says how many items it did not search yet."""
    monkeypatch.setattr(search, "ON_THE_FLY", 2, raising=False)
    project, _, _ = await _world(client, session)
    page = await client.get(f"/admin/projects/{project.id}/items?q=kombucha", headers=htmx("results"))
    assert _ids(page.text) == []  # item-3: the fourth item, past the two computed
    assert (
        "4 items imported moments ago are still being indexed and not searched by word yet; search again in a "
        "moment to include them." in page.text
    )
    assert await _found(client, project, "sourdough") == ["item-1"]  # the second: computed
    await _first_chunk(engine, project, 2)  # the indexer passes item-0 and item-1
    page = await client.get(f"/admin/projects/{project.id}/items?q=kombucha", headers=htmx("results"))
    assert _ids(page.text) == ["item-3"]
    assert "2 items imported moments ago are still being indexed" in page.text
    assert await search.fill(engine) == 4
    page = await client.get(f"/admin/projects/{project.id}/items?q=kombucha", headers=htmx("results"))
    assert _ids(page.text) == ["item-3"]
    assert "still being indexed" not in page.text
    # Without a word nothing is computed, and nothing is said.
    page = await client.get(f"/admin/projects/{project.id}/items", headers=htmx("results"))
    assert "still being indexed" not in page.text


def _scanned(plan: dict[str, Any], table: str) -> list[int]:
    """The rows each node of an EXPLAIN (ANALYZE, FORMAT JSON) plan read from `table`."""
    rows = [plan["Actual Rows"]] if plan.get("Relation Name") == table else []
    return rows + [n for child in plan.get("Plans", []) for n in _scanned(child, table)]


@pytest.mark.usefixtures("no_indexer")
async def test_an_indexer_chunk_reads_its_own_items_only(
    client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    """Each chunk read and sorted every item left in its batch (a bitmap of the batch's and the
    project's indexes): indexing 100,000 items read the batch 200 times, 65 s of PostgreSQL time. A
    chunk now reads its items off ix_items_batch_seq in order, however many are left, on tables
    PostgreSQL has not analysed since the import (as right after it)."""
    admin, _ = await login_as(client, session)
    project = await create_project(session, admin)
    await import_items(session, project, admin, native_items(800))
    batch_id, first = (await session.execute(select(Item.batch_id, func.min(Item.seq)).group_by(Item.batch_id))).one()
    for after in (first - 1, first + 300):
        plan = await session.scalar(
            text(f"EXPLAIN (ANALYZE, FORMAT JSON) {search._WRITE_CHUNK.text}"),
            {"batch_id": batch_id, "after_seq": after, "chunk": 50},
        )
        scanned = _scanned(plan[0]["Plan"], "items")
        assert scanned, plan
        assert max(scanned) <= 50, (after, scanned)
    await session.rollback()  # EXPLAIN ANALYZE wrote the vectors


@pytest.mark.usefixtures("no_indexer")
async def test_writing_vectors_locks_no_item(
    client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    """A rater's pick neither skips nor waits for the items of a chunk being written (with the
    vectors on `items`, the indexer's row locks made `next` skip them: 'nothing left')."""
    project, _, rater = await _world(client, session)
    async with AsyncSession(engine) as indexer, indexer.begin():
        pending = (await indexer.execute(search._NEXT_BATCH)).one()
        await indexer.execute(
            search._WRITE_CHUNK,
            {"batch_id": pending.batch_id, "after_seq": 0, "chunk": 500},
        )
        # The chunk's transaction is still open here.
        await session.execute(text("SET LOCAL lock_timeout = '2s'"))
        leased = await labeling.next_assignment(session, project=project, rater=rater)
        assert leased is not None
        assert leased.item.external_id == "item-0"  # the queue's first item, in order
        await session.rollback()


async def test_deleting_a_batch_takes_its_vectors(
    client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    project, admin, _ = await _world(client, session)
    await search.indexing_done()
    assert await session.scalar(select(func.count()).select_from(ItemSearch)) == 6
    batch = (await session.scalars(select(Batch).where(Batch.project_id == project.id))).one()
    await lifecycle.delete_batch(session, batch, confirm=batch.name, actor=admin)
    await session.commit()
    assert await session.scalar(select(func.count()).select_from(ItemSearch)) == 0
    assert await session.scalar(select(func.count()).select_from(SearchPending)) == 0


async def test_the_browser_compiles_no_plan(client: httpx.AsyncClient, session: AsyncSession) -> None:
    """A word search right after a 100,000-item import spent 0.85 s compiling its plan (JIT), for a
    statement that ran in 0.6 s: the data browser's statements run with JIT off, and with custom plans."""
    admin, _ = await login_as(client, session)
    project = await create_project(session, admin)
    await session.commit()
    await session.execute(text("SET LOCAL jit = on"))  # a server that compiles every plan it can
    await session.execute(text("SET LOCAL jit_above_cost = 0"))
    await items_service.browse(session, project, ItemFilters(q="question"))
    assert (await session.execute(text("SHOW jit"))).scalar_one() == "off"
    assert (await session.execute(text("SHOW plan_cache_mode"))).scalar_one() == "force_custom_plan"
    await session.rollback()

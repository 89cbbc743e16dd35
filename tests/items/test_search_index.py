"""The data browser's word index is written after the import commits (server/items/search.py):
items are found before and after, the indexer resumes where it stopped, locks no item, and
deletions take the vectors with them."""

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.items import search
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
                {"project_id": project.id, "batch_id": pending.batch_id, "after_seq": 0, "chunk": size},
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
            {"project_id": project.id, "batch_id": pending.batch_id, "after_seq": 0, "chunk": 500},
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

"""The data browser's word index (`item_search`), written after the import commits.

Computing an item's full-text vector is PostgreSQL's text parser over the prompt and every
response: about 0.1 ms per item of 800 characters, which was 70% of an import's database time
when the import wrote it in its own statement (docs/BENCHMARKS.md, "Before and after, a third
time"). So the import only records its batch in `search_pending` and, once its transaction has
committed, kicks this process's indexer, which writes the batch's vectors into `item_search` in
short transactions of `CHUNK` items, in import order, keeping its place in `search_pending.after_seq`.
The total work is the same; it no longer holds up the upload's answer.

Items not indexed yet are found all the same, up to a bound: for a project with pending batches the
browser's word filter also computes the same vector on the fly for the next `ON_THE_FLY` items of
each batch past the indexer's place (`matches`: past `after_seq`, so that arm moves on as the
indexer goes). Computed for a whole 100,000-item batch it took 40 s; the bound keeps a search right
after a big import under a second, and the page says how many items are not searched yet
(`Pending.left`); the indexer writes about 1,500-2,000 items a second on a 2-core machine, so a
100,000-item batch is fully searchable about a minute after its answer. A server that stops
halfway leaves the batch pending, and the next start (the lifespan) or import picks it up where it
stopped.

Locks: the vectors live in their own table, so writing them locks no item (raters' picks never
skip or wait for an item being indexed). The indexer holds one lock, its batch's
`search_pending` row (taken with SKIP LOCKED, so processes share the batches), and waits for
nothing. `item_search` has no foreign keys for that reason: a batch or project deletion removes
its items' vectors itself (projects/lifecycle.py), and a vector written for an item deleted at the
same moment is an orphan that no query reaches (the browser joins from `items`).
"""

import asyncio
import logging
import uuid
from collections.abc import Collection
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, event, exists, func, literal, literal_column, or_, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.models import Candidate, ItemSearch, SearchPending

logger = logging.getLogger(__name__)

CHUNK = 500  # items per transaction: 0.1-0.25 s of PostgreSQL time at 800 characters an item
# Items per pending batch whose vectors a word search computes itself (about 0.3 s of PostgreSQL at
# 800 characters an item); the rest of the batch is searched once the indexer has written them.
ON_THE_FLY = 1_000
TS_CONFIG: ColumnElement[Any] = literal_column("'english'::regconfig")

# An item's words as the import staged them: the prompt and each candidate's text and messages
# (assay_search_text, migration 2026-11-30-2300). jsonb_strip_nulls: a text candidate has no messages.
_CANDIDATES_SQL = """(SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object('text', c.text, 'messages', c.messages))
                         ORDER BY c.position) FROM candidates c WHERE c.item_id = i.id)"""
# A subtask's question is searchable too (it copies its parent's prompt and candidates).
VECTOR_SQL = (
    f"to_tsvector('english', assay_search_text(i.prompt, {_CANDIDATES_SQL}) || coalesce(' ' || i.question, ''))"
)

# The indexer's transactions say who they are, so that an export's watermark does not wait for them
# (exports/service.py: they write only `item_search` and `search_pending`, which no export reads).
INDEXER_NAME = "assay search index"
# And no JIT compilation: on an items table not analysed since a big import, a chunk's estimate can
# reach the point where PostgreSQL compiles it, for a statement that runs in a fraction of a second.
_AS_INDEXER = text(f"SELECT set_config('application_name', '{INDEXER_NAME}', true), set_config('jit', 'off', true)")

_NEXT_BATCH = text(
    "SELECT batch_id, project_id, after_seq FROM search_pending ORDER BY batch_id LIMIT 1 FOR UPDATE SKIP LOCKED"
)
# The batch's next chunk in import order: a range of ix_items_batch_seq read in order, which stops
# after the chunk. (With the project's seq index too in the condition, PostgreSQL combined both in a
# bitmap and sorted every item left in the batch, each chunk: 65 s for a 100,000-item batch.)
_WRITE_CHUNK = text(
    f"""
    WITH chunk AS (
        SELECT i.id, i.project_id, i.seq, i.prompt, i.question FROM items i
        WHERE i.batch_id = :batch_id AND i.seq > :after_seq
        ORDER BY i.seq LIMIT :chunk
    ), written AS (
        INSERT INTO item_search (item_id, project_id, search)
        SELECT i.id, i.project_id, {VECTOR_SQL} FROM chunk i
        ON CONFLICT (item_id) DO NOTHING
    )
    SELECT count(*) AS items, max(seq) AS last_seq FROM chunk
    """
)


_WRITE_ITEMS = text(
    f"""
    INSERT INTO item_search (item_id, project_id, search)
    SELECT i.id, i.project_id, {VECTOR_SQL} FROM items i WHERE i.id = ANY(:ids)
    ON CONFLICT (item_id) DO NOTHING
    """
)


async def index_now(session: AsyncSession, item_ids: Collection[uuid.UUID]) -> None:
    """In the caller's transaction: write the vectors of a few new items at once (subtasks posted
    under an item: at most parse.MAX_SUBTASKS, too few to be worth the background path)."""
    if item_ids:
        await session.execute(_WRITE_ITEMS, {"ids": list(item_ids)})


def vector(items: Any) -> ColumnElement[Any]:
    """The search vector of `items` (the table or an alias of it), computed now: as `item_search` holds it."""
    candidates = (
        select(
            func.jsonb_agg(
                aggregate_order_by(
                    func.jsonb_strip_nulls(
                        func.jsonb_build_object(
                            literal_column("'text'"), Candidate.text, literal_column("'messages'"), Candidate.messages
                        )
                    ),
                    Candidate.position,
                )
            )
        )
        .where(Candidate.item_id == items.id)
        .scalar_subquery()
    )
    words = func.assay_search_text(items.prompt, candidates).op("||")(
        func.coalesce(literal(" ").op("||")(items.question), "")
    )
    return func.to_tsvector(TS_CONFIG, words)


class Pending(NamedTuple):
    """A batch whose vectors are being written: those of its items up to `after_seq` are; a word
    search computes those up to `until_seq` itself (None: all the rest), and `left` items after it
    are not searched until the indexer reaches them."""

    batch_id: uuid.UUID
    after_seq: int
    until_seq: int | None = None
    left: int = 0


def matches(items: Any, q: str, pending: Collection[Pending] = ()) -> ColumnElement[bool]:
    """`items` whose words match the web-search query `q`: from their written vectors, or, for the
    items of the `pending` batches past the indexer's place (up to `until_seq`), by computing their
    vector now. The place only moves forward, and a chunk's vectors commit with it, so an item read
    as pending earlier and indexed by now matches on both arms, and none on neither."""
    query = func.websearch_to_tsquery(TS_CONFIG, q)
    indexed = exists().where(ItemSearch.item_id == items.id, ItemSearch.search.bool_op("@@")(query))
    if not pending:
        return indexed
    unwritten = or_(
        *(and_(items.batch_id == p.batch_id, items.seq > p.after_seq, *_up_to(items, p.until_seq)) for p in pending)
    )
    return or_(indexed, unwritten & vector(items).bool_op("@@")(query))


def _up_to(items: Any, seq: int | None) -> list[ColumnElement[bool]]:
    return [] if seq is None else [items.seq <= seq]


# Each pending batch of the project with the indexer's place, the last item a search computes itself
# (the ON_THE_FLY-th past the place; NULL when fewer are left) and how many come after it: two ranges
# of ix_items_batch_seq, the count only while the batch is longer than the bound.
_PENDING = text(
    """
    SELECT p.batch_id, p.after_seq, reach.seq AS until_seq,
           CASE WHEN reach.seq IS NULL THEN 0
                ELSE (SELECT count(*) FROM items i WHERE i.batch_id = p.batch_id AND i.seq > reach.seq) END AS left
    FROM search_pending p
    LEFT JOIN LATERAL (
        SELECT i.seq FROM items i WHERE i.batch_id = p.batch_id AND i.seq > p.after_seq
        ORDER BY i.seq OFFSET :reach - 1 LIMIT 1
    ) reach ON true
    WHERE p.project_id = :project_id
    ORDER BY p.batch_id
    """
)


async def pending_batches(session: AsyncSession, project_id: uuid.UUID) -> list[Pending]:
    """The project's batches whose search vectors are still being written, with the indexer's place
    and how far past it a word search computes vectors itself (ON_THE_FLY items)."""
    rows = await session.execute(_PENDING, {"project_id": project_id, "reach": ON_THE_FLY})
    return [Pending(r.batch_id, r.after_seq, r.until_seq, r.left) for r in rows]


async def mark_pending(session: AsyncSession, *, batch_id: uuid.UUID, project_id: uuid.UUID) -> None:
    """In the import's transaction: this batch's vectors are to be written once it commits."""
    await session.execute(insert(SearchPending).values(batch_id=batch_id, project_id=project_id, after_seq=0))
    _after_commit(session)


async def fill(engine: AsyncEngine, *, chunk: int = CHUNK) -> int:
    """Write the vectors of every pending batch, a chunk per transaction; how many items were indexed."""
    written = 0
    while True:
        async with AsyncSession(engine) as session, session.begin():
            await session.execute(_AS_INDEXER)
            batch = (await session.execute(_NEXT_BATCH)).one_or_none()
            if batch is None:
                return written
            done = (
                await session.execute(
                    _WRITE_CHUNK,
                    {"batch_id": batch.batch_id, "after_seq": batch.after_seq, "chunk": chunk},
                )
            ).one()
            written += done.items
            if done.items < chunk:
                await session.execute(
                    text("DELETE FROM search_pending WHERE batch_id = :batch_id"), {"batch_id": batch.batch_id}
                )
            else:
                await session.execute(
                    text("UPDATE search_pending SET after_seq = :seq WHERE batch_id = :batch_id"),
                    {"seq": done.last_seq, "batch_id": batch.batch_id},
                )


_running: dict[AsyncEngine, asyncio.Task[None]] = {}
_again: set[AsyncEngine] = set()


def schedule(engine: AsyncEngine) -> None:
    """Write the pending vectors in the background (once more if a fill is already under way)."""
    if engine in _running:
        _again.add(engine)
        return

    async def run() -> None:
        try:
            while True:
                _again.discard(engine)
                written = await fill(engine)
                if written:
                    logger.info("search.indexed", extra={"items": written})
                if engine not in _again:
                    return
        except Exception:  # the items stay findable through `matches`; the next import or start retries
            logger.exception("search.index_failed")
        finally:
            _running.pop(engine, None)

    _running[engine] = asyncio.get_running_loop().create_task(run())


def _after_commit(session: AsyncSession) -> None:
    engine = session.bind
    if not isinstance(engine, AsyncEngine):
        return
    info = session.sync_session.info
    if info.get("search_fill_scheduled"):
        return
    info["search_fill_scheduled"] = True

    def committed(_: Any) -> None:  # after a rollback it waits for the session's next commit: harmless
        info.pop("search_fill_scheduled", None)
        schedule(engine)

    event.listen(session.sync_session, "after_commit", committed, once=True)


async def indexing_done() -> None:
    """Wait for the background fills under way (tests; the app's shutdown)."""
    while _running:
        await asyncio.gather(*list(_running.values()), return_exceptions=True)

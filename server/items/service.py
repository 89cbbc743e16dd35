"""The data browser: a project's items with filters, one item with every judgment, one rater's judgments.

Every list is keyset-paginated (`after` = the last row's `seq`), so a page costs the same on
the first page and the thousandth. The word search is PostgreSQL full-text search over
`item_search.search` (prompt turns and responses) with its GIN index, written just after the import
commits; items not indexed yet are matched on the fly (items/search.py). The
judgment filters have partial indexes (`ix_judgments_tie`, `_both_bad`, `_rationale`,
`ix_assignments_skipped`, `ix_judgments_rater`). `bench/browse.py` times these queries at 1M items.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, and_, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from server.errors import NotFound
from server.items import search
from server.items.filters import PAGE_SIZE, ItemFilters, Status, Verdict
from server.items.verdicts import Shown, describe
from server.models import (
    Assignment,
    AssignmentStatus,
    Batch,
    Candidate,
    Item,
    Judgment,
    JudgmentRevision,
    Project,
    User,
)
from server.models.item import Prompt

# The prompt's last turn (or the whole prompt), cut short for a table cell.
EXCERPT: ColumnElement[str] = literal_column(
    "left(CASE jsonb_typeof(items.prompt) WHEN 'string' THEN items.prompt #>> '{}' "
    "ELSE items.prompt -> -1 ->> 'content' END, 160)"
)
SAMPLE = 5_000  # items in import order whose matches decide how a filtered page is read


@dataclass(frozen=True, slots=True)
class ItemRow:
    id: uuid.UUID
    seq: int
    external_id: str
    excerpt: str
    batch_name: str
    judged: int
    wanted: int
    leased: int
    skips: int
    paused: bool
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ItemPage:
    rows: list[ItemRow]
    next_after: int | None  # None: this is the last page
    # Items of batches imported moments ago that a word search does not reach yet (items/search.py)
    unsearched: int = 0


def _status(items: Any, status: Status) -> ColumnElement[bool]:
    return {  # type: ignore[no-any-return]
        Status.unjudged: and_(items.judged == 0, items.completed_at.is_(None)),
        Status.partial: and_(items.judged > 0, items.completed_at.is_(None)),
        Status.complete: items.completed_at.is_not(None),
        Status.paused: items.paused,
    }[status]


def _verdict(verdict: Verdict) -> SQLColumnExpression[bool]:
    return {
        Verdict.preference: Judgment.choice_id.is_not(None),
        Verdict.tie: Judgment.tie,
        Verdict.both_bad: Judgment.both_bad,
        Verdict.ranking: Judgment.ranking.is_not(None),
    }[verdict]


def _judgment_filter(items: Any, project_id: uuid.UUID, f: ItemFilters) -> ColumnElement[bool]:
    """Items with at least one judgment that meets every judgment filter."""
    conditions: list[SQLColumnExpression[bool]] = [Judgment.project_id == project_id]
    if f.rater_id is not None:
        conditions.append(Judgment.rater_id == f.rater_id)
    if f.verdict is not None:
        conditions.append(_verdict(f.verdict))
    if f.has_rationale:
        conditions.append(Judgment.rationale != "")
    return items.id.in_(select(Judgment.item_id).where(*conditions))  # type: ignore[no-any-return]


def _skip_filter(items: Any, project_id: uuid.UUID, f: ItemFilters) -> ColumnElement[bool]:
    conditions = [Assignment.project_id == project_id, Assignment.status == AssignmentStatus.skipped]
    if f.rater_id is not None:
        conditions.append(Assignment.rater_id == f.rater_id)
    return items.id.in_(select(Assignment.item_id).where(*conditions))  # type: ignore[no-any-return]


def _conditions(
    items: Any, project_id: uuid.UUID, f: ItemFilters, pending: Sequence[search.Pending] = ()
) -> list[ColumnElement[bool]]:
    """The filters on `items` (the table, or a sample of it), keyset excluded; `pending`: the batches
    whose search vectors are still being written (items/search.py)."""
    conditions: list[ColumnElement[bool]] = []
    if f.batch_id is not None:
        conditions.append(items.batch_id == f.batch_id)
    if f.status is not None:
        conditions.append(_status(items, f.status))
    if f.judgment_filtered:
        conditions.append(_judgment_filter(items, project_id, f))
    if f.skipped:
        conditions.append(_skip_filter(items, project_id, f))
    if f.q:
        conditions.append(search.matches(items, f.q, pending))
    return conditions


def density_probe(project_id: uuid.UUID, f: ItemFilters, pending: Sequence[search.Pending] = ()) -> Select[Any] | None:
    """How many of the next SAMPLE items in import order match (None: no filter, nothing to probe)."""
    if not f.query(after=None):
        return None
    sample = select(Item).where(Item.project_id == project_id)
    if f.after is not None:
        sample = sample.where(Item.seq > f.after)
    rows = aliased(Item, sample.order_by(Item.seq).limit(SAMPLE).subquery("sample"))
    return select(func.count()).where(*_conditions(rows, project_id, f, pending)).select_from(rows)


def browse_query(
    project_id: uuid.UUID,
    f: ItemFilters,
    *,
    limit: int = PAGE_SIZE,
    sparse: bool = False,
    pending: Sequence[search.Pending] = (),
) -> Select[Any]:
    """The statement behind one page of the browser (the bench times this very statement).

    Items are read in import order (`ix_items_project_seq`) and filtered, which stops as soon as a
    page is full: right when matches are common. When the next SAMPLE items hold less than a page
    of matches (`sparse`, counted first by `density_probe`), walking the import order could pass
    every item, so the order is written `seq + 0`, which no index serves: PostgreSQL then starts
    from a filter's own index (GIN for words, the partial indexes for ties, rationales, skips, the
    rater's index) and sorts the matches. PostgreSQL's own estimates cannot make this choice: a word
    missing from its statistics is assumed to be in about 0.5% of the rows, absent or not.
    """
    skips = (
        select(func.count())
        .where(
            Assignment.project_id == project_id,
            Assignment.item_id == Item.id,
            Assignment.status == AssignmentStatus.skipped,
        )
        .scalar_subquery()
    )
    query = (
        select(
            Item.id,
            Item.seq,
            Item.external_id,
            EXCERPT.label("excerpt"),
            Batch.name.label("batch_name"),
            Item.judged,
            Item.wanted,
            Item.leased,
            skips.label("skips"),
            Item.paused,
            Item.completed_at,
        )
        .join(Batch, Batch.id == Item.batch_id)
        .where(Item.project_id == project_id, *_conditions(Item, project_id, f, pending))
    )
    order = Item.seq + 0 if sparse else Item.seq
    if f.after is not None:
        query = query.where(order > f.after)
    return query.order_by(order).limit(limit + 1)


_BROWSE_SETTINGS = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), set_config('jit', 'off', true)"
)


async def browse(session: AsyncSession, project: Project, filters: ItemFilters) -> ItemPage:
    """One page of the project's items in import order, after `filters.after`."""
    # asyncpg prepares each statement once per connection; after five runs PostgreSQL may switch
    # to a generic plan that cannot see the filter values. A common word (in most items) then
    # gets the plan made for a rare one: all matches from the GIN index, then a sort (seconds at
    # 1M items) instead of walking the import order until a page is full (under a millisecond).
    # No JIT compilation either: the words computed for items not indexed yet (items/search.py) make
    # PostgreSQL's estimate large enough to compile and optimise the plan, 0.85 s for a query that
    # runs in 0.6 s (a search right after a 100,000-item import; docs/BENCHMARKS.md).
    await session.execute(_BROWSE_SETTINGS)
    pending = await search.pending_batches(session, project.id) if filters.q else []
    probe = density_probe(project.id, filters, pending)
    sparse = probe is not None and (await session.scalar(probe) or 0) <= PAGE_SIZE
    query = browse_query(project.id, filters, sparse=sparse, pending=pending)
    rows = [ItemRow(**r._asdict()) for r in await session.execute(query)]
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return ItemPage(rows=rows, next_after=rows[-1].seq if more else None, unsearched=sum(p.left for p in pending))


# --- one item ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JudgmentView:
    id: uuid.UUID
    rater_id: uuid.UUID
    rater_email: str
    verdict: str
    strength: int | None
    shown: str  # the order the rater saw: "A = #2, B = #1"
    created_at: datetime
    active_ms: int | None
    rationale: str | None
    surplus_reason: str | None
    # a tie, a choice or a ranking (a subtask: a yes/no or a rating): it can be used as the gold answer
    names_a_winner: bool = False
    revision: int = 1
    revised_at: datetime | None = None
    # The verdicts later revisions replaced, oldest first (labeling/revisions.py keeps them).
    earlier: tuple["RevisionView", ...] = ()


@dataclass(frozen=True, slots=True)
class RevisionView:
    """One replaced verdict of a judgment, as the item page lists it."""

    revision: int
    verdict: str
    strength: int | None
    rationale: str | None
    sent_at: datetime
    replaced_at: datetime


@dataclass(frozen=True, slots=True)
class SkipView:
    rater_id: uuid.UUID
    rater_email: str
    reason: str | None
    at: datetime | None


@dataclass(frozen=True, slots=True)
class ItemDetail:
    item: Item
    batch: Batch
    prompt: Prompt
    candidates: list[Candidate]
    judgments: list[JudgmentView]
    skips: list[SkipView]


def _shown(
    judgment: Judgment | JudgmentRevision, shown_order: list[uuid.UUID], positions: dict[uuid.UUID, int]
) -> Shown:
    return Shown(
        order=[positions[c] for c in shown_order if c in positions],
        choice=positions.get(judgment.choice_id) if judgment.choice_id else None,
        ranking=[positions[c] for c in judgment.ranking or () if c in positions] or None,
        tie=judgment.tie,
        both_bad=judgment.both_bad,
        answer=judgment.answer,
    )


def _judgment_view(
    judgment: Judgment,
    email: str,
    shown_order: list[uuid.UUID],
    positions: dict[uuid.UUID, int],
    earlier: Sequence[JudgmentRevision] = (),
) -> JudgmentView:
    view = describe(_shown(judgment, shown_order, positions))
    replaced = tuple(
        RevisionView(
            revision=r.revision, verdict=describe(_shown(r, shown_order, positions)).verdict, strength=r.strength,
            rationale=r.rationale, sent_at=r.sent_at, replaced_at=r.replaced_at,
        )
        for r in earlier
    )  # fmt: skip
    return JudgmentView(
        id=judgment.id, rater_id=judgment.rater_id, rater_email=email, verdict=view.verdict,
        strength=judgment.strength, shown=view.shown, created_at=judgment.created_at,
        active_ms=judgment.active_ms, rationale=judgment.rationale, surplus_reason=judgment.surplus_reason,
        revision=judgment.revision, revised_at=judgment.revised_at, earlier=replaced,
        names_a_winner=judgment.tie or judgment.choice_id is not None or judgment.answer not in (None, "unsure"),
    )  # fmt: skip


async def get_item(session: AsyncSession, item_id: uuid.UUID) -> ItemDetail:
    """An item with its candidates (file order), every judgment (as of now) and every skip."""
    item = await session.get(Item, item_id)
    if item is None:
        raise NotFound(f"No item with id {item_id}.")
    batch = await session.get_one(Batch, item.batch_id)
    candidates = list(
        await session.scalars(select(Candidate).where(Candidate.item_id == item.id).order_by(Candidate.position))
    )
    positions = {c.id: c.position + 1 for c in candidates}
    rows = (
        await session.execute(
            select(Judgment, User.email, Assignment.shown_order)
            .join(User, User.id == Judgment.rater_id)
            .join(Assignment, Assignment.id == Judgment.assignment_id)
            .where(Judgment.item_id == item.id)
            .order_by(Judgment.seq)
        )
    ).all()
    history: dict[uuid.UUID, list[JudgmentRevision]] = {}
    if any(j.revision > 1 for j, _, _ in rows):
        replaced = await session.scalars(
            select(JudgmentRevision)
            .where(JudgmentRevision.judgment_id.in_([j.id for j, _, _ in rows if j.revision > 1]))
            .order_by(JudgmentRevision.judgment_id, JudgmentRevision.revision)
        )
        for r in replaced:
            history.setdefault(r.judgment_id, []).append(r)
    judgments = [_judgment_view(j, email, order, positions, history.get(j.id, [])) for j, email, order in rows]
    skip_rows = await session.execute(
        select(Assignment.rater_id, User.email, Assignment.skip_reason, Assignment.finished_at)
        .join(User, User.id == Assignment.rater_id)
        .where(Assignment.item_id == item.id, Assignment.status == AssignmentStatus.skipped)
        .order_by(Assignment.finished_at)
    )
    skips = [SkipView(rater_id=r[0], rater_email=r[1], reason=r[2], at=r[3]) for r in skip_rows]
    return ItemDetail(
        item=item, batch=batch, prompt=item.prompt, candidates=candidates, judgments=judgments, skips=skips
    )


# --- one rater -----------------------------------------------------------------------------------


COUNT_LIMIT = 10_000  # a rater page counts up to here ("more than 10,000"): counting 500k rows costs a page


async def _count_upto(session: AsyncSession, rows: Select[Any]) -> int:
    """How many rows, counting no further than COUNT_LIMIT + 1."""
    return await session.scalar(select(func.count()).select_from(rows.limit(COUNT_LIMIT + 1).subquery())) or 0


@dataclass(frozen=True, slots=True)
class RaterJudgment:
    judgment: JudgmentView
    item_id: uuid.UUID
    external_id: str
    excerpt: str


@dataclass(frozen=True, slots=True)
class RaterPage:
    rows: list[RaterJudgment]
    next_before: int | None
    judged: int
    skipped: int


async def rater_judgments(session: AsyncSession, project: Project, rater: User, *, before: int | None) -> RaterPage:
    """A rater's judgments in a project, newest first, a page before `before` (a judgment's seq)."""
    query = (
        select(Judgment, Assignment.shown_order, Item.external_id, EXCERPT.label("excerpt"))
        .join(Assignment, Assignment.id == Judgment.assignment_id)
        .join(Item, Item.id == Judgment.item_id)
        .where(Judgment.project_id == project.id, Judgment.rater_id == rater.id)
    )
    if before is not None:
        query = query.where(Judgment.seq < before)
    rows = list(await session.execute(query.order_by(Judgment.seq.desc()).limit(PAGE_SIZE + 1)))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    item_ids = {r[0].item_id for r in rows}
    positions = {
        c_id: pos + 1
        for c_id, pos in await session.execute(
            select(Candidate.id, Candidate.position).where(Candidate.item_id.in_(item_ids))
        )
    }
    judged = await _count_upto(
        session, select(Judgment.id).where(Judgment.project_id == project.id, Judgment.rater_id == rater.id)
    )
    skipped = await _count_upto(
        session,
        select(Assignment.id).where(
            Assignment.project_id == project.id,
            Assignment.rater_id == rater.id,
            Assignment.status == AssignmentStatus.skipped,
        ),
    )
    out = [
        RaterJudgment(_judgment_view(j, rater.email, order, positions), j.item_id, external_id, excerpt or "")
        for j, order, external_id, excerpt in rows
    ]
    return RaterPage(rows=out, next_before=rows[-1][0].seq if more else None, judged=judged or 0, skipped=skipped or 0)


async def batch_names(session: AsyncSession, project: Project) -> list[tuple[uuid.UUID, str]]:
    """(id, name) of the project's batches, oldest first, for the batch filter."""
    rows = await session.execute(
        select(Batch.id, Batch.name).where(Batch.project_id == project.id).order_by(Batch.created_at)
    )
    return [(r[0], r[1]) for r in rows]

"""Gold items in the database: setting and clearing gold, and each rater's gold accuracy.

Locks (docs/ARCHITECTURE.md "Locks"): setting gold locks the item row only (a subtask: it and its
parent, in id order, as a submit does: its parent's gate count moves); clearing it first locks the
project row through `queue.lock_for_reorder` (the item comes back into the queue, at its old
place, so raters' resume points start a new epoch), then the item (and a subtask's parent).
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal_column, null, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import Conflict, Invalid, NotFound
from server.items import subtasks as trees
from server.labeling import queue
from server.models import Candidate, Item, Judgment, Project, ProjectMember, User
from server.models.xid import CURRENT_XID
from server.quality import rules, trust
from server.quality.gold import GoldError, parse_gold, wilson

RECENT_GOLD = 20  # "over the last N gold items"
GOLD_SUBTASKS = ("check", "rating")  # the subtask kinds that take a gold answer
_LOCK_ITEMS = text("SELECT id FROM items WHERE id = ANY(:ids) ORDER BY id FOR NO KEY UPDATE")


async def _item_for_update(session: AsyncSession, project: Project, item_id: uuid.UUID) -> tuple[Item, int]:
    """The item (locked; a subtask with its parent, in id order) and its number of candidates."""
    parent_id = await session.scalar(
        select(Item.parent_id).where(Item.id == item_id, Item.project_id == project.id)
    )  # a tree's parent never changes
    if parent_id is not None:
        await session.execute(_LOCK_ITEMS, {"ids": [item_id, parent_id]})
    item = await session.scalar(
        select(Item)
        .where(Item.id == item_id, Item.project_id == project.id)
        .with_for_update(key_share=False)
        .execution_options(populate_existing=True)
    )
    if item is None:
        raise NotFound(f"No item {item_id} in this project.")
    candidates = await session.scalar(
        text("SELECT count(*) FROM candidates WHERE item_id = :item_id"), {"item_id": item.id}
    )
    return item, int(candidates or 0)


async def set_gold(session: AsyncSession, project: Project, item_id: uuid.UUID, value: dict[str, Any]) -> Item:
    """Make an item gold (or change its answer): it leaves the queue and is served as gold."""
    item, candidates = await _item_for_update(session, project, item_id)
    has_subtasks = await session.scalar(select(Item.id).where(Item.parent_id == item.id).limit(1))
    if has_subtasks is not None or (item.parent_id is not None and item.kind not in GOLD_SUBTASKS):
        raise Conflict(
            "This item is part of a task tree (an item with subtasks, or a comparison or answer subtask); gold "
            "in a tree goes on a check or a rating subtask without subtasks of its own, so make another item gold."
        )
    scale = (item.scale_min, item.scale_max) if item.scale_min is not None and item.scale_max is not None else None
    try:
        answer = parse_gold(value, candidates, kind=item.kind, scale=scale)
    except GoldError as exc:
        raise Invalid(str(exc)) from None
    if item.gold_seq is None and item.leased > 0:
        raise Conflict(
            f"This item is being judged right now ({item.leased} live lease(s)); make it gold once they are "
            "judged or run out, or pause its batch first."
        )
    item.gold = answer.model_dump(exclude_none=True)
    # A new gold answer is a new aggregate revision: `gold=include` item exports deliver it.
    item.aggregate_revision += 1
    item.aggregate_xid = literal_column(CURRENT_XID)
    if item.gold_seq is None:
        item.gold_seq = int(await session.scalar(text("SELECT nextval('items_gold_seq')")) or 0)
        item.wanted = 0
        await trees.gold_changed(session, project, item, gold=True)  # its parent waits for it no more
    await session.flush()
    return item


async def clear_gold(session: AsyncSession, project: Project, item_id: uuid.UUID) -> Item:
    """Turn a gold item back into ordinary work at the project's overlap."""
    overlap = await queue.lock_for_reorder(session, project.id)
    item, _ = await _item_for_update(session, project, item_id)
    if item.gold_seq is None:
        return item
    if item.leased > 0:
        raise Conflict(
            f"This gold item is being judged right now ({item.leased} live lease(s)); try again once they are "
            "judged or run out."
        )
    item.gold = null()  # SQL NULL: None would store JSON null
    item.gold_seq, item.wanted = None, overlap
    await trees.gold_changed(session, project, item, gold=False)  # a gated parent waits for it again
    await session.flush()
    await queue.rewind_to(session, project.id, "i.id = :item_id", {"item_id": item.id})
    await session.refresh(item)
    return item


async def gold_of_judgment(
    session: AsyncSession, project: Project, item_id: uuid.UUID, judgment_id: uuid.UUID
) -> dict[str, Any]:
    """A judgment's current verdict on the item as a gold answer ("use this judgment as gold")."""
    judgment = await session.scalar(
        select(Judgment).where(
            Judgment.id == judgment_id, Judgment.item_id == item_id, Judgment.project_id == project.id
        )
    )
    if judgment is None:
        raise NotFound(f"No judgment {judgment_id} on this item.")
    kind = await session.scalar(select(Item.kind).where(Item.id == item_id))
    if kind == "check":
        if judgment.answer not in ("yes", "no"):
            raise Invalid("An unsure answer is no known answer, so it cannot be a gold answer.")
        return {"answer": judgment.answer}
    if kind == "rating":
        return {"value": judgment.answer}
    if judgment.tie:
        return {"tie": True}
    position = {
        row.id: row.position
        for row in await session.execute(select(Candidate.id, Candidate.position).where(Candidate.item_id == item_id))
    }
    if judgment.ranking:
        return {"ranking": [position[c] for c in judgment.ranking]}
    if judgment.choice_id is None:
        raise Invalid("A both-bad verdict names no better response, so it cannot be a gold answer.")
    return {"preferred": position[judgment.choice_id]}


@dataclass(frozen=True, slots=True)
class GoldFigures:
    user_id: uuid.UUID
    email: str
    suspended: bool
    suspended_reason: str | None
    qualified: bool  # passed or admitted, or the project has no qualification round
    gold_judged: int  # gold judgments stored
    gold_scored: int  # of which could be scored (both-bad is missing)
    gold_accuracy: float | None
    gold_ci: tuple[float, float]
    recent_accuracy: float | None  # over the last RECENT_GOLD scored gold judgments
    recent_ci: tuple[float, float]


def _accuracy(scores: list[float]) -> tuple[float | None, tuple[float, float]]:
    if not scores:
        return None, wilson(0, 0)
    return sum(scores) / len(scores), wilson(sum(scores), len(scores))


async def gold_figures(session: AsyncSession, project: Project) -> list[GoldFigures]:
    """Each member's gold accuracy (overall and recent) with 95% Wilson intervals, by email.

    A judgment scores its first revision, the verdict first sent (quality/rules.py)."""
    judged: dict[uuid.UUID, int] = defaultdict(int)
    scored: dict[uuid.UUID, list[float]] = defaultdict(list)
    for scored_row in await rules.project_scores(session, project):  # each as first sent
        judged[scored_row.rater_id] += 1
        if scored_row.value is not None:
            scored[scored_row.rater_id].append(scored_row.value)
    members = await session.execute(
        select(User.id, User.email, ProjectMember.suspended_at, ProjectMember.suspended_reason, trust.qualified())
        .join(ProjectMember, ProjectMember.user_id == User.id)
        .where(ProjectMember.project_id == project.id)
        .order_by(User.email)
    )
    figures = []
    for user_id, email, suspended_at, suspended_reason, qualified in members:
        overall, overall_ci = _accuracy(scored[user_id])
        recent, recent_ci = _accuracy(scored[user_id][-RECENT_GOLD:])
        figures.append(
            GoldFigures(
                user_id=user_id,
                email=email,
                suspended=suspended_at is not None,
                suspended_reason=suspended_reason,
                qualified=bool(qualified),
                gold_judged=judged[user_id],
                gold_scored=len(scored[user_id]),
                gold_accuracy=overall,
                gold_ci=overall_ci,
                recent_accuracy=recent,
                recent_ci=recent_ci,
            )
        )
    return figures

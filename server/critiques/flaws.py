"""When a planted flaw counts as caught: the one place for the rule (issue 11).

A flaw planted on purpose in a candidate (`planted_flaws`, hidden from raters like gold) is caught
by a judgment when

- the rater marked a flaw (`flaws`, part of the judgment) whose span overlaps it: same candidate,
  same chat message (both None for a text response), and the two `[start, end)` ranges share at
  least one code point; or
- the item is a two-candidate comparison, exactly one of the two candidates carries planted flaws,
  and the judgment prefers the other one. Preferring means the verdict's chosen candidate
  (`choice_id`, which is also a ranking's first): on a strength scale only the direction counts,
  not how strong; a tie or "both bad" prefers neither.

Each planted flaw counts once however many marks overlap it. A judgment's current verdict and flaws
count (a revision replaces both): raters are never told about planted flaws, so a revision cannot
learn from them, and a verdict followed by gold feedback cannot be revised at all.

`caught` is the pure rule; `catch_counts` reads a project's judgments and applies it, for the
assistance report (catch rate per arm) and the admin item page ("caught by 2 of 3 raters").
"""

import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import Uuid, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Candidate, Flaw, Judgment, PlantedFlaw


@dataclass(frozen=True, slots=True)
class PlantedSpan:
    candidate_id: uuid.UUID
    start: int
    end: int
    message: int | None = None
    id: uuid.UUID | None = None  # the planted flaw's row (the admin item page names it)


@dataclass(frozen=True, slots=True)
class MarkedSpan:
    candidate_id: uuid.UUID
    start: int
    end: int
    message: int | None = None


def overlaps(planted: PlantedSpan, marked: MarkedSpan) -> bool:
    """Same candidate, same message, and at least one code point in common."""
    return (
        planted.candidate_id == marked.candidate_id
        and planted.message == marked.message
        and planted.start < marked.end
        and marked.start < planted.end
    )


def caught_each(planted: Sequence[PlantedSpan], marked: Sequence[MarkedSpan], *, preferred_other: bool) -> list[bool]:
    """For each planted flaw, in order, whether the judgment caught it."""
    return [preferred_other or any(overlaps(p, m) for m in marked) for p in planted]


def caught(planted: Sequence[PlantedSpan], marked: Sequence[MarkedSpan], *, preferred_other: bool) -> int:
    """How many of `planted` a judgment caught (`preferred_other`: see `prefers_other`)."""
    return sum(caught_each(planted, marked, preferred_other=preferred_other))


def prefers_other(
    candidates: Collection[uuid.UUID],
    flawed: Collection[uuid.UUID],
    *,
    preferred: uuid.UUID | None,
    tie: bool = False,
    both_bad: bool = False,
) -> bool:
    """Whether a verdict prefers the candidate without planted flaws, in a two-candidate comparison
    where exactly one carries them. `preferred` is the chosen candidate (a ranking's first)."""
    if len(candidates) != 2 or len(set(flawed)) != 1 or tie or both_bad or preferred is None:
        return False
    return preferred in candidates and preferred not in flawed


async def catch_counts(
    session: AsyncSession, project_id: uuid.UUID, judgment_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, tuple[int, int]]:
    """`(planted, caught)` for each judgment of the project on an item with planted flaws.

    With `judgment_ids`, only those of them (ids of other projects, or of items without planted
    flaws, are left out of the answer). Surplus judgments count like the others: each is a rater's
    verdict on what they were shown.
    """
    catches = await _catches(session, project_id, judgment_ids)
    return {j: (len(each), sum(hit for _, hit in each)) for j, each in catches.items()}


async def _catches(
    session: AsyncSession, project_id: uuid.UUID, judgment_ids: Sequence[uuid.UUID] | None
) -> dict[uuid.UUID, list[tuple[PlantedSpan, bool]]]:
    """For each judgment (as in `catch_counts`), each planted flaw of its item and whether it was caught."""
    planted_by_item: dict[uuid.UUID, list[PlantedSpan]] = defaultdict(list)
    for row in await session.execute(
        select(
            PlantedFlaw.id,
            PlantedFlaw.item_id,
            PlantedFlaw.candidate_id,
            PlantedFlaw.span_start,
            PlantedFlaw.span_end,
            PlantedFlaw.span_message,
        )
        .where(PlantedFlaw.project_id == project_id)
        .order_by(PlantedFlaw.item_id, PlantedFlaw.created_at, PlantedFlaw.id)
    ):
        planted_by_item[row.item_id].append(
            PlantedSpan(row.candidate_id, row.span_start, row.span_end, row.span_message, id=row.id)
        )
    if not planted_by_item or (judgment_ids is not None and not judgment_ids):
        return {}
    ids = bindparam("ids", list(planted_by_item), type_=ARRAY(Uuid))
    judgments = select(Judgment.id, Judgment.item_id, Judgment.choice_id, Judgment.tie, Judgment.both_bad).where(
        Judgment.project_id == project_id, Judgment.item_id == any_(ids)
    )
    if judgment_ids is not None:
        judgments = judgments.where(
            Judgment.id == any_(bindparam("judgment_ids", list(judgment_ids), type_=ARRAY(Uuid)))
        )
    verdicts = (await session.execute(judgments)).all()
    if not verdicts:
        return {}
    candidates: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for pair in await session.execute(
        select(Candidate.item_id, Candidate.id).where(
            Candidate.item_id == any_(bindparam("items", list({v.item_id for v in verdicts}), type_=ARRAY(Uuid)))
        )
    ):
        candidates[pair.item_id].append(pair.id)
    marked: dict[uuid.UUID, list[MarkedSpan]] = defaultdict(list)
    for mark in await session.execute(
        select(Flaw.judgment_id, Flaw.candidate_id, Flaw.span_start, Flaw.span_end, Flaw.span_message).where(
            Flaw.project_id == project_id,
            Flaw.judgment_id == any_(bindparam("judged", [v.id for v in verdicts], type_=ARRAY(Uuid))),
        )
    ):
        marked[mark.judgment_id].append(
            MarkedSpan(mark.candidate_id, mark.span_start, mark.span_end, mark.span_message)
        )
    out: dict[uuid.UUID, list[tuple[PlantedSpan, bool]]] = {}
    for v in verdicts:
        planted = planted_by_item[v.item_id]
        other = prefers_other(
            candidates[v.item_id],
            {p.candidate_id for p in planted},
            preferred=v.choice_id,
            tie=v.tie,
            both_bad=v.both_bad,
        )
        out[v.id] = list(zip(planted, caught_each(planted, marked[v.id], preferred_other=other), strict=True))
    return out


@dataclass(frozen=True, slots=True)
class ItemCatches:
    """An item's judgments against its planted flaws (the admin item page)."""

    by_judgment: dict[uuid.UUID, tuple[int, int]]  # judgment → (planted, caught)
    by_planted: dict[uuid.UUID, int]  # planted flaw → how many judgments caught it
    judgments: int


async def item_catches(session: AsyncSession, item_id: uuid.UUID) -> ItemCatches:
    """How each of an item's judgments fared against its planted flaws, and each flaw's catches."""
    project_id = await session.scalar(select(Judgment.project_id).where(Judgment.item_id == item_id).limit(1))
    if project_id is None:
        return ItemCatches(by_judgment={}, by_planted={}, judgments=0)
    ids = list(await session.scalars(select(Judgment.id).where(Judgment.item_id == item_id)))
    catches = await _catches(session, project_id, ids)
    by_planted: dict[uuid.UUID, int] = defaultdict(int)
    for each in catches.values():
        for planted, hit in each:
            if planted.id is not None:
                by_planted[planted.id] += hit
    return ItemCatches(
        by_judgment={j: (len(each), sum(hit for _, hit in each)) for j, each in catches.items()},
        by_planted=dict(by_planted),
        judgments=len(catches),
    )

"""Whether an assignment shows assistance (critiques): decided once, at lease time, by the server.

`always` and `never` are what they say. In an `experiment` each rater's assignments are split
between the arms by restricted randomisation: with `n` decisions made for the rater so far and `s`
of them assisted, the next one is assisted with probability `ratio·(n+1) - s` (clipped to [0, 1]).
That keeps `|s - ratio·n| < 1` after every lease, so each rater's arms stay within one assignment
of the ratio, while every single decision stays random (at ratio 0.5: a random order within each
pair of leases; the first decision is assisted with the ratio's chance; at other ratios the chance
of a later decision depends on the ones before it, and averages to the ratio). The two counters
live on the rater's membership row, which every pick already locks first (docs/ARCHITECTURE.md
"Locks"): no history is read, and the pick's cost stays flat.

The decision is stored on the assignment (`assistance`: policy, ratio, shown, and the ids of the
critiques shown) and copied to its judgment (`assistance_shown`); no request can change it. An
experiment report reads both. Leases that run out or are skipped keep their decision: the balance
is over leases, as randomised.
"""

import random
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.critiques.schemas import MAX_CRITIQUES_PER_ITEM
from server.models import Assignment, Assistance, Critique, Project, ProjectMember


def assisted_probability(*, decided: int, shown: int, ratio: float) -> float:
    """The chance that the rater's next assignment is assisted, given their decisions so far."""
    return min(1.0, max(0.0, ratio * (decided + 1) - shown))


def is_shown(assignment: Assignment) -> bool:
    return bool(assignment.assistance and assignment.assistance.get("shown"))


def shown_ids(assignment: Assignment) -> list[str]:
    """The ids of the critiques the assignment shows (none when unassisted)."""
    if not is_shown(assignment):
        return []
    return [str(c) for c in (assignment.assistance or {}).get("critiques", [])]


async def decide(
    session: AsyncSession,
    *,
    project: Project,
    member: ProjectMember,
    assignment: Assignment,
    rng: random.Random | None = None,
) -> None:
    """Decide and record whether a new lease shows assistance (the membership is locked by the caller)."""
    policy = project.assistance
    if policy == Assistance.never:
        return
    record: dict[str, Any] = {"policy": policy}
    if policy == Assistance.experiment:
        ratio = project.assistance_ratio
        chance = assisted_probability(decided=member.assist_leases, shown=member.assist_shown, ratio=ratio)
        shown = (rng or random).random() < chance
        member.assist_leases += 1
        member.assist_shown += int(shown)
        record |= {"ratio": ratio, "sequence": member.assist_leases}  # the nth decision for this rater
    else:
        shown = True
    record["shown"] = shown
    if shown:
        ids = await session.scalars(
            select(Critique.id)
            .where(Critique.item_id == assignment.item_id)
            .order_by(Critique.seq)
            .limit(MAX_CRITIQUES_PER_ITEM)
        )
        record["critiques"] = [str(i) for i in ids]
    assignment.assistance = record
    await session.flush()

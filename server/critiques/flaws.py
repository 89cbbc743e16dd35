"""Which planted flaws a judgment caught (the report's reading until the flaws feature lands on main).

A planted flaw counts as caught when the rater marks an overlapping span of the same candidate (and
message), or, in a two-candidate comparison where exactly one candidate carries planted flaws,
prefers the other one (a choice or a ranking's first place).
"""

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_PLANTED = text(
    "SELECT item_id, candidate_id, span_message, span_start, span_end FROM planted_flaws WHERE project_id = :project_id"
)
_VERDICTS = text(
    """
    SELECT j.id, j.item_id, coalesce(j.choice_id, j.ranking[1]) AS preferred,
           (SELECT array_agg(c.id) FROM candidates c WHERE c.item_id = j.item_id) AS candidates
    FROM judgments j
    WHERE j.project_id = :project_id AND j.item_id IN (SELECT item_id FROM planted_flaws WHERE project_id = :project_id)
    """
)
_MARKED = text(
    "SELECT judgment_id, candidate_id, span_message, span_start, span_end FROM flaws WHERE project_id = :project_id"
)

Span = tuple[uuid.UUID, int | None, int, int]  # candidate, message, start, end


def _overlaps(a: Span, b: Span) -> bool:
    return a[0] == b[0] and a[1] == b[1] and a[2] < b[3] and b[2] < a[3]


async def catch_counts(
    session: AsyncSession, project_id: uuid.UUID, judgment_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, tuple[int, int]]:
    """`(planted, caught)` for each judgment of the project on an item with planted flaws."""
    params = {"project_id": project_id}
    planted: dict[uuid.UUID, list[Span]] = defaultdict(list)
    for row in await session.execute(_PLANTED, params):
        planted[row.item_id].append((row.candidate_id, row.span_message, row.span_start, row.span_end))
    if not planted:
        return {}
    marked: dict[uuid.UUID, list[Span]] = defaultdict(list)
    for row in await session.execute(_MARKED, params):
        marked[row.judgment_id].append((row.candidate_id, row.span_message, row.span_start, row.span_end))
    wanted = None if judgment_ids is None else set(judgment_ids)
    out: dict[uuid.UUID, tuple[int, int]] = {}
    for row in await session.execute(_VERDICTS, params):
        if wanted is not None and row.id not in wanted:
            continue
        flaws = planted[row.item_id]
        carriers = {f[0] for f in flaws}
        other = None
        if len(row.candidates or ()) == 2 and len(carriers) == 1:
            other = next(c for c in row.candidates if c not in carriers)
        prefers_other = other is not None and row.preferred == other
        caught = sum(prefers_other or any(_overlaps(f, m) for m in marked[row.id]) for f in flaws)
        out[row.id] = (len(flaws), caught)
    return out

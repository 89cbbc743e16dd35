"""Rater reliability fitted from a project's judgments, cached per data version.

`rater_fit` runs the Dawid-Skene EM (aggregate.py) over every judgment of the project (gold and
surplus ones too: each is a rater's honest answer, and gold anchors the confusion) once per data
version (cache.py), and returns the fitted class prior and per-rater confusion. Exports with
`aggregation=weighted` then label each item while they stream (`aggregate.posterior`, the
per-item E-step), so a pull over a million judgments never runs EM itself. Raters are keyed by
their user id as text, units by (item id, a, b) with a < b upload positions.
"""

import asyncio
import uuid
from collections.abc import Hashable, Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Project
from server.quality import aggregate
from server.quality.cache import cached

CACHE_NAME = "dawid-skene"

# Every judgment's verdict with candidates as upload positions, and its item's gold answer.
_VERDICTS = text(
    """
    WITH sizes AS (
        SELECT c.item_id, count(*) AS n FROM candidates c JOIN items i ON i.id = c.item_id
        WHERE i.project_id = :project_id GROUP BY c.item_id
    )
    SELECT j.item_id, j.rater_id, cc.position AS choice, j.tie, j.both_bad, sizes.n, i.gold,
           (SELECT array_agg(c.position ORDER BY r.ord)
              FROM unnest(j.ranking) WITH ORDINALITY AS r(id, ord) JOIN candidates c ON c.id = r.id) AS ranking
    FROM judgments j
    JOIN items i ON i.id = j.item_id
    JOIN sizes ON sizes.item_id = j.item_id
    LEFT JOIN candidates cc ON cc.id = j.choice_id
    WHERE j.project_id = :project_id
    """
)


def _fit(rows: Sequence[Row[Any]]) -> dict[str, Any]:
    """Build the EM's observations from the verdict rows and fit (CPU work: run in a worker thread)."""
    observations: list[aggregate.Observation] = []
    gold: dict[Hashable, int] = {}
    for row in rows:
        item = str(row.item_id)
        pairs = aggregate.pair_labels(
            row.n,
            choice=row.choice,
            ranking=list(row.ranking) if row.ranking else None,
            tie=row.tie,
            both_bad=row.both_bad,
        )
        observations.extend(
            aggregate.Observation(unit=(item, a, b), rater=str(row.rater_id), label=label) for (a, b), label in pairs
        )
        if row.gold is not None:
            for (a, b), cls in aggregate.gold_labels(row.n, row.gold).items():
                gold[(item, a, b)] = cls
    fitted = aggregate.fit(observations, gold=gold)
    payload = fitted.to_json()
    payload["judgments_units"] = len(fitted.posteriors)
    return payload


async def _compute(session: AsyncSession, project_id: uuid.UUID) -> dict[str, Any]:
    rows = (await session.execute(_VERDICTS, {"project_id": project_id})).all()
    # Seconds of Python at a million judgments: in a worker thread, so the server's other requests go on.
    return await asyncio.to_thread(_fit, rows)


async def rater_fit(session: AsyncSession, project: Project) -> aggregate.Fit:
    """The project's fitted rater reliability for its current data version (computed on a miss).

    The caller's transaction stores a newly computed snapshot: commit at the request boundary."""

    project_id = project.id

    async def compute(own: AsyncSession) -> dict[str, Any]:
        return await _compute(own, project_id)

    # While raters work the fit of an older data version is used (and a new one computed in the
    # background, cache.py): the rater model moves slowly, and a pull never waits tens of seconds.
    figure = await cached(session, project_id, CACHE_NAME, compute)
    return aggregate.Fit.from_json(figure.payload)

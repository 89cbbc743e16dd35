"""The model leaderboard of a project: its battles gathered in one query, rated, cached per data version.

Every stored judgment counts (gold, surplus and suspended raters' judgments included: each is a
person comparing two models' responses), except both-bad verdicts. A battle is a pair of the
item's candidates whose `model` labels differ: a pair judgment gives one, a ranking one per pair
of candidates, a tie one half win each (server/quality/leaderboard.py has the fit).

The query reads the project's judgments once (grouped by verdict, so identical verdicts on an
item are counted rather than repeated), pairs them with the item's labelled candidates through
`candidates (item_id, position)`, and returns battles counted by (model, model, score) in a hash
aggregate: a few rows per pair of models however many judgments there are. Which model of a pair
comes first is settled in Python afterwards (ordering the pair in SQL made PostgreSQL sort every
row). The bootstrap then costs the same at a thousand judgments as at a million, and the figure
is cached per data version (server/quality/cache.py), so a page load after the first one reads
one row.
"""

import asyncio
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Project
from server.quality.cache import cached
from server.quality.leaderboard import Battles, leaderboard

CACHE_NAME = "leaderboard"

_BATTLES = text(
    """
    WITH verdicts AS (
        SELECT item_id, choice_id, ranking, tie, count(*) AS n
        FROM judgments
        WHERE project_id = :project_id AND NOT both_bad
        GROUP BY item_id, choice_id, ranking, tie
    ), pairs AS (
        SELECT a.item_id, a.id AS a_id, b.id AS b_id, a.model AS a_model, b.model AS b_model
        FROM items i
        JOIN candidates a ON a.item_id = i.id AND a.model IS NOT NULL
        JOIN candidates b ON b.item_id = i.id AND b.position > a.position AND b.model IS NOT NULL
                         AND b.model <> a.model
        WHERE i.project_id = :project_id
    ), scored AS (
        SELECT p.a_model, p.b_model, v.n,
               CASE WHEN v.tie THEN 0.5
                    WHEN v.ranking IS NOT NULL THEN
                        CASE WHEN array_position(v.ranking, p.a_id) < array_position(v.ranking, p.b_id) THEN 1.0
                             WHEN array_position(v.ranking, p.a_id) > array_position(v.ranking, p.b_id) THEN 0.0
                        END
                    WHEN v.choice_id = p.a_id THEN 1.0
                    WHEN v.choice_id = p.b_id THEN 0.0
               END AS score
        FROM verdicts v JOIN pairs p ON p.item_id = v.item_id
    )
    SELECT a_model, b_model, score::float8 AS score, sum(n)::bigint AS n
    FROM scored
    WHERE score IS NOT NULL
    GROUP BY 1, 2, 3
    """
)

_LABELLED_MODELS = text(
    """
    SELECT DISTINCT c.model FROM items i JOIN candidates c ON c.item_id = i.id
    WHERE i.project_id = :project_id AND c.model IS NOT NULL
    ORDER BY c.model LIMIT 2
    """
)

NO_LABELS = (
    "No response in this project carries a model label, so there are no models to rank. "
    'Import responses with a "model" field (for example "model": "gpt-4o") to get a leaderboard.'
)
ONE_MODEL = (
    "Every labelled response in this project comes from one model ({model}): a leaderboard needs "
    "judgments between responses of two different models."
)
NO_BATTLES = (
    "No judgment compares responses of two different models yet (both-bad verdicts are left out); "
    "the leaderboard fills in as raters judge."
)


async def battles(session: AsyncSession, project: Project) -> Battles:
    """The project's battles, counted by (model, model, score for the first), the models in name order."""
    counted: dict[tuple[str, str, float], int] = defaultdict(int)
    for a, b, score, n in await session.execute(_BATTLES, {"project_id": project.id}):
        key = (a, b, score) if a < b else (b, a, 1.0 - score)
        counted[key] += n
    return Battles.from_rows((a, b, s, n) for (a, b, s), n in sorted(counted.items()))


async def _why_empty(session: AsyncSession, project: Project) -> str:
    models = list(await session.scalars(_LABELLED_MODELS, {"project_id": project.id}))
    if not models:
        return NO_LABELS
    if len(models) == 1:
        return ONE_MODEL.format(model=models[0])
    return NO_BATTLES


@dataclass(frozen=True, slots=True)
class ProjectLeaderboard:
    """The cached figure: ratings best first, the matrices in that order, and why it is empty if it is."""

    ratings: list[dict[str, Any]]
    models: list[str]
    win_rate: list[list[float | None]]
    battles: list[list[int]]
    total_battles: int
    bootstrap: int
    pseudo_wins: float
    empty_reason: str | None
    data_version: str
    current: bool  # False: the figure of an older data version, while a fresh one is computed
    computed_at: datetime


async def get(
    session: AsyncSession, project: Project, *, fresh: bool = False, page: bool = False
) -> ProjectLeaderboard:
    """The project's leaderboard for its current data version (computed on the first request after a change).

    `page`: a first computation runs in the background (cache.Computing when it is not ready soon)."""

    project_id = project.id

    async def compute(session: AsyncSession) -> dict[str, Any]:
        mine = await session.get_one(Project, project_id)  # the caller's objects are not for a background session
        # The bootstrap is a second of numpy at most: in a worker thread, so other requests go on meanwhile.
        board = await asyncio.to_thread(leaderboard, await battles(session, mine))
        figure = asdict(board)
        figure["empty_reason"] = None if board.ratings else await _why_empty(session, mine)
        return figure

    cached_figure = await cached(session, project.id, CACHE_NAME, compute, fresh=fresh, page=page)
    figure, version = cached_figure.payload, cached_figure.version
    return ProjectLeaderboard(
        ratings=list(figure["ratings"]),
        models=list(figure["models"]),
        win_rate=[list(row) for row in figure["win_rate"]],
        battles=[list(row) for row in figure["battles"]],
        total_battles=int(figure["total_battles"]),
        bootstrap=int(figure["bootstrap"]),
        pseudo_wins=float(figure["pseudo_wins"]),
        empty_reason=figure["empty_reason"],
        data_version=version,
        current=cached_figure.current,
        computed_at=cached_figure.computed_at,
    )

"""The hand-off report's queries (the figures are computed in report.py)."""

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.handoff import report
from server.handoff.rules import verdict_key
from server.models import Project
from server.quality.cache import cached

CACHE_NAME = "handoff"

# Both read the partial index ix_items_handoff (items the hand-off resolved or handed to humans).
_RESOLVED = text(
    """
    SELECT count(*) FILTER (WHERE label_source = 'model') AS items,
           coalesce(sum(wanted) FILTER (WHERE label_source = 'model'), 0) AS saved,
           count(*) FILTER (WHERE spot_check) AS spot_checked
    FROM items
    WHERE project_id = :project_id AND (label_source IS NOT NULL OR handoff_reason IS NOT NULL)
    """
)
_CHECKED = text(
    """
    SELECT i.id AS item_id, i.spot_check, j.rater_kind, j.choice_id, j.ranking, j.tie, j.both_bad, j.confidence
    FROM items i JOIN judgments j ON j.item_id = i.id AND NOT j.surplus AND NOT j.gold
    WHERE i.project_id = :project_id AND i.handoff_reason IS NOT NULL AND i.completed_at IS NOT NULL
      AND i.label_source IS NULL AND (i.label_source IS NOT NULL OR i.handoff_reason IS NOT NULL)
    ORDER BY i.id, j.seq
    """
)


async def handoff_report(session: AsyncSession, project: Project, *, page: bool = False) -> dict[str, Any]:
    """Model-resolved and human-checked items, the spot checks' agreement and its calibration by confidence.

    Cached per data version (quality/cache.py; every routing decision comes with a judgment or a
    new queue epoch) and always for the current version: computed again only after a change. A
    `page` gets a first computation in the background (cache.Computing when it is not ready soon).
    """
    project_id = project.id

    async def compute(own: AsyncSession) -> dict[str, Any]:
        return await _compute(own, project_id)

    return (await cached(session, project_id, CACHE_NAME, compute, fresh=True, page=page)).payload


async def _compute(session: AsyncSession, project_id: uuid.UUID) -> dict[str, Any]:
    resolved = (await session.execute(_RESOLVED, {"project_id": project_id})).one()
    models: dict[uuid.UUID, list[tuple[tuple[Any, ...], float | None]]] = defaultdict(list)
    humans: dict[uuid.UUID, list[tuple[Any, ...]]] = defaultdict(list)
    spot: dict[uuid.UUID, bool] = {}
    for row in await session.execute(_CHECKED, {"project_id": project_id}):
        key = verdict_key(choice=row.choice_id, ranking=row.ranking, tie=row.tie, both_bad=row.both_bad)
        spot[row.item_id] = row.spot_check
        if row.rater_kind == "model":
            models[row.item_id].append((key, row.confidence))
        else:
            humans[row.item_id].append(key)
    checked = [
        report.Checked(spot_check=spot[item], models=models[item], humans=humans[item]) for item in spot if models[item]
    ]
    return report.build(
        checked,
        model_resolved=int(resolved.items),
        human_judgments_saved=int(resolved.saved),
        human_resolved=len(checked),
        spot_checked=int(resolved.spot_checked),
    )

"""The hand-off report's queries (the figures are computed in report.py)."""

import asyncio
import uuid
from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.handoff import report, threshold
from server.handoff.rules import MODELS_DISAGREE, NO_CONFIDENCE, Rule, verdict_key
from server.labeling.handoff import HANDOFF_OFF
from server.models import Project
from server.quality.cache import cached

# The snapshot holds the report and the threshold curve ("handoff" held the report alone, before the curve).
CACHE_NAME = "handoff-report"
# Routed by confidence: the models' verdicts could have stood (else their confidence is taken as 0).
_NOT_BY_CONFIDENCE = (MODELS_DISAGREE, NO_CONFIDENCE)

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
    SELECT i.id AS item_id, i.spot_check, i.handoff_reason,
           j.rater_kind, j.choice_id, j.ranking, j.tie, j.both_bad, j.confidence
    FROM items i JOIN judgments j ON j.item_id = i.id AND NOT j.surplus AND NOT j.gold
    WHERE i.project_id = :project_id AND i.handoff_reason IS NOT NULL AND i.completed_at IS NOT NULL
      AND i.label_source IS NULL AND (i.label_source IS NOT NULL OR i.handoff_reason IS NOT NULL)
    ORDER BY i.id, j.seq
    """
)
# Every item the models routed (the hand-off's own decisions, not the items a turned-off rule opened),
# with the models' lowest confidence: the population whose share each threshold sends to humans.
_ROUTED = text(
    """
    SELECT CASE WHEN i.handoff_reason IN (:disagree, :no_confidence) THEN 0 ELSE min(j.confidence) END AS confidence
    FROM items i JOIN judgments j ON j.item_id = i.id AND j.rater_kind = 'model' AND NOT j.surplus AND NOT j.gold
    WHERE i.project_id = :project_id AND (i.label_source IS NOT NULL OR i.handoff_reason IS NOT NULL)
      AND i.handoff_reason IS DISTINCT FROM :off
    GROUP BY i.id
    """
)


async def handoff_report(
    session: AsyncSession,
    project: Project,
    *,
    savings: float = threshold.SAVINGS,
    budget: float = threshold.BUDGET,
    bound: threshold.Bound = "estimate",
    page: bool = False,
) -> dict[str, Any]:
    """Model-resolved and human-checked items, the spot checks' agreement and its calibration by confidence,
    each threshold's human share and estimated cost, and the threshold suggested for `savings` and `budget`.

    Cached per data version (quality/cache.py; every routing decision comes with a judgment or a
    new queue epoch, and so does a new rule) and always for the current version: computed again
    only after a change. The suggestion is not cached: it is read off the cached curve for the
    goals asked. A `page` gets a first computation in the background (cache.Computing when it is
    not ready soon).
    """
    project_id = project.id
    rate = (Rule.of(project.handoff) or Rule()).spot_check_rate

    async def compute(own: AsyncSession) -> dict[str, Any]:
        return await _compute(own, project_id, rate)

    payload = (await cached(session, project_id, CACHE_NAME, compute, fresh=True, page=page)).payload
    points = [threshold.Point.of(p) for p in payload["thresholds"]]
    problem = payload["calibration"]["problem"]
    chosen = threshold.suggest(points, savings=savings, budget=budget, problem=problem, bound=bound)
    return payload | {"suggestion": chosen.as_dict() | {"goal": {"savings": savings, "budget": budget, "bound": bound}}}


async def _compute(session: AsyncSession, project_id: uuid.UUID, spot_check_rate: float) -> dict[str, Any]:
    resolved = (await session.execute(_RESOLVED, {"project_id": project_id})).one()
    models: dict[uuid.UUID, list[tuple[tuple[Any, ...], float | None]]] = defaultdict(list)
    humans: dict[uuid.UUID, list[tuple[Any, ...]]] = defaultdict(list)
    spot: dict[uuid.UUID, bool] = {}
    reasons: dict[uuid.UUID, str | None] = {}
    for row in await session.execute(_CHECKED, {"project_id": project_id}):
        key = verdict_key(choice=row.choice_id, ranking=row.ranking, tie=row.tie, both_bad=row.both_bad)
        spot[row.item_id], reasons[row.item_id] = row.spot_check, row.handoff_reason
        if row.rater_kind == "model":
            models[row.item_id].append((key, row.confidence))
        else:
            humans[row.item_id].append(key)
    checked = [
        report.Checked(spot_check=spot[item], models=models[item], humans=humans[item]) for item in spot if models[item]
    ]
    figures = report.build(
        checked,
        model_resolved=int(resolved.items),
        human_judgments_saved=int(resolved.saved),
        human_resolved=len(checked),
        spot_checked=int(resolved.spot_checked),
    )
    routed = await session.scalars(
        _ROUTED,
        {"project_id": project_id, "disagree": MODELS_DISAGREE, "no_confidence": NO_CONFIDENCE, "off": HANDOFF_OFF},
    )
    by_confidence = [item for item in spot if models[item] and reasons[item] != HANDOFF_OFF]
    evidence = _evidence(
        by_confidence, models, humans, spot, reasons, [float(c or 0.0) for c in routed], spot_check_rate
    )
    estimated = await asyncio.to_thread(threshold.curve, evidence)
    return figures | {
        "thresholds": [p.as_dict() for p in estimated.points],
        "calibration": {
            "checked_verdicts": estimated.verdicts,
            "humans_accuracy": estimated.humans_accuracy,
            "problem": estimated.problem,
        },
    }


def _evidence(
    items: list[uuid.UUID],
    models: dict[uuid.UUID, list[tuple[tuple[Any, ...], float | None]]],
    humans: dict[uuid.UUID, list[tuple[Any, ...]]],
    spot: dict[uuid.UUID, bool],
    reasons: dict[uuid.UUID, str | None],
    routed: list[float],
    spot_check_rate: float,
) -> threshold.Evidence:
    """The checked items as the threshold estimate reads them (server/handoff/threshold.py)."""
    pairs = [threshold.human_pairs(humans[item]) for item in items]
    # Calibration: the checked items whose models' verdict could have stood, at their lowest confidence.
    stood = [
        item
        for item in items
        if reasons[item] not in _NOT_BY_CONFIDENCE and humans[item] and models[item][0][1] is not None
    ]
    return threshold.Evidence(
        confidence=np.array([min(float(c or 0.0) for _, c in models[item]) for item in stood], dtype=float),
        agreement=np.array([report.agreement(models[item][0][0], humans[item]) or 0.0 for item in stood], dtype=float),
        spot_check=np.array([spot[item] for item in stood], dtype=bool),
        humans=np.array([len(humans[item]) for item in stood], dtype=np.int64),
        pairs_agreeing=np.array([a for a, _ in pairs], dtype=float),
        pairs=np.array([n for _, n in pairs], dtype=float),
        routed=np.array(routed, dtype=float),
        spot_check_rate=spot_check_rate,
    )

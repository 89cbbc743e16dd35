"""The assistance experiment report from the database: one `experiment.Judgment` per judgment, compared.

The statistics are pure (server/quality/experiment.py); here the judgments are read and turned
into its records, and the result is cached per data version (server/quality/cache.py).

Which judgments count: those of human raters whose assignment was decided by the experiment
(`assignments.assistance.policy = experiment`): judgments made while the project showed
assistance `always` or `never` were not randomised and would bias the comparison, so they are
left out and counted (`outside`). Optional filters: `group` (raters whose membership carries
that group now) and `batch`.

Per judgment:
- arm: `judgments.assistance_shown`, the server's decision at lease time;
- gold: the first revision's score against the item's gold answer (quality/rules.py, as the
  rater quality table scores it), on gold items only;
- planted / caught: `critiques.flaws.catch_counts` (the catch rule's one place), on items with
  planted flaws only;
- agreement: with the aggregated label **left one out**: for each candidate pair the judgment
  speaks to, the label the *other* judgments of the item give under the project's rater model
  (Dawid-Skene, quality/weighted.py, the model behind `aggregation=weighted` exports), without
  the item's gold answer (gold accuracy is its own figure). Including the judgment itself would
  count a rater as agreeing with a label they helped make: with two judgments an item, half the
  label is theirs. The rater model's parameters are fitted on every judgment (the judgment is
  left out of the unit's label, not out of the fit: a rater's confusion is estimated over many
  units, so one judgment barely moves it). A pair nobody else judged gives no agreement; a pair
  whose label is level between k classes, the judgment's one of them, counts 1/k; a judgment's
  agreement is the share of its pairs that match (`aggregate.leave_one_out`, as the rater table);
- seconds: active time (`active_ms`), as the rater quality table times a judgment;
- flaws: the number of flaws the rater marked, when the project has any marked flaw at all
  (a project without flaw marking has no such figure rather than a row of zeros).
"""

import asyncio
import hashlib
import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.critiques.flaws import catch_counts
from server.errors import Invalid, NotFound
from server.models import Assistance, Project
from server.quality import aggregate, experiment
from server.quality.cache import cached
from server.quality.rules import GOLD_VERDICTS, score_row
from server.quality.weighted import rater_fit

CACHE_NAME = "assistance-report"
MIN_EFFECT, MAX_EFFECT = 0.0, 1.0  # 0 < effect <= 1
EFFECT_DIGITS = 3  # effect is rounded to 0.001: one cached figure per value asked
EFFECT_REFUSED = "effect must be a number above 0 and at most 1 (such as 0.10 for 10 points); got {value}."
SANDWICHING = (
    "Sandwiching (Bowman et al. 2022): experts' answers are the gold; compare assisted and unassisted "
    "non-experts against it by choosing their group."
)

# Every judgment of the project with its verdict in upload positions, its arm and what else it carries.
_JUDGMENTS = text(
    """
    WITH sizes AS (
        SELECT c.item_id, count(*) AS n FROM candidates c JOIN items i ON i.id = c.item_id
        WHERE i.project_id = :project_id GROUP BY c.item_id
    ), marked AS (
        SELECT judgment_id, count(*) AS n FROM flaws WHERE project_id = :project_id GROUP BY judgment_id
    )
    SELECT j.id, j.rater_id, j.item_id, i.batch_id, j.assistance_shown AS shown, j.active_ms, j.tie, j.both_bad,
           cc.position AS choice, sizes.n AS candidates, coalesce(marked.n, 0) AS flaws,
           u.kind = 'human' AND coalesce(a.assistance ->> 'policy', '') = 'experiment' AS in_experiment,
           (SELECT array_agg(c.position ORDER BY r.ord)
              FROM unnest(j.ranking) WITH ORDINALITY AS r(id, ord) JOIN candidates c ON c.id = r.id) AS ranking
    FROM judgments j
    JOIN assignments a ON a.id = j.assignment_id
    JOIN users u ON u.id = j.rater_id
    JOIN items i ON i.id = j.item_id
    JOIN sizes ON sizes.item_id = j.item_id
    LEFT JOIN candidates cc ON cc.id = j.choice_id
    LEFT JOIN marked ON marked.judgment_id = j.id
    WHERE j.project_id = :project_id
    ORDER BY j.seq
    """
)
_GOLD = text(GOLD_VERDICTS.format(rater=""))
_ANY_FLAW = text("SELECT EXISTS (SELECT 1 FROM flaws WHERE project_id = :project_id)")
_GROUPS = text(
    "SELECT m.group, array_agg(m.user_id ORDER BY m.user_id) AS members FROM project_members m "
    "WHERE m.project_id = :project_id AND m.group IS NOT NULL GROUP BY m.group ORDER BY m.group"
)
_BATCH = text("SELECT name FROM batches WHERE id = :batch_id AND project_id = :project_id")


@dataclass(frozen=True, slots=True)
class Filters:
    """What the report is restricted to; `members` are the group's raters (read live)."""

    group: str | None = None
    members: tuple[str, ...] | None = None
    batch_id: uuid.UUID | None = None
    batch_name: str | None = None

    def name(self, effect: float) -> str:
        """The cache entry (at most 64 characters): a digest of the effect and filters. A group's members
        are part of it, since moving a member into or out of a group changes no data version."""
        key = f"{effect:g}|{self.batch_id or ''}|{self.group or ''}|{','.join(self.members or ())}"
        return f"{CACHE_NAME}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def check_effect(value: float) -> float:
    """The effect rounded to 0.001, or Invalid with a sentence."""
    if not math.isfinite(value) or not MIN_EFFECT < value <= MAX_EFFECT or round(value, EFFECT_DIGITS) <= 0:
        raise Invalid(EFFECT_REFUSED.format(value=value))
    return round(value, EFFECT_DIGITS)


async def groups(session: AsyncSession, project: Project) -> dict[str, list[str]]:
    """The project's rater groups and their members' user ids (as text), by group name."""
    rows = await session.execute(_GROUPS, {"project_id": project.id})
    return {row.group: [str(m) for m in row.members] for row in rows}


async def filters(
    session: AsyncSession, project: Project, *, group: str | None = None, batch_id: uuid.UUID | None = None
) -> Filters:
    """The filters checked against the project: an unknown group is refused with the known ones named."""
    members = None
    if group is not None:
        known = await groups(session, project)
        if group not in known:
            names = ", ".join(known)
            hint = f"its groups are {names}" if known else "it has no rater groups yet (set them on the Members page)"
            raise Invalid(f"No member of this project is in the group {group!r}; {hint}.")
        members = tuple(known[group])
    batch_name = None
    if batch_id is not None:
        batch_name = await session.scalar(_BATCH, {"batch_id": batch_id, "project_id": project.id})
        if batch_name is None:
            raise NotFound(f"No batch {batch_id} in this project.")
    return Filters(group=group, members=members, batch_id=batch_id, batch_name=batch_name)


def _pairs(row: Any) -> list[tuple[tuple[int, int], int]]:
    return aggregate.pair_labels(
        row.candidates,
        choice=row.choice,
        ranking=list(row.ranking) if row.ranking else None,
        tie=row.tie,
        both_bad=row.both_bad,
    )


def agreements(rows: Sequence[Any], fit: aggregate.Fit) -> dict[uuid.UUID, float]:
    """Each judgment's share of pairs whose label matches the leave-one-out aggregated label
    (aggregate.leave_one_out, the rater table's agreement too; here without gold)."""
    owners: list[uuid.UUID] = []
    observations: list[aggregate.Observation] = []
    for row in rows:
        for (a, b), label in _pairs(row):
            owners.append(row.id)
            observations.append(aggregate.Observation(unit=(row.item_id, a, b), rater=str(row.rater_id), label=label))
    matched: dict[uuid.UUID, list[float]] = defaultdict(list)
    for judgment, value in zip(owners, aggregate.leave_one_out(fit, observations), strict=True):
        if not math.isnan(value):
            matched[judgment].append(float(value))
    return {judgment: sum(v) / len(v) for judgment, v in matched.items()}


async def gold_scores(session: AsyncSession, project_id: uuid.UUID) -> dict[uuid.UUID, float | None]:
    """Each gold judgment's score as first sent (None: it cannot be scored, as a both-bad verdict)."""
    out: dict[uuid.UUID, float | None] = {}
    for row in await session.execute(_GOLD, {"project_id": project_id}):
        out[row.judgment_id] = score_row(row)
    return out


async def records(
    session: AsyncSession, project: Project, where: Filters = Filters()
) -> tuple[list[experiment.Judgment], int]:
    """The experiment's judgments as records for `experiment.compare`, and how many were left out as
    made outside the experiment (before it, or by model accounts)."""
    rows = (await session.execute(_JUDGMENTS, {"project_id": project.id})).all()
    fit = await rater_fit(session, project)
    agree = await asyncio.to_thread(agreements, rows, fit)
    gold = await gold_scores(session, project.id)
    any_flaw = bool(await session.scalar(_ANY_FLAW, {"project_id": project.id}))
    chosen = [
        row
        for row in rows
        if (where.members is None or str(row.rater_id) in where.members)
        and (where.batch_id is None or row.batch_id == where.batch_id)
    ]
    caught = await catch_counts(session, project.id, [row.id for row in chosen if row.in_experiment])
    out: list[experiment.Judgment] = []
    for row in chosen:
        if not row.in_experiment:
            continue
        planted, found = caught.get(row.id, (None, None))
        out.append(
            experiment.Judgment(
                rater=str(row.rater_id),
                assisted=bool(row.shown),
                gold=gold.get(row.id),
                planted=planted,
                caught=found,
                agreement=agree.get(row.id),
                seconds=row.active_ms / 1000 if row.active_ms is not None else None,
                flaws=int(row.flaws) if any_flaw else None,
            )
        )
    return out, len(chosen) - len(out)


async def _compute(session: AsyncSession, project_id: uuid.UUID, where: Filters, effect: float) -> dict[str, Any]:
    project = await session.get_one(Project, project_id)  # the caller's objects are not for a background session
    found, outside = await records(session, project, where)
    report = await asyncio.to_thread(experiment.compare, found, effect=effect)
    return {**report.as_dict(), "effect": effect, "outside": outside}


async def assistance_report(
    session: AsyncSession,
    project: Project,
    *,
    effect: float = experiment.EFFECT,
    group: str | None = None,
    batch_id: uuid.UUID | None = None,
    fresh: bool = False,
    page: bool = False,
) -> dict[str, Any]:
    """The experiment report (per arm, differences with interval and p, judgments needed for `effect`).

    Cached per data version and filters; `page`: a first computation runs in the background
    (cache.Computing when it is not ready soon)."""
    effect = check_effect(effect)
    where = await filters(session, project, group=group, batch_id=batch_id)
    project_id = project.id

    async def compute(own: AsyncSession) -> dict[str, Any]:
        return await _compute(own, project_id, where, effect)

    figure = await cached(session, project.id, where.name(effect), compute, fresh=fresh, page=page)
    return {
        **figure.payload,
        "assistance": project.assistance,
        "group": where.group,
        "batch_id": str(where.batch_id) if where.batch_id else None,
        "data_version": figure.version,
        "stale": not figure.current,
        "computed_at": figure.computed_at.isoformat(),
        "experiment": project.assistance == Assistance.experiment,
    }

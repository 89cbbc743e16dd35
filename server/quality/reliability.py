"""The project's agreement and each rater's reliability, read from the database and cached.

The figures are defined by the pure code (server/quality/agreement.py, raters.py); here SQL
computes the same counts where the judgments are, so that a million judgments cost two
aggregate queries instead of a million rows in Python:
- `_PATTERNS`: each unit's values (agreement.pair_values, in SQL), counted per batch by pattern;
- `_TALLIES`: per rater and trend block (and per rater, and for the project, by grouping sets)
  the counts of raters.Tally, with every unit scored against its label left one out
  (raters.label_agreement, aggregate.leave_one_out) under the project's Dawid-Skene rater model,
  fitted once per data version by server/quality/weighted.py and passed in as arrays.
`judged_rows` reads the same judgments row by row for raters.tally; the tests check that both
paths give the same figures. Gold accuracy comes from server/quality/service.py (`gold_figures`).

Check and rating subtasks of task trees have agreement figures of their own, per kind
(`_subtask_agreement`), and each rater's agreement with the others per kind (`_subtask_raters`);
they stay out of the comparison figures, the flags and the Dawid-Skene model.

Everything is cached per data version (server/quality/cache.py): a page view reads one snapshot
row while nothing changed, and recomputes once after a judgment, an import or a gold change.
Agreement uses every judgment's current verdict (a revision replaces it).
"""

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Project, Scale
from server.quality import aggregate
from server.quality.agreement import Level, Unit, agreement_of, pair_values
from server.quality.cache import Compute, cached, refresh_if_old
from server.quality.gold import RATING_TOLERANCE, GoldAnswer, score
from server.quality.raters import (
    MAX_BLOCKS,
    MIN_BLOCK,
    Judged,
    Rater,
    Tallies,
    Tally,
    figures,
    snapshot_name,
)
from server.quality.service import gold_figures
from server.quality.weighted import rater_fit

REFRESH_SECONDS = 60.0  # the figures the suspension rule reads are at most this much older than a change

# One row per judgment and candidate pair (a < b by upload position) with its value; both-bad is missing.
_VALUES = """
    SELECT j.id AS judgment_id, j.item_id, c1.position AS pa, c2.position AS pb,
           CASE WHEN j.tie THEN 0
                WHEN j.ranking IS NOT NULL THEN coalesce(j.strength, 1) *
                     CASE WHEN array_position(j.ranking, c1.id) < array_position(j.ranking, c2.id) THEN 1 ELSE -1 END
                WHEN j.choice_id = c1.id THEN coalesce(j.strength, 1)
                WHEN j.choice_id = c2.id THEN -coalesce(j.strength, 1) END AS value
    FROM judgments j
    JOIN candidates c1 ON c1.item_id = j.item_id
    JOIN candidates c2 ON c2.item_id = j.item_id AND c2.position > c1.position
    WHERE j.project_id = :project_id AND NOT j.both_bad AND j.rater_kind = 'human'
"""
_PATTERNS = text(
    f"""
    WITH v AS ({_VALUES}),
    units AS (
        SELECT v.item_id, array_agg(v.value ORDER BY v.value) AS vals
        FROM v WHERE v.value IS NOT NULL GROUP BY v.item_id, v.pa, v.pb HAVING count(*) >= 2
    )
    SELECT i.batch_id, units.vals, count(*) AS n
    FROM units JOIN items i ON i.id = units.item_id
    GROUP BY i.batch_id, units.vals
    """
)
# One pass over every judgment and candidate pair: the rows of a judgment share its attributes, and
# its row for the pair (0, 1) (every item has it) stands for the judgment in judgment-level counts.
# Each unit is scored against its label left one out, as aggregate.leave_one_out defines it: the
# rater model's log-confusion comes in as arrays (`:raters`, `:labels`, `:e0..2` = log θ_r[z, label];
# `:d0..2` the prior's for a rater the fit has not seen; `:p0..2` = log π), the gold classes too;
# the window sums every human judgment's evidence on the unit and takes the judgment's own back out.
_TALLIES = text(
    """
    WITH theta AS (
        SELECT * FROM unnest(CAST(:raters AS uuid[]), CAST(:labels AS int[]), CAST(:e0 AS float8[]),
                             CAST(:e1 AS float8[]), CAST(:e2 AS float8[])) AS t(rater_id, label, e0, e1, e2)
    ),
    gold AS (
        SELECT * FROM unnest(CAST(:gold_items AS uuid[]), CAST(:gold_a AS int[]), CAST(:gold_b AS int[]),
                             CAST(:gold_class AS int[])) AS g(item_id, pa, pb, class)
    ),
    v AS (
        SELECT j.rater_id, j.created_at, j.seq, j.active_ms, j.tie, j.both_bad, j.revision > 1 AS revised,
               j.rater_kind = 'human' AS by_human,
               j.item_id, c1.position AS pa, c2.position AS pb, c1.position = 0 AND c2.position = 1 AS first,
               cardinality(a.shown_order) = 2 AND j.choice_id IS NOT NULL AND NOT j.tie AND NOT j.both_bad AS two_way,
               j.choice_id = a.shown_order[1] AS chose_first,
               CASE WHEN j.both_bad THEN NULL  -- the Dawid-Skene class: 0 a preferred, 1 b, 2 a tie
                    WHEN j.tie THEN 2
                    WHEN j.ranking IS NOT NULL THEN CASE
                         WHEN array_position(j.ranking, c1.id) < array_position(j.ranking, c2.id) THEN 0 ELSE 1 END
                    WHEN j.choice_id = c1.id THEN 0
                    WHEN j.choice_id = c2.id THEN 1 END AS label
        FROM judgments j
        JOIN assignments a ON a.id = j.assignment_id
        JOIN candidates c1 ON c1.item_id = j.item_id
        JOIN candidates c2 ON c2.item_id = j.item_id AND c2.position > c1.position
        WHERE j.project_id = :project_id
    ),
    evidence AS (  -- what a human judgment says about its unit's class (a model judge's counts for no one)
        SELECT v.*, (v.label IS NOT NULL AND v.by_human)::int AS voice,
               CASE WHEN v.label IS NOT NULL AND v.by_human
                    THEN coalesce(t.e0, (CAST(:d0 AS float8[]))[v.label + 1]) ELSE 0 END AS e0,
               CASE WHEN v.label IS NOT NULL AND v.by_human
                    THEN coalesce(t.e1, (CAST(:d1 AS float8[]))[v.label + 1]) ELSE 0 END AS e1,
               CASE WHEN v.label IS NOT NULL AND v.by_human
                    THEN coalesce(t.e2, (CAST(:d2 AS float8[]))[v.label + 1]) ELSE 0 END AS e2
        FROM v LEFT JOIN theta t ON t.rater_id = v.rater_id AND t.label = v.label
    ),
    counted AS (  -- the others' log-posterior per class, and how many other human judgments there are
        SELECT e.*,
               CAST(:p0 AS float8) + sum(e0) OVER u - e0 AS o0,
               CAST(:p1 AS float8) + sum(e1) OVER u - e1 AS o1,
               CAST(:p2 AS float8) + sum(e2) OVER u - e2 AS o2,
               sum(voice) OVER u - voice AS others
        FROM evidence e WINDOW u AS (PARTITION BY item_id, pa, pb)
    ),
    topped AS (
        SELECT c.*, g.class AS gold_class, greatest(o0, o1, o2) AS peak, greatest(o0, o1, o2) - :tolerance AS top
        FROM counted c LEFT JOIN gold g ON g.item_id = c.item_id AND g.pa = c.pa AND g.pb = c.pb
    ),
    scored AS (
        SELECT t.*,
               CASE WHEN label IS NULL THEN NULL
                    WHEN gold_class IS NOT NULL THEN (label = gold_class)::int::float8
                    WHEN others = 0 THEN NULL
                    WHEN (ARRAY[o0, o1, o2])[label + 1] >= top
                    THEN 1.0 / ((o0 >= top)::int + (o1 >= top)::int + (o2 >= top)::int)
                    ELSE 0.0 END AS s,
               CASE WHEN label IS NULL THEN NULL  -- the others' probability of its answer (`soft`)
                    WHEN gold_class IS NOT NULL THEN (label = gold_class)::int::float8
                    WHEN others = 0 THEN NULL
                    ELSE exp(greatest((ARRAY[o0, o1, o2])[label + 1] - peak, -700))  -- exp underflows below
                         / (exp(greatest(o0 - peak, -700)) + exp(greatest(o1 - peak, -700))
                            + exp(greatest(o2 - peak, -700))) END AS support,
               count(*) FILTER (WHERE first) OVER (PARTITION BY rater_id ORDER BY created_at, seq, pa, pb
                                                   ROWS UNBOUNDED PRECEDING) AS ordinal,
               count(*) FILTER (WHERE first) OVER (PARTITION BY rater_id) AS rated
        FROM topped t
    ),
    blocked AS (
        SELECT scored.*,
               (ordinal - 1) / greatest(:min_block, ceil(rated / CAST(:max_blocks AS float8)))::int AS block
        FROM scored
    )
    SELECT rater_id, block, grouping(rater_id, block) AS level,
           count(*) FILTER (WHERE first) AS judgments,
           count(*) FILTER (WHERE first AND two_way AND chose_first) AS "left",
           count(*) FILTER (WHERE first AND two_way) AS choices,
           count(active_ms) FILTER (WHERE first) AS timed,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY active_ms) FILTER (WHERE first) / 1000.0 AS median,
           count(*) FILTER (WHERE first AND active_ms < :fast_ms) AS fast,
           coalesce(sum(s), 0)::float8 AS agree, coalesce(sum(s * s), 0)::float8 AS agree_sq,
           count(s)::int AS compared,
           coalesce(sum(support), 0)::float8 AS support, coalesce(sum(support * support), 0)::float8 AS support_sq,
           count(*) FILTER (WHERE first AND tie) AS ties, count(*) FILTER (WHERE first AND both_bad) AS both_bad,
           count(*) FILTER (WHERE first AND revised) AS revised,
           extract(epoch FROM min(created_at))::float8 AS start, extract(epoch FROM max(created_at))::float8 AS "end"
    FROM blocked
    GROUP BY GROUPING SETS ((rater_id, block), (rater_id), ())
    ORDER BY rater_id, block
    """
)
# Task trees' check and rating subtasks (one unit per subtask item, each kind its own figure:
# server/quality/agreement.py): a check's yes / no as 1 / 0 (unsure missing), a rating's answer as a
# share of its scale's width, rounded to 1e-6 so equal answers make one pattern.
_SUBTASK_VALUES = """
    SELECT j.id AS judgment_id, j.rater_id, j.item_id, i.batch_id, i.kind, j.rater_kind = 'human' AS by_human,
           CASE WHEN i.kind = 'check' THEN CASE j.answer #>> '{}' WHEN 'yes' THEN 1.0 WHEN 'no' THEN 0.0 END
                ELSE round(CAST(((j.answer #>> '{}')::float8 - i.scale_min) / (i.scale_max - i.scale_min)
                                AS numeric), 6)
           END::float8 AS value
    FROM judgments j JOIN items i ON i.id = j.item_id
    WHERE j.project_id = :project_id AND i.kind IN ('check', 'rating') AND j.answer IS NOT NULL
"""
_SUBTASK_PATTERNS = text(
    f"""
    WITH v AS ({_SUBTASK_VALUES}),
    units AS (
        SELECT batch_id, kind, array_agg(value ORDER BY value) AS vals
        FROM v WHERE value IS NOT NULL AND by_human GROUP BY item_id, batch_id, kind HAVING count(*) >= 2
    )
    SELECT batch_id, kind, vals, count(*) AS n FROM units GROUP BY batch_id, kind, vals
    """
)
# Per rater and kind: the pairs (their answer, another human's answer on the same subtask) that agree.
_SUBTASK_RATERS = text(
    f"""
    WITH v AS ({_SUBTASK_VALUES})
    SELECT a.rater_id, a.kind, count(*) AS compared,
           count(*) FILTER (
               WHERE abs(a.value - b.value) <= 1e-9 + CASE WHEN a.kind = 'rating' THEN CAST(:tolerance AS float8) END
                  OR a.value = b.value
           ) AS agree
    FROM v a JOIN v b ON b.item_id = a.item_id AND b.judgment_id <> a.judgment_id AND b.by_human
    WHERE a.value IS NOT NULL AND b.value IS NOT NULL
    GROUP BY a.rater_id, a.kind
    """
)
# The kinds of subtasks a project has (a line each on the quality page, even before any overlap).
_SUBTASK_KINDS = text(
    """
    SELECT k.kind FROM (VALUES ('check'), ('rating')) AS k(kind)
    WHERE EXISTS (SELECT 1 FROM items i  -- a subtask has a parent: ix_items_parent holds only subtasks
                  WHERE i.parent_id IS NOT NULL AND i.project_id = :project_id AND i.kind = k.kind)
    ORDER BY k.kind
    """
)
SUBTASK_LEVELS: dict[str, Level] = {"check": "nominal", "rating": "interval"}
_GOLD = text(
    """
    SELECT i.id, i.gold, (SELECT count(*) FROM candidates c WHERE c.item_id = i.id) AS candidates
    FROM items i WHERE i.project_id = :project_id AND i.gold IS NOT NULL
    """
)
_SKIPS = text(
    "SELECT rater_id, count(*) AS skips FROM assignments WHERE project_id = :project_id AND status = 'skipped' "
    "GROUP BY rater_id"
)
_MEMBERS = text(
    """
    SELECT u.id, u.email, u.kind = 'human' AS human, m.suspended_at IS NOT NULL AS suspended, m.group
    FROM project_members m JOIN users u ON u.id = m.user_id
    WHERE m.project_id = :project_id
    ORDER BY u.email
    """
)
_BATCHES = text("SELECT id, name FROM batches WHERE project_id = :project_id ORDER BY created_at, name")


def _tally(row: Any) -> Tally:
    return Tally(
        judgments=row.judgments,
        left=row.left,
        choices=row.choices,
        timed=row.timed,
        median=row.median,
        fast=row.fast,
        agree=row.agree or 0.0,
        agree_sq=row.agree_sq or 0.0,
        support=row.support or 0.0,
        support_sq=row.support_sq or 0.0,
        compared=row.compared or 0,
        ties=row.ties,
        both_bad=row.both_bad,
        revised=row.revised,
        start=row.start,
        end=row.end,
    )


async def gold_units(session: AsyncSession, project: Project) -> dict[Unit, int]:
    """The class each gold answer fixes per unit (item id, a, b): aggregate.gold_labels."""
    out: dict[Unit, int] = {}
    for row in await session.execute(_GOLD, {"project_id": project.id}):
        for (a, b), cls in aggregate.gold_labels(row.candidates, row.gold).items():
            out[(row.id, a, b)] = cls
    return out


def _model_params(fit: aggregate.Fit, gold: dict[Unit, int]) -> dict[str, Any]:
    """The rater model and the gold classes as `_TALLIES`' array parameters."""
    raters, labels, logs = [], [], []
    for rater, theta in fit.confusion.items():
        for label in range(aggregate.K):
            raters.append(uuid.UUID(str(rater)))
            labels.append(label)
            logs.append(np.log(theta[:, label]))
    default = np.log(aggregate.prior_confusion())
    prior = np.log(fit.prior)
    return {
        "raters": raters,
        "labels": labels,
        **{f"e{z}": [float(x[z]) for x in logs] for z in range(aggregate.K)},
        **{f"d{z}": [float(x) for x in default[z]] for z in range(aggregate.K)},
        **{f"p{z}": float(prior[z]) for z in range(aggregate.K)},
        "gold_items": [item for item, _, _ in gold],
        "gold_a": [a for _, a, _ in gold],
        "gold_b": [b for _, _, b in gold],
        "gold_class": list(gold.values()),
        "tolerance": aggregate.TIE_TOLERANCE,
    }


async def tallies(
    session: AsyncSession, project: Project, *, fast_seconds: float, fit: aggregate.Fit | None = None
) -> Tallies:
    """raters.Tallies by SQL aggregates, each unit's agreement with its label left one out under the
    project's rater model (`fit`: by default the one cached per data version, server/quality/weighted.py;
    an older version's while a new one is fitted in the background). Gold counts are not included:
    see `_with_gold`."""
    params: dict[str, Any] = {
        "project_id": project.id,
        "fast_ms": fast_seconds * 1000,
        "min_block": MIN_BLOCK,
        "max_blocks": MAX_BLOCKS,
    }
    raters: dict[str, Tally] = {}
    blocks: dict[str, list[Tally]] = defaultdict(list)
    if fit is None:
        fit = await rater_fit(session, project)
    params |= _model_params(fit, await gold_units(session, project))
    median = agreed = None
    for row in await session.execute(_TALLIES, params):
        t = _tally(row)
        if row.level == 0:
            blocks[str(row.rater_id)].append(t)
        elif row.level == 1:
            raters[str(row.rater_id)] = t
        else:
            median, agreed = t.median, (t.agree / t.compared if t.compared else None)
    prior = (float(fit.prior[0]), float(fit.prior[1]), float(fit.prior[2]))
    return Tallies(raters=raters, blocks=dict(blocks), median_seconds=median, label_agreement=agreed, prior=prior)


async def _with_gold(session: AsyncSession, project: Project, counts: Tallies) -> None:
    """Each rater's gold counts, from the gold figures (one scoring rule: server/quality/gold.py)."""
    for g in await gold_figures(session, project):
        t = counts.raters.get(str(g.user_id))
        if t is not None and g.gold_accuracy is not None:
            t.gold, t.gold_n = g.gold_accuracy * g.gold_scored, g.gold_scored


async def _agreement(session: AsyncSession, project: Project, level: Level) -> dict[str, Any]:
    per_batch: dict[uuid.UUID, dict[tuple[float, ...], int]] = defaultdict(dict)
    overall: dict[tuple[float, ...], int] = defaultdict(int)
    for row in await session.execute(_PATTERNS, {"project_id": project.id}):
        values = tuple(row.vals)
        per_batch[row.batch_id][values] = row.n
        overall[values] += row.n
    direction = level == "ordinal"
    batches = [
        {
            "batch_id": str(b.id),
            "name": b.name,
            **agreement_of(per_batch[b.id], level=level, direction=direction).as_dict(),
        }
        for b in await session.execute(_BATCHES, {"project_id": project.id})
    ]
    return {**agreement_of(overall, level=level, direction=direction).as_dict(), "batches": batches}


async def _subtask_agreement(session: AsyncSession, project: Project) -> dict[str, Any]:
    """Agreement on check and rating subtasks, a figure per kind (with its batches), when the project has them."""
    kinds = list(await session.scalars(_SUBTASK_KINDS, {"project_id": project.id}))
    if not kinds:
        return {}
    per_batch: dict[tuple[str, uuid.UUID], dict[tuple[float, ...], int]] = defaultdict(dict)
    overall: dict[str, dict[tuple[float, ...], int]] = defaultdict(lambda: defaultdict(int))
    for row in await session.execute(_SUBTASK_PATTERNS, {"project_id": project.id}):
        values = tuple(float(v) for v in row.vals)
        per_batch[(row.kind, row.batch_id)][values] = row.n
        overall[row.kind][values] += row.n
    batches = list(await session.execute(_BATCHES, {"project_id": project.id}))
    out: dict[str, Any] = {}
    for kind in kinds:
        level = SUBTASK_LEVELS[kind]
        tolerance = RATING_TOLERANCE if kind == "rating" else None
        out[kind] = {
            "level": level,
            "tolerance": tolerance,
            **agreement_of(overall[kind], level=level, tolerance=tolerance).as_dict(),
            "batches": [
                {
                    "batch_id": str(b.id),
                    "name": b.name,
                    **agreement_of(per_batch[(kind, b.id)], level=level, tolerance=tolerance).as_dict(),
                }
                for b in batches
            ],
        }
    return out


async def _subtask_raters(session: AsyncSession, project: Project) -> dict[str, dict[str, Any]]:
    """Each rater's agreement with the other human raters on check and rating subtasks, per kind."""
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    params = {"project_id": project.id, "tolerance": RATING_TOLERANCE}
    for row in await session.execute(_SUBTASK_RATERS, params):
        out[str(row.rater_id)][row.kind] = {"agreement": row.agree / row.compared, "compared": row.compared}
    return out


async def _compute(session: AsyncSession, project: Project, fast_seconds: float) -> dict[str, Any]:
    params = {"project_id": project.id}
    # The aggregates sort every judgment of the project: in memory, not on disk (default 4 MB), and
    # without JIT compilation (a third of a second per query, for no gain on a single pass).
    await session.execute(text("SET LOCAL work_mem = '64MB'"))
    await session.execute(text("SET LOCAL jit = off"))
    level: Level = "nominal" if project.scale == Scale.binary else "ordinal"
    counts = await tallies(session, project, fast_seconds=fast_seconds)
    await _with_gold(session, project, counts)
    skips = {str(r.rater_id): int(r.skips) for r in await session.execute(_SKIPS, params)}
    members = [
        Rater(str(m.id), human=bool(m.human), skips=skips.get(str(m.id), 0))
        for m in await session.execute(_MEMBERS, params)
    ]
    raters = figures(counts, members, fast_seconds=fast_seconds)
    for user_id, kinds in (await _subtask_raters(session, project)).items():
        if user_id in raters:
            raters[user_id]["subtasks"] = kinds
    return {
        "level": level,
        "fast_seconds": fast_seconds,
        "agreement": {
            **await _agreement(session, project, level),
            "median_seconds": counts.median_seconds,
            "label_agreement": counts.label_agreement,
            "subtasks": await _subtask_agreement(session, project),
        },
        "raters": raters,
    }


def _computation(project: Project) -> Compute:
    """The figures' computation, for the cache (it may run in a background session of its own)."""
    project_id, fast_seconds = project.id, project.fast_seconds

    async def compute(own: AsyncSession) -> dict[str, Any]:
        mine = await own.get_one(Project, project_id)  # the caller's objects are not for a background session
        return {**await _compute(own, mine, fast_seconds), "computed_at": datetime.now(UTC).isoformat()}

    return compute


async def keep_current(session: AsyncSession, project: Project) -> None:
    """While the suspension rule is on, the figures its agreement part reads (rules.agreement_flag) are
    computed in the background after gold verdicts, at most once per REFRESH_SECONDS, so that they do
    not wait for someone to open the quality page. Called by the submit; costs two small reads."""
    name = snapshot_name(project.fast_seconds)
    await refresh_if_old(session, project.id, name, _computation(project), seconds=REFRESH_SECONDS)


async def reliability(
    session: AsyncSession, project: Project, *, fresh: bool = False, page: bool = False
) -> dict[str, Any]:
    """The project's agreement and each member's figures and flags.

    While raters work, the data version changes with every judgment; recomputing on each view
    would cost seconds at a million judgments. So the snapshot of an older version is served at
    once (`stale`, with its version) while a fresh one is computed in the background
    (server/quality/cache.py); `fresh` waits for the current version instead.

    Members, their emails and suspensions are read live (a suspension or a new member does not
    change the data version). The snapshot's name carries the speed threshold, so a new
    threshold is a new figure.
    """
    fast_seconds = project.fast_seconds
    name = snapshot_name(fast_seconds)
    figure = await cached(session, project.id, name, _computation(project), fresh=fresh, page=page)
    payload, version = figure.payload, figure.version
    members = list(await session.execute(_MEMBERS, {"project_id": project.id}))
    known: dict[str, dict[str, Any]] = payload["raters"]
    missing = [Rater(str(m.id), human=bool(m.human)) for m in members if str(m.id) not in known]
    blank = figures(Tallies({}, {}, None, None), missing, fast_seconds=fast_seconds) if missing else {}
    raters = [
        {
            "user_id": str(m.id),
            "email": m.email,
            "suspended": bool(m.suspended),
            "group": m.group,
            **(known.get(str(m.id)) or blank[str(m.id)]),
        }
        for m in members
    ]
    return {**payload, "data_version": version, "stale": not figure.current, "raters": raters}


_JUDGMENTS = text(
    """
    SELECT j.rater_id, j.item_id, j.strength, j.tie, j.both_bad, j.active_ms, j.revision, j.rater_kind,
           extract(epoch FROM j.created_at)::float8 AS at, j.gold, i.gold AS gold_answer,
           cardinality(a.shown_order) AS candidates, cc.position AS choice,
           j.choice_id IS NOT NULL AND j.choice_id = a.shown_order[1] AS chose_first,
           CASE WHEN j.ranking IS NOT NULL THEN
             (SELECT array_agg(c.position ORDER BY r.ord)
                FROM unnest(j.ranking) WITH ORDINALITY AS r(id, ord) JOIN candidates c ON c.id = r.id) END AS ranking
    FROM judgments j
    JOIN assignments a ON a.id = j.assignment_id
    JOIN items i ON i.id = j.item_id
    LEFT JOIN candidates cc ON cc.id = j.choice_id
    WHERE j.project_id = :project_id
    ORDER BY j.rater_id, j.created_at, j.seq
    """
)


def _judged(row: Any) -> Judged:
    ranking = list(row.ranking) if row.ranking else None
    values = pair_values(
        row.candidates, choice=row.choice, ranking=ranking, strength=row.strength, tie=row.tie, both_bad=row.both_bad
    )
    gold_score = None
    if row.gold and row.gold_answer is not None:
        gold_score = score(
            GoldAnswer.model_validate(row.gold_answer),
            choice=row.choice,
            ranking=ranking,
            tie=row.tie,
            both_bad=row.both_bad,
        )
    two_way_choice = row.candidates == 2 and row.choice is not None and not row.tie and not row.both_bad
    return Judged(
        rater=str(row.rater_id),
        values={(row.item_id, a, b): v for (a, b), v in values.items()},
        left=bool(row.chose_first) if two_way_choice else None,
        seconds=row.active_ms / 1000 if row.active_ms is not None else None,
        tie=row.tie,
        both_bad=row.both_bad,
        revised=row.revision > 1,
        at=row.at,
        human=row.rater_kind == "human",
        gold_score=gold_score,
    )


async def judged_rows(session: AsyncSession, project: Project) -> list[Judged]:
    """Every judgment of the project row by row, each rater's in time order (for raters.tally)."""
    return [_judged(row) for row in await session.execute(_JUDGMENTS, {"project_id": project.id})]


_RATER_KEYS = (
    "user_id",
    "email",
    "suspended",
    "group",
    "human",
    "judgments",
    "median_seconds",
    "fast_share",
    "agreement",
    "tie_rate",
    "both_bad_rate",
    "skip_rate",
    "revision_rate",
    "flags",
    "trend",
)


async def project_quality(
    session: AsyncSession, project: Project, *, fresh: bool = False, page: bool = False
) -> dict[str, Any]:
    """Agreement, and each member's gold figures (server/quality/service.py) with their reliability.

    `page`: a first computation runs in the background (cache.Computing when it is not ready soon)."""
    figures = await reliability(session, project, fresh=fresh, page=page)
    gold = {str(f.user_id): f for f in await gold_figures(session, project)}
    raters = []
    for r in figures["raters"]:
        g = gold.get(r["user_id"])
        raters.append(
            {
                **{key: r[key] for key in _RATER_KEYS},
                "subtasks": r.get("subtasks", {}),
                "position_bias": r["left_share"],
                "position_p": r["left_p"],
                "gold_judged": g.gold_judged if g else 0,
                "gold_scored": g.gold_scored if g else 0,
                "gold_accuracy": g.gold_accuracy if g else None,
                "gold_ci": g.gold_ci if g else (0.0, 1.0),
                "recent_gold_accuracy": g.recent_accuracy if g else None,
                "recent_gold_ci": g.recent_ci if g else (0.0, 1.0),
                "qualified": g.qualified if g else False,
                "suspended_reason": g.suspended_reason if g else None,
            }
        )
    agreement_figures = {
        **figures["agreement"],
        "level": figures["level"],
        "fast_seconds": figures["fast_seconds"],
        "data_version": figures["data_version"],
        "stale": figures["stale"],
        "computed_at": figures["computed_at"],
    }
    return {"agreement": agreement_figures, "raters": raters}


async def rater_quality(session: AsyncSession, project: Project, user_id: uuid.UUID) -> dict[str, Any] | None:
    """One member's figures with the project's for comparison (for a page); None for someone not a member."""
    figures = await project_quality(session, project, page=True)
    mine = next((r for r in figures["raters"] if r["user_id"] == str(user_id)), None)
    return None if mine is None else {**mine, "project": figures["agreement"]}


async def project_agreement(session: AsyncSession, project: Project) -> dict[str, Any]:
    """The project's agreement figures alone (the overview's card, a page)."""
    figures = await reliability(session, project, page=True)
    keys = ("level", "fast_seconds", "data_version", "stale", "computed_at")
    return {**figures["agreement"], **{key: figures[key] for key in keys}}

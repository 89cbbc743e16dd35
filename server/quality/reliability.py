"""The project's agreement and each rater's reliability, read from the database and cached.

The figures are defined by the pure code (server/quality/agreement.py, raters.py); here SQL
computes the same counts where the judgments are, so that a million judgments cost two
aggregate queries instead of a million rows in Python:
- `_PATTERNS`: each unit's values (agreement.pair_values, in SQL), counted per batch by pattern;
- `_TALLIES`: per rater and trend block (and per rater, and for the project, by grouping sets)
  the counts of raters.Tally; each judgment's units are scored against their label left one out
  (raters.label_agreement: the project's Dawid-Skene rater model, fitted once per data version by
  server/quality/weighted.py) in Python, with numpy, from one read of the verdicts.
`judged_rows` reads the same judgments row by row for raters.tally; the tests check that both
paths give the same figures. Gold accuracy comes from server/quality/service.py (`gold_figures`).

Everything is cached per data version (server/quality/cache.py): a page view reads one snapshot
row while nothing changed, and recomputes once after a judgment, an import or a gold change.
Agreement uses every judgment's current verdict (a revision replaces it).
"""

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Project, Scale
from server.quality import aggregate
from server.quality.agreement import Level, Unit, agreement_of, pair_values
from server.quality.cache import cached
from server.quality.gold import GoldAnswer, score
from server.quality.raters import (
    MAX_BLOCKS,
    MIN_BLOCK,
    Judged,
    Rater,
    Scores,
    Tallies,
    Tally,
    block_size,
    figures,
    label_agreement,
    snapshot_name,
)
from server.quality.service import gold_figures
from server.quality.weighted import rater_fit

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
# One pass over every judgment: per rater and trend block (and per rater, and for the project, by
# grouping sets) the judgment-level counts. Agreement is scored in Python (`_label_agreement`).
_TALLIES = text(
    """
    WITH v AS (
        SELECT j.rater_id, j.created_at, j.active_ms, j.tie, j.both_bad, j.revision > 1 AS revised,
               cardinality(a.shown_order) = 2 AND j.choice_id IS NOT NULL AND NOT j.tie AND NOT j.both_bad AS two_way,
               j.choice_id = a.shown_order[1] AS chose_first,
               row_number() OVER (PARTITION BY j.rater_id ORDER BY j.created_at, j.seq) AS ordinal,
               count(*) OVER (PARTITION BY j.rater_id) AS rated
        FROM judgments j
        JOIN assignments a ON a.id = j.assignment_id
        WHERE j.project_id = :project_id
    ),
    blocked AS (
        SELECT v.*, (ordinal - 1) / greatest(:min_block, ceil(rated / CAST(:max_blocks AS float8)))::int AS block
        FROM v
    )
    SELECT rater_id, block, grouping(rater_id, block) AS level,
           count(*) AS judgments,
           count(*) FILTER (WHERE two_way AND chose_first) AS "left",
           count(*) FILTER (WHERE two_way) AS choices,
           count(active_ms) AS timed,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY active_ms) / 1000.0 AS median,
           count(*) FILTER (WHERE active_ms < :fast_ms) AS fast,
           count(*) FILTER (WHERE tie) AS ties, count(*) FILTER (WHERE both_bad) AS both_bad,
           count(*) FILTER (WHERE revised) AS revised,
           extract(epoch FROM min(created_at))::float8 AS start, extract(epoch FROM max(created_at))::float8 AS "end"
    FROM blocked
    GROUP BY GROUPING SETS ((rater_id, block), (rater_id), ())
    ORDER BY rater_id, block
    """
)
# Every judgment's verdict with candidates as upload positions, each rater's in time order (the order
# of `_TALLIES`' blocks), for the agreement with the label left one out; and the gold answers.
_VERDICTS = text(
    """
    SELECT j.rater_id, j.item_id, j.rater_kind = 'human' AS human, j.strength, j.tie, j.both_bad,
           (SELECT count(*) FROM candidates c WHERE c.item_id = j.item_id) AS candidates, cc.position AS choice,
           CASE WHEN j.ranking IS NOT NULL THEN
             (SELECT array_agg(c.position ORDER BY r.ord)
                FROM unnest(j.ranking) WITH ORDINALITY AS r(id, ord) JOIN candidates c ON c.id = r.id) END AS ranking
    FROM judgments j
    LEFT JOIN candidates cc ON cc.id = j.choice_id
    WHERE j.project_id = :project_id
    ORDER BY j.rater_id, j.created_at, j.seq
    """
)
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


def _verdict(row: Any) -> Judged:
    """A judgment's unit values alone (what the agreement needs), as raters.Judged."""
    values = pair_values(
        row.candidates,
        choice=row.choice,
        ranking=list(row.ranking) if row.ranking else None,
        strength=row.strength,
        tie=row.tie,
        both_bad=row.both_bad,
    )
    return Judged(
        rater=str(row.rater_id),
        values={(row.item_id, a, b): v for (a, b), v in values.items()},
        left=None,
        seconds=None,
        tie=row.tie,
        both_bad=row.both_bad,
        revised=False,
        at=0.0,
        human=bool(row.human),
    )


def _add_agreement(
    raters: dict[str, Tally], blocks: dict[str, list[Tally]], judged: list[Judged], scores: list[Scores]
) -> float | None:
    """Add each judgment's agreement scores to its rater's tally and trend block (judgments in each
    rater's time order, as `_TALLIES` numbers them); the project's share of agreeing units."""
    ordinal: dict[str, int] = defaultdict(int)
    total = compared = 0.0
    for j, (agree, squares, n) in zip(judged, scores, strict=True):
        t = raters[j.rater]
        block = blocks[j.rater][ordinal[j.rater] // block_size(t.judgments)]
        ordinal[j.rater] += 1
        for target in (t, block):
            target.agree += agree
            target.agree_sq += squares
            target.compared += n
        total += agree
        compared += n
    return total / compared if compared else None


async def tallies(
    session: AsyncSession, project: Project, *, fast_seconds: float, fit: aggregate.Fit | None = None
) -> Tallies:
    """raters.Tallies: the counts by SQL aggregates, the agreement with the label left one out from
    the verdicts (raters.label_agreement) under the project's rater model (`fit`, by default the one
    cached per data version: server/quality/weighted.py). Gold counts are not included: `_with_gold`."""
    params = {
        "project_id": project.id,
        "fast_ms": fast_seconds * 1000,
        "min_block": MIN_BLOCK,
        "max_blocks": MAX_BLOCKS,
    }
    raters: dict[str, Tally] = {}
    blocks: dict[str, list[Tally]] = defaultdict(list)
    median = None
    for row in await session.execute(_TALLIES, params):
        t = _tally(row)
        if row.level == 0:
            blocks[str(row.rater_id)].append(t)
        elif row.level == 1:
            raters[str(row.rater_id)] = t
        else:
            median = t.median
    if fit is None:
        fit = await rater_fit(session, project)
    gold = await gold_units(session, project)
    judged = [_verdict(row) for row in await session.execute(_VERDICTS, {"project_id": project.id})]
    # Seconds of numpy at a million judgments: in a worker thread, so the server's other requests go on.
    scores = await asyncio.to_thread(label_agreement, judged, fit, gold)
    agreed = _add_agreement(raters, blocks, judged, scores)
    return Tallies(raters=raters, blocks=dict(blocks), median_seconds=median, label_agreement=agreed)


async def _with_gold(session: AsyncSession, project: Project, counts: Tallies) -> None:
    """Each rater's gold counts, from the gold figures (one scoring rule: server/quality/gold.py)."""
    for g in await gold_figures(session, project):
        t = counts.raters.get(str(g.user_id))
        if t is not None and g.gold_accuracy is not None:
            t.gold, t.gold_n = g.gold_accuracy * g.gold_scored, g.gold_scored


async def _agreement(session: AsyncSession, project: Project, level: Level) -> dict[str, Any]:
    per_batch: dict[uuid.UUID, dict[tuple[int, ...], int]] = defaultdict(dict)
    overall: dict[tuple[int, ...], int] = defaultdict(int)
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
    return {
        "level": level,
        "fast_seconds": fast_seconds,
        "agreement": {
            **await _agreement(session, project, level),
            "median_seconds": counts.median_seconds,
            "label_agreement": counts.label_agreement,
        },
        "raters": figures(counts, members, fast_seconds=fast_seconds),
    }


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

    project_id = project.id

    async def compute(own: AsyncSession) -> dict[str, Any]:
        mine = await own.get_one(Project, project_id)  # the caller's objects are not for a background session
        return {**await _compute(own, mine, fast_seconds), "computed_at": datetime.now(UTC).isoformat()}

    figure = await cached(session, project.id, name, compute, fresh=fresh, page=page)
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

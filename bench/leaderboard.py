"""The model leaderboard at scale: fill a project with N judgments (default 1,000,000) in SQL, then
time the leaderboard cold (the battles query, the fit and the bootstrap) and warm (the cached figure).

    .venv/bin/python -m bench.leaderboard [--judgments 1000000] [--models 12] [--runs 10] [--explain]

The fill (SQL only, in a scratch database that is dropped afterwards):
- `--models` models with known strengths, evenly spaced from -300 to +300 Elo points;
- judgments / 3 items, each judged by 3 raters (overlap 3); 9 items in 10 compare two responses,
  1 in 10 three, from distinct models picked at random;
- every rater orders an item's responses by strength plus Gumbel noise (so a pair follows the
  Bradley-Terry odds and a ranking the Plackett-Luce ones): a pair judgment picks the first, a
  three-way item is ranked; on pairs, 1% of verdicts are both bad and `--ties` (default 0) ties.
Cold: the cached figure is deleted, then `leaderboard_service.get` runs once (query + fit + 200
bootstrap fits) and its transaction commits; the query and the math are also timed apart.
Warm: `get` again, `--runs` times (the data version and one snapshot row). Milliseconds, measured
around the service calls (SQLAlchemy and asyncpg included). The table also lists each model's
true rating beside its estimate and whether the interval covers it. Ties (`--ties 0.02`) are
drawn regardless of strength and count as half wins, so they pull the estimates toward 1000
(by 5 to 8% of their distance from it here): the truth is then outside some intervals by design.
"""

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("ASSAY_ENVIRONMENT", "test")

from rich.console import Console
from rich.table import Table
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.database import database_server, insert_batch, migrate, scratch_database
from server.db import make_engine, make_sessionmaker
from server.leaderboard import service
from server.models import Project, QualitySnapshot, Role, User
from server.projects import service as projects
from server.projects.schemas import ProjectCreate
from server.quality.leaderboard import CENTRE, ELO, leaderboard

console = Console()
OVERLAP = 3

_MODELS = """
CREATE TEMP TABLE bench_models AS
SELECT k - 1 AS k, 'model-' || lpad((k - 1)::text, 2, '0') AS name, theta
FROM unnest(CAST(:thetas AS float8[])) WITH ORDINALITY AS t(theta, k)
"""
_ITEMS = """
INSERT INTO items (id, project_id, batch_id, external_id, prompt, wanted, leased, judged, completed_at)
SELECT gen_random_uuid(), :project, :batch, 'lb-' || g, to_jsonb('Question ' || g || '?'), 3, 0, 3, now()
FROM generate_series(1, CAST(:n AS int)) g
"""
# Distinct models per item: base + position * step (mod K) with step 1..5 < K/2 for K >= 12.
_CANDIDATES = """
WITH picked AS MATERIALIZED (
    SELECT i.id, i.external_id, floor(random() * CAST(:k AS int))::int AS base, 1 + floor(random() * 5)::int AS step,
           CASE WHEN substr(i.external_id, 4)::int % 10 = 0 THEN 3 ELSE 2 END AS size
    FROM items i WHERE i.project_id = :project
)
INSERT INTO candidates (id, item_id, position, text, model)
SELECT gen_random_uuid(), p.id, pos, 'Response ' || pos || ' to ' || p.external_id,
       'model-' || lpad(((p.base + pos * p.step) % CAST(:k AS int))::text, 2, '0')
FROM picked p CROSS JOIN LATERAL generate_series(0, p.size - 1) pos
"""
_JUDGMENTS = """
WITH noisy AS MATERIALIZED (
    SELECT c.item_id, c.id, c.position,
           m.theta - ln(-ln(0.000001 + 0.999998 * random())) AS utility
    FROM candidates c JOIN items i ON i.id = c.item_id JOIN bench_models m ON m.name = c.model
    WHERE i.project_id = :project
), shown AS MATERIALIZED (
    SELECT item_id, array_agg(id ORDER BY position) AS ids, array_agg(id ORDER BY utility DESC) AS ranked,
           count(*) AS size, random() AS roll
    FROM noisy GROUP BY item_id
), a AS (
    INSERT INTO assignments (id, project_id, item_id, rater_id, status, shown_order, leased_at, expires_at,
                             finished_at)
    SELECT gen_random_uuid(), :project, item_id, :rater, 'submitted', ids, now() - interval '2 minutes',
           now() + interval '13 minutes', now()
    FROM shown RETURNING id, item_id
)
INSERT INTO judgments (id, assignment_id, project_id, item_id, rater_id, choice_id, ranking, tie, both_bad,
                       surplus, active_ms)
SELECT gen_random_uuid(), a.id, :project, a.item_id, :rater,
       CASE WHEN s.size > 2 OR s.roll >= CAST(:ties AS float8) + 0.01 THEN s.ranked[1] END,
       CASE WHEN s.size > 2 THEN s.ranked END,
       s.size = 2 AND s.roll < CAST(:ties AS float8),
       s.size = 2 AND s.roll >= CAST(:ties AS float8) AND s.roll < CAST(:ties AS float8) + 0.01, false, 4000
FROM a JOIN shown s ON s.item_id = a.item_id
"""


def strengths(models: int) -> list[float]:
    """Natural-log strengths for ratings evenly spaced from 700 to 1300 (mean 1000)."""
    return [(-300 + 600 * k / (models - 1)) / ELO for k in range(models)]


async def _accounts(session: AsyncSession) -> tuple[Project, list[User]]:
    people = [
        User(email=f"{role}{i}@bench.example", role=role)
        for i, role in enumerate([Role.admin] + [Role.rater] * OVERLAP)
    ]
    session.add_all(people)
    await session.flush()
    project = await projects.create(
        session, ProjectCreate(name="Leaderboard bench", overlap=OVERLAP, allow_tie=True, allow_both_bad=True),
        actor=people[0],
    )  # fmt: skip
    for rater in people[1:]:
        await projects.add_member(session, project, rater.id, actor=people[0])
    await session.commit()
    return project, people


async def fill(
    session: AsyncSession, project: Project, raters: list[User], judgments: int, models: int, ties: float
) -> float:
    started = time.monotonic()
    items = max(judgments // OVERLAP, 1)
    batch = await insert_batch(session, project.id, items=items)
    await session.execute(text("SET LOCAL jit = off"))
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("models", _MODELS, {"thetas": strengths(models)}),
        ("items", _ITEMS, {"project": project.id, "batch": batch, "n": items}),
        ("candidates", _CANDIDATES, {"project": project.id, "k": models}),
        ("statistics", "ANALYZE items, candidates, bench_models", {}),
    ]
    for name, sql, params in steps:
        step = time.monotonic()
        await session.execute(text(sql), params)
        console.print(f"  {name}: {time.monotonic() - step:.1f} s")
    for rater in raters:
        step = time.monotonic()
        await session.execute(text(_JUDGMENTS), {"project": project.id, "rater": rater.id, "ties": ties})
        console.print(f"  judgments of {rater.email}: {time.monotonic() - step:.1f} s")
    await session.commit()
    bind = session.bind
    assert isinstance(bind, AsyncEngine)
    async with bind.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM (ANALYZE) items, candidates, assignments, judgments"))
    return time.monotonic() - started


async def _timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await call()
    return (time.perf_counter() - started) * 1000, result


async def measure(session: AsyncSession, project: Project, models: int, runs: int, *, explain: bool) -> Table:
    judgments = int(
        await session.scalar(text("SELECT count(*) FROM judgments WHERE project_id = :p"), {"p": project.id}) or 0
    )
    query_ms = []
    for _ in range(3):
        ms, battles = await _timed(lambda: service.battles(session, project))
        query_ms.append(ms)
    await session.rollback()
    started = time.perf_counter()
    board = leaderboard(battles)
    math_ms = (time.perf_counter() - started) * 1000

    await session.execute(delete(QualitySnapshot).where(QualitySnapshot.project_id == project.id))
    await session.commit()

    async def cold() -> service.ProjectLeaderboard:
        figure = await service.get(session, project)
        await session.commit()
        return figure

    cold_ms, figure = await _timed(cold)
    warm = []
    for _ in range(runs):
        ms, again = await _timed(lambda: service.get(session, project))
        await session.rollback()
        warm.append(ms)
    assert again.data_version == figure.data_version
    assert again.ratings == figure.ratings

    table = Table(title=f"Leaderboard at {judgments:,} judgments, {models} models ({battles.total:,} battles)")
    table.add_column("step")
    table.add_column("ms", justify="right")
    table.add_row("battles query (median of 3)", f"{statistics.median(query_ms):.0f}")
    table.add_row(f"fit + {board.bootstrap} bootstrap fits", f"{math_ms:.0f}")
    table.add_row("cold: get() and commit (query, fit, bootstrap, store)", f"{cold_ms:.0f}")
    table.add_row(f"warm: get() (median of {runs})", f"{statistics.median(warm):.1f}")
    table.add_row(f"warm: get() (slowest of {runs})", f"{max(warm):.1f}")
    if explain:
        plan = await session.execute(
            text(f"EXPLAIN (ANALYZE, BUFFERS) {service._BATTLES.text}"), {"project_id": project.id}
        )
        console.print("\n".join(r[0] for r in plan))
        await session.rollback()

    truth = {f"model-{k:02d}": CENTRE + ELO * t for k, t in enumerate(strengths(models))}
    ratings = Table(title="True and estimated ratings (95% intervals)")
    for column in ("model", "true", "estimate", "interval", "battles", "covers"):
        ratings.add_column(column, justify="left" if column == "model" else "right")
    for r in figure.ratings:
        covers = r["ci_low"] <= truth[r["model"]] <= r["ci_high"]
        ratings.add_row(r["model"], f"{truth[r['model']]:.0f}", f"{r['rating']:.1f}",
                        f"{r['ci_low']:.1f} to {r['ci_high']:.1f}", f"{r['battles']:,}",
                        "yes" if covers else "no")  # fmt: skip
    console.print(ratings)
    return table


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=12, help="at least 12 (distinct models per item)")
    parser.add_argument("--ties", type=float, default=0.0, help="share of pair verdicts that are ties")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--explain", action="store_true", help="print the battles query's plan")
    args = parser.parse_args()
    if args.models < 12:
        parser.error("--models must be at least 12")
    async with database_server() as server, scratch_database(server, "assay_leaderboard") as url:
        await migrate(url)
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as session:
                project, people = await _accounts(session)
                seconds = await fill(session, project, people[1:], args.judgments, args.models, args.ties)
                console.print(f"fill and vacuum: {seconds:.0f} s")
            async with make_sessionmaker(engine)() as session:
                console.print(await measure(session, project, args.models, args.runs, explain=args.explain))
        finally:
            await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())

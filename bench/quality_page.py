"""The quality figures at scale: fill a project with a crowd's judgments by SQL, then time
`GET /api/v1/projects/{id}/quality`'s service call cold (computing the snapshot) and warm.

    .venv/bin/python -m bench.quality_page [--items 333334] [--overlap 3] [--raters 20] [--runs 5]

The defaults give about 1,000,000 judgments. The crowd (`fill`): two-candidate items, each judged
by `overlap` distinct raters of 20 (rater k judges items g with (g + j) % raters == k), the shown
order random per assignment; rater 0 always takes the left response, rater 1 answers in about a
second, rater 2 at random, the others are right 70 to 90% of the time (by their index) and take
8 to 20 s. `fill` is also the tests' fixture (tests/quality/test_reliability.py), at a small size.

"A page's first view" has no snapshot at all: the page answers with a placeholder unless the
figures are ready within cache.FIRST_WAIT_SECONDS, and fills in when the background computation
is done (also timed). "Cold" is an API call with no snapshot (computed in the request);
"after a new judgment" finds the snapshot of an older version and serves it (marked stale) while
a fresh one is computed in the background (server/quality/cache.py; the bench waits for it and
prints how long that took: the figures, and the Dawid-Skene rater model of server/quality/weighted.py
they score agreement with, refitted in the background too while the figures use the older fit);
"warm" reads the snapshot of the current version. All include the members and gold queries, as
the API route does.
"""

import argparse
import asyncio
import os
import statistics
import time

os.environ.setdefault("ASSAY_ENVIRONMENT", "test")

import contextlib

from rich.console import Console
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.database import database_server, insert_batch, migrate, scratch_database
from server.db import make_engine, make_sessionmaker
from server.models import Project, Role, User
from server.projects import service as projects
from server.projects.schemas import ProjectCreate
from server.quality import reliability, weighted
from server.quality.cache import Computing, refreshes_done

console = Console()
BUDGET_MS = 500.0

_STEPS = (
    "CREATE TEMP TABLE q_raters (k int PRIMARY KEY, id uuid, kind text, accuracy float8) ON COMMIT DROP",
    """
    INSERT INTO items (id, project_id, batch_id, external_id, prompt, wanted, judged, completed_at)
    SELECT gen_random_uuid(), :project, :batch, 'q-' || g, to_jsonb('Question ' || g),
           CAST(:overlap AS int), CAST(:overlap AS int), now()
    FROM generate_series(0, CAST(:items AS int) - 1) g
    """,
    """
    INSERT INTO candidates (id, item_id, position, text, model)
    SELECT gen_random_uuid(), i.id, p, 'Answer ' || p, 'model-' || p
    FROM items i CROSS JOIN generate_series(0, 1) p WHERE i.project_id = :project
    """,
    """
    CREATE TEMP TABLE q_work ON COMMIT DROP AS
    SELECT gen_random_uuid() AS assignment_id, i.id AS item_id, r.id AS rater_id, r.kind, r.accuracy,
           substr(i.external_id, 3)::int AS g,
           CASE WHEN random() < 0.5 THEN ARRAY[c0.id, c1.id] ELSE ARRAY[c1.id, c0.id] END AS shown,
           c0.id AS truth, c1.id AS other
    FROM items i
    JOIN candidates c0 ON c0.item_id = i.id AND c0.position = 0
    JOIN candidates c1 ON c1.item_id = i.id AND c1.position = 1
    CROSS JOIN generate_series(0, CAST(:overlap AS int) - 1) j
    JOIN q_raters r ON r.k = (substr(i.external_id, 3)::int + j) % CAST(:raters AS int)
    WHERE i.project_id = :project
    """,
    """
    INSERT INTO assignments (id, project_id, item_id, rater_id, status, shown_order, expires_at, finished_at)
    SELECT assignment_id, :project, item_id, rater_id, 'submitted', shown, now(), now() FROM q_work
    """,
    """
    INSERT INTO judgments (id, assignment_id, project_id, item_id, rater_id, tie, both_bad, surplus, choice_id,
                           active_ms, created_at)
    SELECT gen_random_uuid(), assignment_id, :project, item_id, rater_id, false, false, false,
           CASE kind WHEN 'left' THEN shown[1]
                     WHEN 'honest' THEN CASE WHEN random() < accuracy THEN truth ELSE other END
                     ELSE CASE WHEN random() < 0.5 THEN truth ELSE other END END,
           CASE kind WHEN 'fast' THEN 700 + (random() * 600)::int ELSE 8000 + (random() * 12000)::int END,
           now() - make_interval(secs => (CAST(:items AS int) - g) * 10)
    FROM q_work ORDER BY g
    """,
)


def kind_of(k: int) -> tuple[str, float]:
    """Rater k's kind and accuracy (see the module docstring)."""
    if k < 3:
        return ("left", "fast", "random")[k], 0.5
    return "honest", 0.7 + 0.2 * (k % 5) / 4


async def fill(session: AsyncSession, project: Project, raters: list[User], *, items: int, overlap: int) -> None:
    """Insert `items` judged items (see the module docstring); the caller commits."""
    batch = await insert_batch(session, project.id, items=items, name="crowd")
    params = {"project": project.id, "batch": batch, "items": items, "overlap": overlap, "raters": len(raters)}
    await session.execute(text(_STEPS[0]))
    for k, rater in enumerate(raters):
        kind, accuracy = kind_of(k)
        await session.execute(
            text("INSERT INTO q_raters VALUES (:k, :id, :kind, :accuracy)"),
            {"k": k, "id": rater.id, "kind": kind, "accuracy": accuracy},
        )
    for sql in _STEPS[1:]:
        await session.execute(text(sql), params)


async def accounts(session: AsyncSession, raters: int, *, overlap: int) -> tuple[Project, list[User]]:
    admin = User(email="admin@quality.example", role=Role.admin)
    people = [User(email=f"rater{k:02}@quality.example", role=Role.rater) for k in range(raters)]
    session.add_all([admin, *people])
    await session.flush()
    project = await projects.create(session, ProjectCreate(name="Quality bench", overlap=overlap), actor=admin)
    for rater in people:
        await projects.add_member(session, project, rater.id, actor=admin)
    return project, people


async def _call(session: AsyncSession, project: Project) -> float:
    started = time.perf_counter()
    await reliability.project_quality(session, project)
    await session.commit()
    return (time.perf_counter() - started) * 1000


async def _bump(session: AsyncSession, project: Project, *, drop_snapshot: bool, keep_model: bool = False) -> None:
    """What a new judgment does to the data version (the queue epoch moves), and optionally an old snapshot
    (`keep_model`: all but the rater model's, which is then of an older version, as after a judgment)."""
    await session.execute(text("UPDATE projects SET queue_epoch = queue_epoch + 1 WHERE id = :id"), {"id": project.id})
    if drop_snapshot:
        await session.execute(
            text("DELETE FROM quality_snapshots WHERE project_id = :id AND name <> :keep"),
            {"id": project.id, "keep": weighted.CACHE_NAME if keep_model else ""},
        )
    await session.commit()


async def _first_page_view(session: AsyncSession, project: Project) -> tuple[float, float]:
    """A page's first view: its answer (a placeholder unless the figures are ready within
    cache.FIRST_WAIT_SECONDS), and the time until the background computation has stored them."""
    started = time.perf_counter()
    with contextlib.suppress(Computing):
        await reliability.project_quality(session, project, page=True)
    await session.commit()
    answered = (time.perf_counter() - started) * 1000
    await refreshes_done()
    return answered, (time.perf_counter() - started) * 1000


async def measure(session: AsyncSession, project: Project, runs: int) -> None:
    cold, stale, warm, first, filled, refresh, modelled = [], [], [], [], [], [], []
    for _ in range(runs):
        await _bump(session, project, drop_snapshot=True)
        answered, done = await _first_page_view(session, project)
        first.append(answered)
        filled.append(done)
        await _bump(session, project, drop_snapshot=True)
        cold.append(await _call(session, project))
        warm.append(await _call(session, project))
        await _bump(session, project, drop_snapshot=True, keep_model=True)
        modelled.append(await _call(session, project))
        await refreshes_done()  # the rater model's refit it started (not timed)
        await _bump(session, project, drop_snapshot=False)
        stale.append(await _call(session, project))
        started = time.perf_counter()
        await refreshes_done()  # the background refresh the stale view started (not a page's wait)
        refresh.append((time.perf_counter() - started) * 1000)
    for name, times in (
        ("a page's first view (no snapshot: a placeholder while it is computed in the background)", first),
        ("  ... until the figures are stored and the page fills in (not a page's wait)", filled),
        ("cold API call (no snapshot: computed in the request)", cold),
        ("cold API call with the rater model of an older version (only the figures computed)", modelled),
        ("after a new judgment (the older snapshot served, refreshed in the background)", stale),
        ("  ... the background refresh (figures, and the rater model they use: not a page's wait)", refresh),
        ("warm (snapshot of the current data version)", warm),
    ):
        verdict = "within" if max(times) < BUDGET_MS else "OVER"
        console.print(
            f"{name}: median {statistics.median(times):.0f} ms, max {max(times):.0f} ms "
            f"({verdict} the {BUDGET_MS:.0f} ms budget)"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=333_334)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--raters", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    async with database_server() as server, scratch_database(server, "assay_quality") as url:
        await migrate(url)
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as session:
                project, raters = await accounts(session, args.raters, overlap=args.overlap)
                started = time.monotonic()
                await fill(session, project, raters, items=args.items, overlap=args.overlap)
                await session.commit()
                console.print(f"filled {args.items * args.overlap:,} judgments in {time.monotonic() - started:.0f} s")
            bind = engine
            assert isinstance(bind, AsyncEngine)
            async with bind.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(text("VACUUM (ANALYZE) items, candidates, assignments, judgments"))
            async with make_sessionmaker(engine)() as session:
                await measure(session, project, args.runs)
        finally:
            await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())

"""The data browser at scale: fill a project with N items (default 1,000,000) by generate_series,
then time the browser's own queries (server/items/service.py) page by page, per filter.

    .venv/bin/python -m bench.browse [--items 1000000] [--runs 5] [--explain]

The fill, in SQL only (about a minute per million items on a quiet machine):
- items with a prompt of ~30 and two responses of ~40 words from a 60-word vocabulary, plus
  `sourdough` in 1 item of 10,000 (a rare word) and `kombucha` in 1 of 100; `item_search` holds what
  the indexer writes after an import (`assay_search_text` of a text prompt and two text responses is the three
  texts joined by spaces, so the fill joins them directly: the function costs a third of the fill);
- rater 1 judged every even item (2% ties, 1% both bad, 5% with a rationale), rater 2 one item
  in ten, rater 3 skipped one item in 200.
Each query runs `--runs` times after one warm-up; the table shows the median and the slowest
(milliseconds, measured around the service call, so it includes SQLAlchemy and asyncpg).
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
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.database import database_server, insert_batch, migrate, scratch_database
from bench.dataset import WORDS
from server.db import make_engine, make_sessionmaker
from server.items import service
from server.items.filters import PAGE_SIZE, ItemFilters, Status, Verdict
from server.models import Project, Role, User
from server.projects import service as projects
from server.projects.schemas import ProjectCreate

console = Console()
BUDGET_MS = 300.0

_GENERATE = """
CREATE TEMP TABLE gen AS
SELECT g,
       (SELECT string_agg(w[1 + floor(random() * n)::int + 0 * s], ' ') FROM generate_series(1, 30 + 0 * g) s) ||
         CASE WHEN g % 10000 = 7 THEN ' sourdough' ELSE '' END || CASE WHEN g % 100 = 3 THEN ' kombucha' ELSE '' END
         AS prompt,
       (SELECT string_agg(w[1 + floor(random() * n)::int + 0 * s], ' ') FROM generate_series(1, 40 + 0 * g) s) AS r1,
       (SELECT string_agg(w[1 + floor(random() * n)::int + 0 * s], ' ') FROM generate_series(1, 40 + 0 * g) s) AS r2
FROM generate_series(1, {n}) g, (SELECT '{words}'::text[] AS w, {count} AS n) v
"""
_ITEMS = """
INSERT INTO items (id, project_id, batch_id, external_id, prompt, wanted, judged, completed_at)
SELECT gen_random_uuid(), :project, :batch, 'item-' || g, to_jsonb(prompt), 1,
       CASE WHEN g % 2 = 0 OR g % 10 = 1 THEN 1 ELSE 0 END,
       CASE WHEN g % 2 = 0 OR g % 10 = 1 THEN now() END
FROM gen ORDER BY g
"""
_SEARCH = """
INSERT INTO item_search (item_id, project_id, search)
SELECT i.id, i.project_id, to_tsvector('english', concat_ws(' ', gen.prompt, gen.r1, gen.r2))
FROM items i JOIN gen ON i.external_id = 'item-' || gen.g
WHERE i.project_id = :project
"""
_CANDIDATES = """
INSERT INTO candidates (id, item_id, position, text, model)
SELECT gen_random_uuid(), i.id, p, CASE p WHEN 0 THEN gen.r1 ELSE gen.r2 END, 'model-' || p
FROM items i JOIN gen ON i.external_id = 'item-' || gen.g CROSS JOIN generate_series(0, 1) p
WHERE i.project_id = :project
"""
_WORK = """
WITH picked AS (
    SELECT i.id AS item_id, substr(i.external_id, 6)::int AS g,
           (SELECT array_agg(c.id ORDER BY c.position) FROM candidates c WHERE c.item_id = i.id) AS ids
    FROM items i WHERE i.project_id = :project AND {where}
), a AS (
    INSERT INTO assignments (id, project_id, item_id, rater_id, status, shown_order, expires_at, finished_at,
                             skip_reason)
    SELECT gen_random_uuid(), :project, item_id, :rater, CAST(:status AS text), ids, now(), now(),
           CASE WHEN CAST(:status AS text) = 'skipped' THEN 'cannot judge this' END
    FROM picked RETURNING id, item_id, shown_order
)
INSERT INTO judgments (id, assignment_id, project_id, item_id, rater_id, choice_id, tie, both_bad, rationale,
                       surplus, active_ms)
SELECT gen_random_uuid(), a.id, :project, a.item_id, :rater,
       CASE WHEN p.g % 100 IN (0, 50) THEN NULL ELSE a.shown_order[1] END,
       p.g % 100 = 0, p.g % 100 = 50, CASE WHEN p.g % 20 = 4 THEN 'clearer and shorter' END, false, 3000
FROM a JOIN picked p ON p.item_id = a.item_id
WHERE CAST(:status AS text) = 'submitted'
"""


async def _accounts(session: AsyncSession) -> tuple[Project, list[User]]:
    people = [
        User(email=f"{role}{i}@bench.example", role=role) for i, role in enumerate([Role.admin] + [Role.rater] * 3)
    ]
    session.add_all(people)
    await session.flush()
    project = await projects.create(session, ProjectCreate(name="Browse bench", allow_tie=True, allow_both_bad=True),
                                    actor=people[0])  # fmt: skip
    for rater in people[1:]:
        await projects.add_member(session, project, rater.id, actor=people[0])
    await session.commit()
    return project, people


async def fill(session: AsyncSession, project: Project, people: list[User], items: int) -> float:
    started = time.monotonic()
    batch = await insert_batch(session, project.id, items=items)
    await session.execute(text("SET LOCAL jit = off"))
    words = "{" + ",".join(WORDS) + "}"  # our own vocabulary: plain lowercase words
    steps: list[tuple[str, Any, dict[str, Any]]] = [
        ("texts", _GENERATE.format(n=int(items), words=words, count=len(WORDS)), {}),
        ("statistics", "ANALYZE gen", {}),
        ("items", _ITEMS, {"project": project.id, "batch": batch}),
        ("candidates", _CANDIDATES, {"project": project.id}),
        ("search", _SEARCH, {"project": project.id}),
        ("statistics", "ANALYZE items, candidates, item_search", {}),
    ]
    for name, sql, params in steps:
        step = time.monotonic()
        await session.execute(text(sql), params)
        console.print(f"  {name}: {time.monotonic() - step:.1f} s")
    for rater, where, status in (
        (people[1], "substr(i.external_id, 6)::int % 2 = 0", "submitted"),
        (people[2], "substr(i.external_id, 6)::int % 10 = 1", "submitted"),
        (people[3], "substr(i.external_id, 6)::int % 200 = 3", "skipped"),
    ):
        await session.execute(
            text(_WORK.format(where=where)), {"project": project.id, "rater": rater.id, "status": status}
        )
    await session.commit()
    console.print(f"filled {items:,} items in {time.monotonic() - started:.0f} s; vacuum analyze…")
    bind = session.bind
    assert isinstance(bind, AsyncEngine)
    async with bind.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM (ANALYZE) items, candidates, assignments, judgments"))
    return time.monotonic() - started


async def _time(call: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, float, Any]:
    result = await call()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), result


async def measure(
    session: AsyncSession, project: Project, people: list[User], items: int, runs: int, *, explain: bool
) -> Table:
    deep = items * 9 // 10  # a page far into the project (keyset: the same cost as the first)
    rater = people[1]
    cases: dict[str, ItemFilters] = {
        "no filter, first page": ItemFilters(),
        "no filter, page at 90%": ItemFilters(after=deep),
        "status complete": ItemFilters(status=Status.complete),
        "status not judged yet, page at 90%": ItemFilters(status=Status.unjudged, after=deep),
        "verdict tie": ItemFilters(verdict=Verdict.tie),
        "verdict tie, page at 90%": ItemFilters(verdict=Verdict.tie, after=deep),
        "verdict both bad": ItemFilters(verdict=Verdict.both_bad),
        "has rationale": ItemFilters(has_rationale=True),
        "skipped": ItemFilters(skipped=True),
        "rater 2": ItemFilters(rater_id=people[2].id),
        "rater 1, tie, with rationale (none)": ItemFilters(rater_id=rater.id, verdict=Verdict.tie, has_rationale=True),
        "words: rare (sourdough)": ItemFilters(q="sourdough"),
        "words: 1% (kombucha)": ItemFilters(q="kombucha"),
        "words: common (reward)": ItemFilters(q="reward"),
        "words: two common (reward policy)": ItemFilters(q="reward policy"),
        "words: phrase, page at 90%": ItemFilters(q='"helpful answer"', after=deep),
        "words: absent (zzzz)": ItemFilters(q="zzzz"),
        "words kombucha + tie": ItemFilters(q="kombucha", verdict=Verdict.tie),
        "words reward + skipped": ItemFilters(q="reward", skipped=True),
    }
    table = Table(
        title=f"Data browser at {items:,} items ({runs} runs each after a warm-up; budget {BUDGET_MS:.0f} ms)"
    )
    for column in ("query", "rows", "median ms", "max ms", "within budget"):
        table.add_column(column, justify="left" if column == "query" else "right")
    for name, filters in cases.items():
        median, worst, page = await _time(lambda f=filters: service.browse(session, project, f), runs)
        table.add_row(name, str(len(page.rows)), f"{median:.1f}", f"{worst:.1f}", "yes" if worst < BUDGET_MS else "NO")
        if explain and worst > BUDGET_MS / 3:
            probe = service.density_probe(project.id, filters)
            sparse = probe is not None and (await session.scalar(probe) or 0) <= PAGE_SIZE
            compiled = service.browse_query(project.id, filters, sparse=sparse).compile(
                dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
            )
            plan = await session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))
            console.print(f"[bold]{name}[/bold]\n" + "\n".join(r[0] for r in plan))
        await session.rollback()
    first = (await service.browse(session, project, ItemFilters(verdict=Verdict.tie))).rows[0]
    median, worst, _ = await _time(lambda: service.get_item(session, first.id), runs)
    table.add_row("item page", "1", f"{median:.1f}", f"{worst:.1f}", "yes" if worst < BUDGET_MS else "NO")
    median, worst, page = await _time(lambda: service.rater_judgments(session, project, rater, before=None), runs)
    table.add_row("rater page (500k judgments)", str(len(page.rows)), f"{median:.1f}", f"{worst:.1f}",
                  "yes" if worst < BUDGET_MS else "NO")  # fmt: skip
    return table


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="print the plans of queries over a third of the budget")
    args = parser.parse_args()
    async with database_server() as server, scratch_database(server, "assay_browse") as url:
        await migrate(url)
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as session:
                project, people = await _accounts(session)
                seconds = await fill(session, project, people, args.items)
                console.print(f"fill and vacuum: {seconds:.0f} s")
            async with make_sessionmaker(engine)() as session:
                console.print(await measure(session, project, people, args.items, args.runs, explain=args.explain))
        finally:
            await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())

"""The assistance experiment report at scale: the crowd of bench.quality_page, its assignments put in
an experiment (shown at random, half), then `critiques.report.assistance_report` timed cold (records
read, the leave-one-out agreement, the bootstrap and permutations, stored) and warm (the snapshot),
and its parts: the records from the database, and `experiment.compare` per metric.

    .venv/bin/python -m bench.assistance_report [--items 33334] [--overlap 3] [--raters 20] [--runs 3]
"""

import argparse
import asyncio
import os
import statistics
import time

os.environ.setdefault("ASSAY_ENVIRONMENT", "test")

from rich.console import Console
from sqlalchemy import text

from bench.database import database_server, migrate, scratch_database
from bench.quality_page import accounts, fill
from server.critiques import report
from server.db import make_engine, make_sessionmaker
from server.quality import experiment

console = Console()

_EXPERIMENT = (
    """
    UPDATE assignments SET assistance = jsonb_build_object('policy', 'experiment', 'ratio', 0.5,
                                                           'shown', random() < 0.5)
    WHERE project_id = :project
    """,
    """
    UPDATE judgments j SET assistance_shown = (a.assistance ->> 'shown')::boolean
    FROM assignments a WHERE a.id = j.assignment_id AND j.project_id = :project
    """,
    'UPDATE projects SET assistance_policy = \'{"assistance": "experiment", "ratio": 0.5}\' WHERE id = :project',
)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=33_334)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--raters", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    async with database_server() as server, scratch_database(server, "assay_assistance_report") as url:
        await migrate(url)
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as session:
                project, raters = await accounts(session, args.raters, overlap=args.overlap)
                await fill(session, project, raters, items=args.items, overlap=args.overlap)
                for sql in _EXPERIMENT:
                    await session.execute(text(sql), {"project": project.id})
                await session.commit()
                await session.refresh(project)
                cold, warm, read = [], [], []
                per_metric: dict[str, list[float]] = {m: [] for m in experiment.METRICS}
                for _ in range(args.runs):
                    await session.execute(
                        text("DELETE FROM quality_snapshots WHERE project_id = :p"), {"p": project.id}
                    )
                    await session.commit()
                    started = time.perf_counter()
                    found, _ = await report.records(session, project)
                    read.append(time.perf_counter() - started)
                    for metric in experiment.METRICS:
                        started = time.perf_counter()
                        experiment.compare(found, metrics=(metric,))
                        per_metric[metric].append(time.perf_counter() - started)
                    await session.execute(
                        text("DELETE FROM quality_snapshots WHERE project_id = :p"), {"p": project.id}
                    )
                    await session.commit()
                    started = time.perf_counter()
                    figures = await report.assistance_report(session, project, fresh=True)
                    await session.commit()
                    cold.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    await report.assistance_report(session, project)
                    warm.append(time.perf_counter() - started)
            judgments = figures["arms"]["assisted"]["judgments"] + figures["arms"]["unassisted"]["judgments"]
            console.print(
                f"{judgments:,} judgments by {args.raters} raters: cold median {statistics.median(cold):.1f} s "
                f"(max {max(cold):.1f}), warm median {1000 * statistics.median(warm):.0f} ms"
            )
            console.print(
                f"of which: records from the database {statistics.median(read):.1f} s (with the rater model fit); "
                + ", ".join(f"{m} {statistics.median(t):.1f} s" for m, t in per_metric.items())
            )
            console.print(figures["differences"]["agreement"]["sentence"])
        finally:
            await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())

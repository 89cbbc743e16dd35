"""What one rater request costs, statement by statement: `python -m bench.requests [--cycles N] [--profile]`.

In process (the app's lifespan, httpx's ASGI transport) on a scratch database of BENCH_DATABASE_URL
(or the embedded server): an import, then the API loop (`next` + `judgment`, token) and the rater
page's swap (`POST /assignments/{id}/judge`, session), one rater at a time. For each kind of request
it prints the statements, transactions (BEGIN) and database time the app's engine sent, recorded with
SQLAlchemy events, and the request's wall time; `--show KIND` lists one request's statements, and
`--profile` runs cProfile over the swaps. The same file runs on an older commit (copy bench/ over, as
bench/before_after.sh does), so two commits can be compared statement by statement.
"""

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("ASSAY_ENVIRONMENT", "test")

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from bench import dataset
from bench.accounts import PASSWORD, bearer, create_accounts, create_project
from bench.database import database_server, migrate, scratch_database
from bench.raters import _slots


class Recorder:
    """Statements, transactions and database time of the app's engine, per labelled request."""

    def __init__(self, engine: Any) -> None:
        self.label: str | None = None
        self.current: list[tuple[str, float]] = []
        self.begins = 0
        self.background: list[tuple[str, float]] = []
        self.requests: dict[str, list[dict[str, Any]]] = defaultdict(list)
        sync = engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._before)
        event.listen(sync, "after_cursor_execute", self._after)
        event.listen(sync, "begin", self._begin)
        self.commit_s = 0.0
        recorder = self
        original = AsyncSession.commit

        async def timed_commit(session: AsyncSession) -> None:
            started = time.perf_counter()
            try:
                await original(session)
            finally:
                recorder.commit_s += time.perf_counter() - started

        AsyncSession.commit = timed_commit  # type: ignore[method-assign]
        self.gc_s = 0.0
        self.gc_runs: dict[int, int] = defaultdict(int)
        gc_started = [0.0]

        def collected(phase: str, info: dict[str, int]) -> None:  # the garbage collector's pauses
            if phase == "start":
                gc_started[0] = time.perf_counter()
            else:
                recorder.gc_s += time.perf_counter() - gc_started[0]
                recorder.gc_runs[info["generation"]] += 1

        gc.callbacks.append(collected)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        record = (" ".join(statement.split()), time.perf_counter() - conn.info["bench_started"])
        if self.label is not None:
            self.current.append(record)
        else:  # work the app does between requests (background tasks a request started)
            self.background.append(record)

    def _begin(self, conn: Any) -> None:
        if self.label is not None:
            self.begins += 1

    async def request(self, label: str, call: Any) -> httpx.Response:
        self.label, self.current, self.begins, self.commit_s, self.gc_s = label, [], 0, 0.0, 0.0
        started, cpu = time.perf_counter(), time.process_time()
        response: httpx.Response = await call
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        self.requests[label].append(
            {
                "statements": self.current,
                "begins": self.begins,
                "wall_ms": wall * 1000,
                "cpu_ms": cpu * 1000,
                "commit_ms": self.commit_s * 1000,
                "gc_ms": self.gc_s * 1000,
                "status": response.status_code,
            }
        )
        self.label = None
        return response


def summary(recorder: Recorder, skip: int) -> str:
    columns = ("statements", "BEGINs", "db ms", "wall ms", "cpu ms", "commit ms", "gc ms mean")
    lines = [f"{'request':<10} {'n':>4} " + " ".join(f"{c:>10}" for c in columns) + "   (medians)"]
    for label, runs in recorder.requests.items():
        runs = runs[skip:] or runs
        values = [
            statistics.median(len(r["statements"]) for r in runs),
            statistics.median(r["begins"] for r in runs),
            statistics.median(sum(t for _, t in r["statements"]) * 1000 for r in runs),
            statistics.median(r["wall_ms"] for r in runs),
            statistics.median(r["cpu_ms"] for r in runs),
            statistics.median(r["commit_ms"] for r in runs),
            statistics.mean(r["gc_ms"] for r in runs),
        ]
        lines.append(f"{label:<10} {len(runs):>4} " + " ".join(f"{v:>10.2f}" for v in values))
    lines.append(f"between requests: {len(recorder.background)} statements")
    objects = len(gc.get_objects())
    lines.append(f"garbage collections by generation: {dict(recorder.gc_runs)}; objects tracked now: {objects:,}")
    return "\n".join(lines)


def show(recorder: Recorder, label: str, skip: int) -> str:
    runs = recorder.requests[label][skip:] or recorder.requests[label]
    middle = sorted(runs, key=lambda r: len(r["statements"]))[len(runs) // 2]
    return "\n".join(f"{t * 1000:7.2f} ms  {s[:220]}" for s, t in middle["statements"])


async def run(args: argparse.Namespace) -> None:
    from server.app import create_app

    async with database_server() as server, scratch_database(server, "assay_requests") as url:
        if True:
            await migrate(url)
            accounts = await create_accounts(url, raters=2)
            app = create_app(database_url=url)
            async with app.router.lifespan_context(app):
                recorder = Recorder(app.state.engine)
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                    project = await create_project(client, accounts.admin, "profile", accounts.raters)
                    path = Path(tempfile.mkdtemp()) / "items.jsonl"
                    dataset.write_items_jsonl(path, args.items, prefix="p")
                    with path.open("rb") as file:
                        response = await recorder.request(
                            "import",
                            client.post(
                                f"/api/v1/projects/{project}/batches",
                                headers=bearer(accounts.admin.token),
                                data={"format": "native", "encoding": "jsonl", "name": "items"},
                                files={"file": ("items.jsonl", file, "application/x-ndjson")},
                            ),
                        )
                    assert response.status_code == 201, response.text
                    await _search_indexed(app)
                    api = accounts.raters[0]
                    for _ in range(args.cycles):
                        response = await recorder.request(
                            "next",
                            client.post(f"/api/v1/projects/{project}/assignments/next", headers=bearer(api.token)),
                        )
                        assert response.status_code == 200, response.text
                        assignment = response.json()
                        choice = assignment["item"]["candidates"][0]["id"]
                        response = await recorder.request(
                            "submit",
                            client.post(
                                f"/api/v1/assignments/{assignment['id']}/judgment",
                                json={"choice": choice},
                                headers=bearer(api.token),
                            ),
                        )
                        assert response.status_code == 201, response.text
                async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as page:
                    login = await page.post(
                        "/api/v1/auth/session", json={"email": accounts.raters[1].email, "password": PASSWORD}
                    )
                    login.raise_for_status()
                    page.headers.update(
                        {"X-CSRF-Token": login.json()["csrf_token"], "HX-Request": "true", "HX-Target": "queue"}
                    )
                    opened = await page.get(f"/projects/{project}/label")
                    queue = _slots(opened.text)
                    if not queue:
                        queue = _slots((await page.post(f"/projects/{project}/label/queue")).text)
                    profiler = cProfile.Profile() if args.profile else None
                    for _ in range(args.cycles):
                        (assignment, verdict), ahead = queue[0], queue[1:]
                        data = {"verdict": verdict, "ahead": ",".join(a for a, _ in ahead)}
                        if profiler:
                            profiler.enable()
                        response = await recorder.request(
                            "swap", page.post(f"/assignments/{assignment}/judge", data=data)
                        )
                        if profiler:
                            profiler.disable()
                        assert response.status_code == 200, response.text[:500]
                        queue = ahead + _slots(response.text)
    skip = min(5, args.cycles // 4)
    print(summary(recorder, skip))
    for label in args.show:
        print(f"\n--- one {label} (median statement count) ---\n{show(recorder, label, skip)}")
    if args.show:
        print("\n--- between requests ---")
        for statement, seconds in recorder.background[:40]:
            print(f"{seconds * 1000:7.2f} ms  {statement[:220]}")
    if profiler and args.profile_out:
        profiler.dump_stats(args.profile_out)
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.filter, 45)
        print(out.getvalue())


async def _search_indexed(app: Any) -> None:
    """Let the search indexer (on commits that have one) finish before the rater requests are timed."""
    try:
        from server.items.search import indexing_done
    except ImportError:
        return
    await indexing_done()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--show", nargs="*", default=[], help="request kinds to list: import next submit swap")
    parser.add_argument("--profile", action="store_true", help="cProfile the swaps")
    parser.add_argument("--sort", default="tottime", help="pstats order: tottime, cumulative")
    parser.add_argument("--profile-out", default="", help="also write the cProfile stats to this file")
    parser.add_argument("--filter", default="", help="pstats: only functions whose path matches")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

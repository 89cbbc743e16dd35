"""What one rater request costs, statement by statement: `python -m bench.requests [--cycles N] [--profile]`.

In process (the app's lifespan, httpx's ASGI transport) on a scratch database of BENCH_DATABASE_URL
(or the embedded server): an import, then the API loop (`next` + `judgment`, token) and the rater
page's swap (`POST /assignments/{id}/judge`, session), one rater at a time. For each kind of request
it prints the statements, transactions (BEGIN) and database time the app's engine sent, recorded with
SQLAlchemy events, and the request's wall time; `--show KIND` lists one request's statements, and
`--profile [swap|api]` runs cProfile over the swaps or the API loop. The same file runs on an older
commit (copy bench/ over, as bench/before_after.sh does), so two commits can be compared statement by
statement.

`--pair BASE_TREE HEAD_TREE` compares two commits' server processes in the same run, block by block
(bench/before_after.sh with BENCH_MODULE=bench.requests sets up the trees; see "Two commits side by
side" below and docs/BENCHMARKS.md)."""

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

from bench import dataset, pgstats
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
                    # CPU time, not wall time: waiting for PostgreSQL costs the process nothing.
                    profiler = cProfile.Profile(time.process_time) if args.profile else None
                    for _ in range(args.cycles):
                        if profiler and args.profile == "api":
                            profiler.enable()
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
                        if profiler and args.profile == "api":
                            profiler.disable()
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
                    for _ in range(args.cycles):
                        (assignment, verdict), ahead = queue[0], queue[1:]
                        data = {"verdict": verdict, "ahead": ",".join(a for a, _ in ahead)}
                        if profiler and args.profile == "swap":
                            profiler.enable()
                        response = await recorder.request(
                            "swap", page.post(f"/assignments/{assignment}/judge", data=data)
                        )
                        if profiler and args.profile == "swap":
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


# --- Two commits side by side: `--pair BASE_TREE HEAD_TREE` ---
#
# Each tree prepares its own scratch database with its own code (`--prepare`: migrate, accounts, a
# project, an import), then both servers run at once, each from its own tree, and the driver sends
# them the same blocks of sequential annotations in turn: base, head, head, base, ... (the order
# flips every block, so a slow spell of a shared machine falls on both). Per block it reads the
# server process's CPU time (utime + stime), the CPU time of the PostgreSQL backends serving that
# database, and pg_stat_statements for that database (when the server preloads it): statements,
# execution time, rows and shared buffers. Counts are exact; times are paired block by block, and
# the table gives the median of the per-block ratios head ÷ base with their range.

LOOPS = ("api", "swap")
# --analyze: annotations per loop after the ANALYZE, unmeasured (each connection plans its statements
# again: custom plans for the first five executions, then the generic one).
ANALYZED_WARMUP = 20


async def prepare(args: argparse.Namespace) -> None:
    """This tree's scratch database, ready for raters: migrated, accounts, a project, items imported.
    Writes what the driver needs to `--prepare PATH`; the driver drops the database at the end."""
    import json
    import uuid

    from bench.database import execute_on, with_database
    from server.app import create_app

    async with database_server() as server:
        database = f"assay_pair_{uuid.uuid4().hex[:10]}"
        await execute_on(server.url, f'CREATE DATABASE "{database}"')
        url = with_database(server.url, database)
        await migrate(url)
        accounts = await create_accounts(url, raters=2)
        app = create_app(database_url=url)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                project = await create_project(client, accounts.admin, "pair", accounts.raters)
                path = Path(tempfile.mkdtemp()) / "items.jsonl"
                dataset.write_items_jsonl(path, args.items, prefix="p")
                with path.open("rb") as file:
                    response = await client.post(
                        f"/api/v1/projects/{project}/batches",
                        headers=bearer(accounts.admin.token),
                        data={"format": "native", "encoding": "jsonl", "name": "items"},
                        files={"file": ("items.jsonl", file, "application/x-ndjson")},
                    )
                assert response.status_code == 201, response.text
                path.unlink()
            await _search_indexed(app)
    ready = {
        "maintenance_url": server.url,
        "url": url,
        "database": database,
        "project": project,
        "token": accounts.raters[0].token,
        "email": accounts.raters[1].email,
    }
    Path(args.prepare).write_text(json.dumps(ready))


class Side:
    """One commit's server, its API rater (token) and its page rater (browser session)."""

    def __init__(self, name: str, tree: Path, ready: dict[str, Any], server: Any) -> None:
        self.name, self.tree, self.ready, self.server = name, tree, ready, server
        self.api = httpx.AsyncClient(base_url=server.url, timeout=60, headers=bearer(ready["token"]))
        self.page = httpx.AsyncClient(base_url=server.url, timeout=60)
        self.queue: list[tuple[str, str]] = []
        self.blocks: dict[str, list[dict[str, Any]]] = {loop: [] for loop in LOOPS}
        self.stats: pgstats.PgStats | None = None
        self.commit = ""

    async def open_page(self) -> None:
        login = await self.page.post("/api/v1/auth/session", json={"email": self.ready["email"], "password": PASSWORD})
        login.raise_for_status()
        self.page.headers.update(
            {"X-CSRF-Token": login.json()["csrf_token"], "HX-Request": "true", "HX-Target": "queue"}
        )
        project = self.ready["project"]
        opened = await self.page.get(f"/projects/{project}/label")
        self.queue = _slots(opened.text) or _slots((await self.page.post(f"/projects/{project}/label/queue")).text)

    async def annotate(self) -> None:
        """The API loop: `next`, then a `judgment` on it."""
        response = await self.api.post(f"/api/v1/projects/{self.ready['project']}/assignments/next")
        assert response.status_code == 200, f"{self.name}: {response.status_code} {response.text[:300]}"
        assignment = response.json()
        choice = assignment["item"]["candidates"][0]["id"]
        response = await self.api.post(f"/api/v1/assignments/{assignment['id']}/judgment", json={"choice": choice})
        assert response.status_code == 201, f"{self.name}: {response.status_code} {response.text[:300]}"

    async def swap(self) -> None:
        """The rater page: submit the item on screen, get the one after the next."""
        (assignment, verdict), ahead = self.queue[0], self.queue[1:]
        data = {"verdict": verdict, "ahead": ",".join(a for a, _ in ahead)}
        response = await self.page.post(f"/assignments/{assignment}/judge", data=data)
        assert response.status_code == 200, f"{self.name}: {response.status_code} {response.text[:300]}"
        self.queue = ahead + _slots(response.text)

    async def measure(self, loop: str, annotations: int) -> None:
        """`annotations` of one loop, one at a time; what they cost the server and PostgreSQL."""
        import psutil

        assert self.stats is not None
        step = self.annotate if loop == "api" else self.swap
        process = psutil.Process(self.server.pid)
        before = await self.stats.snapshot()
        cpu_before, started = process.cpu_times(), time.perf_counter()
        walls = []
        for _ in range(annotations):
            began = time.perf_counter()
            await step()
            walls.append((time.perf_counter() - began) * 1000)
        cpu_after, seconds = process.cpu_times(), time.perf_counter() - started
        after = await self.stats.snapshot()
        app_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        pg_s = sum(v - before["cpu"].get(pid, 0.0) for pid, v in pgstats.cpu_by_pid(after["backends"]).items())
        per = 1.0 / annotations
        block: dict[str, Any] = {
            "annotations": annotations,
            "seconds": seconds,
            "app_cpu_ms": app_s * 1000 * per,
            "postgres_cpu_ms": pg_s * 1000 * per,
            "wall_ms_p50": statistics.median(walls),
        }
        if self.stats.available:
            statements = pgstats.statement_delta(before["statements"], after["statements"])
            top = [s for s in statements if s["toplevel"]]
            block.update(
                statements=sum(s["calls"] for s in top) * per,
                nested=sum(s["calls"] for s in statements if not s["toplevel"]) * per,
                postgres_exec_ms=sum(s["exec_ms"] for s in top) * per,
                rows=sum(s["rows"] for s in top) * per,
                buffers=sum(s["buffers"] for s in top) * per,
                top=[
                    {**s, **{k: s[k] * per for k in ("calls", "exec_ms", "rows", "buffers")}} for s in statements[:20]
                ],
            )
        self.blocks[loop].append(block)


def _prepare_in(tree: Path, out: Path, items: int) -> dict[str, Any]:
    import json
    import subprocess

    python = tree / ".venv" / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "bench.requests", "--prepare", str(out), "--items", str(items)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"--prepare failed in {tree}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    ready: dict[str, Any] = json.loads(out.read_text())
    return ready


async def run_pair(args: argparse.Namespace) -> None:
    import json
    import subprocess

    from bench.database import connect, execute_on, with_database
    from bench.servers import free_port, server_env, spawn, stop_servers, wait_healthy

    trees = [Path(t).resolve() for t in args.pair]
    names = ["base", "head"][: len(trees)] if len(trees) == 2 else ["head"]
    items = len(LOOPS) * (args.warmup + ANALYZED_WARMUP * args.analyze + args.blocks * args.annotations) + 20
    work = Path(tempfile.mkdtemp(prefix="bench-pair-"))
    print(f"preparing {len(trees)} database(s) with {items} items each ...", flush=True)
    readies = [_prepare_in(tree, work / f"{name}.json", items) for name, tree in zip(names, trees, strict=True)]
    servers, sides = [], []
    maintenance = await connect(readies[0]["maintenance_url"])
    try:
        available = await pgstats.available(maintenance)
        for name, tree, ready in zip(names, trees, readies, strict=True):
            python = tree / ".venv" / "bin" / "python"
            env = server_env(ready["url"], args.pool)
            server = spawn(free_port(), env, work / f"server-{name}.log", python=str(python), cwd=tree)
            servers.append(server)
            side = Side(name, tree, ready, server)
            side.commit = subprocess.run(
                ["git", "-C", str(tree), "log", "--oneline", "-1"], capture_output=True, text=True, check=False
            ).stdout.strip()
            side.stats = pgstats.PgStats(maintenance, ready["database"], available)
            sides.append(side)
        wait_healthy(servers)
        for side in sides:
            await side.open_page()
            for _ in range(args.warmup):
                await side.annotate()
                await side.swap()
        if args.analyze:  # statistics as a live project's, then re-plan outside the measured blocks
            for side in sides:
                await execute_on(with_database(side.ready["maintenance_url"], side.ready["database"]), "ANALYZE")
            for side in sides:
                for _ in range(ANALYZED_WARMUP):
                    await side.annotate()
                    await side.swap()
        for block in range(args.blocks):
            order = sides if block % 2 == 0 else sides[::-1]
            for loop in LOOPS:
                for side in order:
                    await side.measure(loop, args.annotations)
            figures = "; ".join(
                f"{s.name} {loop} {s.blocks[loop][-1]['app_cpu_ms']:.2f} ms" for loop in LOOPS for s in sides
            )
            print(f"block {block + 1}/{args.blocks}: app CPU per annotation: {figures}", flush=True)
    finally:
        stop_servers(servers)
        for side in sides:
            await side.api.aclose()
            await side.page.aclose()
        await maintenance.close()
        for ready in readies:
            await execute_on(ready["maintenance_url"], f'DROP DATABASE IF EXISTS "{ready["database"]}" WITH (FORCE)')
    for side in sides:  # the statements are the same in every block: the last one's list is enough
        for blocks in side.blocks.values():
            for block in blocks[:-1]:
                block.pop("top", None)
    result = {
        "settings": {
            "blocks": args.blocks,
            "annotations": args.annotations,
            "warmup": args.warmup,
            "analyze": args.analyze,
            "pool": args.pool,
            "items": items,
        },
        "pg_stat_statements": available,
        "sides": {s.name: {"tree": str(s.tree), "commit": s.commit, "blocks": s.blocks} for s in sides},
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(pair_table(result))


COMPARED = (  # (key, words): costs per annotation, lower is better
    ("app_cpu_ms", "app CPU ms"),
    ("postgres_cpu_ms", "PostgreSQL backend CPU ms"),
    ("postgres_exec_ms", "PostgreSQL execution ms (pg_stat_statements)"),
    ("statements", "statements, BEGIN and COMMIT included"),
    ("nested", "foreign-key checks"),
    ("buffers", "shared buffers hit + read"),
    ("rows", "rows"),
    ("wall_ms_p50", "client wall ms p50"),
)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def pair_table(result: dict[str, Any]) -> str:
    """Per loop and figure: each side's median (min-max) over blocks and, with two sides, the median
    of the per-block ratios head ÷ base (min-max) and the ratio of the sums."""
    sides = result["sides"]
    settings = result["settings"]
    lines = [f"{name}: {side['commit']}" for name, side in sides.items()]
    lines.append(
        f"{settings['blocks']} blocks of {settings['annotations']} annotations per loop and side, after "
        f"{settings['warmup']} unmeasured"
        + (f", then ANALYZE and {ANALYZED_WARMUP} more" if settings.get("analyze") else "")
        + "; the order flips every block"
    )
    lines.append("")
    paired = "base" in sides and "head" in sides
    header = "| loop | per annotation | " + " | ".join(f"{n}, median (min-max)" for n in sides)
    lines.append(header + (" | head ÷ base per block, median (min-max) | head ÷ base, sums |" if paired else " |"))
    lines.append("|---|---|" + "---:|" * (len(sides) + (2 if paired else 0)))
    for loop in LOOPS:
        for key, words in COMPARED:
            columns = [[b[key] for b in side["blocks"][loop] if key in b] for side in sides.values()]
            if not all(columns):
                continue
            row = f"| {loop} | {words} | " + " | ".join(_spread(c) for c in columns)
            if paired:
                base, head = columns
                ratios = [h / b for b, h in zip(base, head, strict=True) if b]
                if ratios:
                    row += f" | {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
                    row += f" | {sum(head) / sum(base):.3f}" if sum(base) else " | "
                else:
                    row += " | | "
            lines.append(row + " |")
    if paired:
        lines.append("")
        lines.append("Ratios above 1 mean head costs more than base; above 1.10, more than issue 7's 10%.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--show", nargs="*", default=[], help="request kinds to list: import next submit swap")
    parser.add_argument(
        "--profile", nargs="?", const="swap", choices=("swap", "api"), help="cProfile the swaps (or the API loop)"
    )
    parser.add_argument("--sort", default="tottime", help="pstats order: tottime, cumulative")
    parser.add_argument("--profile-out", default="", help="also write the cProfile stats to this file")
    parser.add_argument("--filter", default="", help="pstats: only functions whose path matches")
    parser.add_argument("--pair", nargs="+", default=[], metavar="TREE", help="base and head trees (or one)")
    parser.add_argument("--blocks", type=int, default=10, help="--pair: measured blocks per loop and side")
    parser.add_argument("--annotations", type=int, default=50, help="--pair: annotations per block")
    parser.add_argument("--warmup", type=int, default=30, help="--pair: unmeasured annotations per loop first")
    parser.add_argument("--pool", type=int, default=5, help="--pair: each server's database pool size")
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="--pair: ANALYZE both databases after the warmup (plans as on a live project's tables, not on"
        " the nearly empty ones each connection planned with), then 20 more unmeasured annotations per loop",
    )
    parser.add_argument("--json", default="", help="--pair: also write every block's figures to this file")
    parser.add_argument("--prepare", default="", help=argparse.SUPPRESS)  # --pair runs it in each tree
    args = parser.parse_args()
    if args.prepare:
        asyncio.run(prepare(args))
    elif args.pair:
        asyncio.run(run_pair(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()

"""One function per measured phase; each returns a JSON-ready dict of figures."""

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import dataset, pgstats, raters
from bench.accounts import PASSWORD, Account, bearer
from bench.database import connect
from bench.servers import CpuMeter, RssSampler, Server

UPLOAD_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class PhaseConfig:
    warmup_s: float
    duration_s: float
    client_processes: int
    probe_cycles: int


def percentiles(values: list[float]) -> dict[str, float] | None:
    """Nearest-rank p50/p95/p99 (ms); None without samples."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "n": len(ordered)}


def per_1k_tps(rate: float, tps: float | None) -> float | None:
    return rate / (tps / 1000) if tps else None


async def upload(server: Server, admin: Account, project_id: str, path: Path) -> dict[str, Any]:
    """POST one JSONL file as a multipart batch; returns the response with its timing."""
    async with httpx.AsyncClient(base_url=server.url, timeout=UPLOAD_TIMEOUT_S) as client:
        with path.open("rb") as file:
            started = time.perf_counter()
            response = await client.post(
                f"/api/v1/projects/{project_id}/batches",
                headers=bearer(admin.token),
                data={"format": "native", "encoding": "jsonl", "name": path.name},
                files={"file": (path.name, file, "application/x-ndjson")},
            )
            seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"import refused: HTTP {response.status_code} {response.text[:1000]}")
    return {"seconds": seconds, "response": response.json()}


async def measure_import(
    server: Server,
    admin: Account,
    project_id: str,
    items: int,
    workdir: Path,
    postmaster_pid: int | None,
    database_url: str,
) -> dict[str, Any]:
    path = workdir / f"items-{items}.jsonl"
    size = await asyncio.to_thread(dataset.write_items_jsonl, path, items, prefix="big")
    last = items - 1  # the upload's last item: "Q{i}: ..." opens its prompt, a word no other item has
    with RssSampler(server.pid) as rss, CpuMeter([server.pid], postmaster_pid) as cpu:
        with CpuMeter([server.pid], postmaster_pid) as answered:
            done = await upload(server, admin, project_id, path)
        answered_at = time.perf_counter()
        # The search vectors are written after the import commits (server/items/search.py); until
        # then the data browser computes the vectors of the next items past the indexer's place on
        # the fly (a bounded number). Time one word search for the last item right after the answer
        # (what an admin who searches at once waits for), search again each second until it lists
        # the item, then wait until every vector is written, so that the work is counted here and
        # not in the next phase.
        searched = await _word_search(server, admin, project_id, f"Q{last}", f"big-{last}")
        found_s = None if searched is None else searched[1]
        indexed = await _search_indexed(database_url)
        indexed_s = (
            None if indexed is None else time.perf_counter() - answered_at
        )  # since the answer, searches included
    path.unlink()
    created = int(done["response"]["created"])
    return {
        "items": created,
        "mb": size / 2**20,
        "seconds": done["seconds"],
        "items_per_s": created / done["seconds"],
        # One word search right after the answer: its own time (None on a commit without word search).
        "first_search_s": None if searched is None else searched[0],
        # Upload answered, then a word search (searching again each second) lists the last item.
        "searchable_s": None if found_s is None else done["seconds"] + found_s,
        "searchable_items_per_s": None if found_s is None else created / (done["seconds"] + found_s),
        # Upload answered and every item's search vector written (None on a commit without the index).
        "indexed_s": None if indexed_s is None else done["seconds"] + indexed_s,
        "indexed_items_per_s": None if indexed_s is None else created / (done["seconds"] + indexed_s),
        "rss_before_mb": rss.before_mb,
        "rss_peak_mb": rss.peak_mb,
        # Where the time went: CPU-seconds of the server process and of PostgreSQL until the
        # answer, and until the search vectors were written.
        "server_cpu_s": answered.result["server_cpu_s"],
        "postgres_cpu_s": answered.result["postgres_cpu_s"],
        "indexed_server_cpu_s": cpu.result["server_cpu_s"],
        "indexed_postgres_cpu_s": cpu.result["postgres_cpu_s"],
    }


async def _word_search(
    server: Server, admin: Account, project_id: str, word: str, external_id: str, timeout_s: float = 600.0
) -> tuple[float, float] | None:
    """A word search on the data browser for `word`, right away and then once a second until it lists
    `external_id` (the admin logs in first, not timed): the first search's seconds, and the seconds
    until one listed the item. None on a commit without the data browser."""
    async with httpx.AsyncClient(base_url=server.url, timeout=UPLOAD_TIMEOUT_S) as client:
        login = await client.post("/api/v1/auth/session", json={"email": admin.email, "password": PASSWORD})
        login.raise_for_status()
        started = time.perf_counter()
        first: float | None = None
        while True:
            sent = time.perf_counter()
            response = await client.get(f"/admin/projects/{project_id}/items", params={"q": word})
            if response.status_code == 404:
                return None
            response.raise_for_status()
            first = time.perf_counter() - sent if first is None else first
            if external_id in response.text:
                return first, time.perf_counter() - started
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError(f"a word search for {word!r} did not list {external_id} in {timeout_s:.0f} s")
            await asyncio.sleep(1.0)


async def _search_indexed(database_url: str, timeout_s: float = 600.0) -> float | None:
    """Seconds until no batch waits for its search vectors (None on a commit without `search_pending`)."""
    started = time.perf_counter()
    connection = await connect(database_url)
    try:
        if await connection.fetchval("SELECT to_regclass('search_pending')") is None:
            return None
        while await connection.fetchval("SELECT EXISTS (SELECT 1 FROM search_pending)"):
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError(f"search vectors still pending after {timeout_s:.0f} s")
            await asyncio.sleep(0.02)
    finally:
        await connection.close()
    return time.perf_counter() - started


async def import_small(server: Server, admin: Account, project_id: str, items: int, workdir: Path) -> None:
    path = workdir / f"small-{items}.jsonl"
    await asyncio.to_thread(dataset.write_items_jsonl, path, items, prefix="small", seed=11)
    await upload(server, admin, project_id, path)
    path.unlink()


async def _probe_one(server: Server, probe: Account, project_id: str, config: PhaseConfig) -> dict[str, Any]:
    result = await raters.sequential_cycles(server.url, probe.token, project_id, cycles=config.probe_cycles, warmup=10)
    if result.error_count:
        raise RuntimeError(f"queue probe failed: {result.errors}")
    by_kind = {k: [s.ms for s in result.samples if s.kind == k] for k in (raters.NEXT, raters.SUBMIT)}
    return {
        "cycles": len(by_kind[raters.SUBMIT]),
        "next_ms": percentiles(by_kind[raters.NEXT]),
        "submit_ms": percentiles(by_kind[raters.SUBMIT]),
    }


async def queue_probe(server: Server, probe: Account, projects: dict[str, str], config: PhaseConfig) -> dict[str, Any]:
    """Sequential single-rater next + submit on a small and a large open queue: cost must not grow."""
    figures = {name: await _probe_one(server, probe, pid, config) for name, pid in projects.items()}
    small, large = (figures[name]["next_ms"]["p50"] for name in projects)
    return figures | {"next_p50_ratio": large / small}


def summarize_raters(
    samples: raters.PhaseSamples, cpu: dict[str, float], servers: int, raters_count: int, tps: float | None
) -> dict[str, Any]:
    submits = [s for s in samples.in_window(raters.SUBMIT) if s.status == 201]
    nexts = [s for s in samples.in_window(raters.NEXT) if s.status == 200]
    duration = samples.window[1] - samples.window[0]
    rate = len(submits) / duration
    count = max(1, len(submits))
    every = max(count, _all_submits(samples))  # CPU over the whole phase per judgment of the whole phase
    return {
        "servers": servers,
        "raters": raters_count,
        "duration_s": duration,
        "annotations": len(submits),
        "annotations_per_s": rate,
        "per_1k_tps": per_1k_tps(rate, tps),
        "next_ms": percentiles([s.ms for s in nexts]),
        "submit_ms": percentiles([s.ms for s in submits]),
        "http_errors": samples.error_count,
        "error_examples": samples.errors,
        "raters_out_of_work": samples.out_of_work,
        # CPU over the whole phase (warm-up included) divided by the judgments of the whole phase.
        "server_cpu_ms_per_annotation": 1000 * cpu["server_cpu_s"] / every,
        "postgres_cpu_ms_per_annotation": 1000 * cpu["postgres_cpu_s"] / every,
        # Of which its backends (the rest: autovacuum, checkpoints, the WAL writer)
        "postgres_backend_cpu_ms_per_annotation": 1000 * cpu["postgres_backend_cpu_s"] / every,
        "machine_busy_pct": cpu["machine_busy_pct"],
        "client_cpu_s": samples.client_cpu_s,
        # CPU the machine spent on none of the above (other users of the machine): noise in this run.
        "other_cpu_s": cpu["machine_busy_cpu_s"] - cpu["server_cpu_s"] - cpu["postgres_cpu_s"] - samples.client_cpu_s,
        "phase_s": cpu["seconds"],
    }


def _all_submits(samples: raters.PhaseSamples) -> int:
    return sum(1 for c in samples.children for s in c.samples if s.kind == raters.SUBMIT and s.status == 201)


async def rater_phase(
    servers: list[Server],
    tokens: list[str],
    project_id: str,
    config: PhaseConfig,
    postmaster_pid: int | None,
    tps: float | None,
) -> dict[str, Any]:
    plan = raters.RaterPlan(project_id=project_id, warmup_s=config.warmup_s, duration_s=config.duration_s)
    urls = [s.url for s in servers]
    with CpuMeter([s.pid for s in servers], postmaster_pid) as cpu:
        samples = await asyncio.to_thread(raters.run_rater_phase, urls, tokens, plan, config.client_processes)
    return summarize_raters(samples, cpu.result, len(servers), len(tokens), tps)


async def swap_phase(
    servers: list[Server],
    emails: list[str],
    project_id: str,
    config: PhaseConfig,
    postmaster_pid: int | None,
    think_s: float,
    database_url: str,
) -> dict[str, Any]:
    """The rater page's next-item swap under load: each rater submits as htmx does and gets the item
    after the next back (verdict stored, a new lease taken, its HTML rendered) in one request.
    With pg_stat_statements preloaded, also what PostgreSQL spent per judgment stored in the phase."""
    plan = raters.RaterPlan(
        project_id=project_id, warmup_s=config.warmup_s, duration_s=config.duration_s, mode="page", think_s=think_s
    )
    urls = [s.url for s in servers]
    window = CpuMeter([s.pid for s in servers], postmaster_pid)  # the measured window only: no logins
    async with _Statements(database_url, project_id) as statements:
        with CpuMeter([s.pid for s in servers], postmaster_pid) as cpu:
            samples = await asyncio.to_thread(
                raters.run_rater_phase, urls, emails, plan, config.client_processes, window
            )
    swaps = [s for s in samples.in_window(raters.SWAP) if s.status == 200]
    duration = samples.window[1] - samples.window[0]
    # CPU in the window divided by the swaps answered in it (those that started in it and ended after are
    # left out of both the count and, mostly, the CPU: a few in 20 s).
    every = max(1, len(swaps))
    return {
        "servers": len(servers),
        "raters": len(emails),
        "think_s": think_s,
        "duration_s": duration,
        "swaps": len(swaps),
        "swaps_per_s": len(swaps) / duration,
        "server_ms": percentiles([s.server_ms for s in swaps]),
        "client_ms": percentiles([s.ms for s in swaps]),
        "http_errors": samples.error_count,
        "error_examples": samples.errors,
        # Raters the queue ran out on before the end: the phase then measured an emptying queue (a
        # commit that labels faster in the phases before has fewer items left here), not comparable.
        "raters_out_of_work": samples.out_of_work,
        "server_cpu_ms_per_swap": 1000 * window.result["server_cpu_s"] / every,
        "postgres_cpu_ms_per_swap": 1000 * window.result["postgres_cpu_s"] / every,
        "postgres_backend_cpu_ms_per_swap": 1000 * window.result["postgres_backend_cpu_s"] / every,
        "machine_busy_pct": cpu.result["machine_busy_pct"],
        **({"statements": statements.result} if statements.result else {}),
    }


class _Statements:
    """pg_stat_statements of the bench database over a phase (warm-up included), per judgment stored
    in it; nothing when the server does not preload pg_stat_statements (initdb's default)."""

    def __init__(self, database_url: str, project_id: str) -> None:
        self.database_url, self.project_id = database_url, project_id
        self.result: dict[str, Any] | None = None

    async def _judgments(self) -> int:
        return int(
            await self.connection.fetchval(
                "SELECT count(*) FROM judgments WHERE project_id = $1", uuid.UUID(self.project_id)
            )
        )

    async def __aenter__(self) -> "_Statements":
        self.connection = await connect(self.database_url)
        self.stats = pgstats.PgStats(
            self.connection,
            await self.connection.fetchval("SELECT current_database()"),
            await pgstats.available(self.connection),
        )
        self.before = (await self.stats.snapshot(), await self._judgments())
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self.stats.available and exc[0] is None:
                after, judgments = await self.stats.snapshot(), await self._judgments()
                stored = judgments - self.before[1]
                delta = pgstats.statement_delta(self.before[0]["statements"], after["statements"])
                self.result = {"judgments": stored, **pgstats.per_unit(delta, stored)}
        finally:
            await self.connection.close()


async def _stream(client: httpx.AsyncClient, url: str, params: dict[str, str]) -> dict[str, Any]:
    """Read an export to the end; its row count and digest come from the manifest the server wrote."""
    started = time.perf_counter()
    ttfb: float | None = None
    size = 0
    digest = hashlib.sha256()
    async with client.stream("GET", url, params=params) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"export failed: HTTP {response.status_code} {response.text[:500]}")
        async for chunk in response.aiter_bytes():  # decoded: httpx asks for gzip, as trainers' clients do
            if ttfb is None:
                ttfb = time.perf_counter() - started
            size += len(chunk)
            digest.update(chunk)
        export_id = response.headers["Assay-Export-Id"]
        wire = response.num_bytes_downloaded
    seconds = time.perf_counter() - started
    manifest = (await client.get(f"/api/v1/exports/{export_id}")).json()
    if manifest["sha256"] != digest.hexdigest():
        raise RuntimeError(f"export {export_id}: body sha256 differs from its manifest")
    return {
        "rows": manifest["rows"],
        "mb": size / 2**20,
        "wire_mb": wire / 2**20,
        "seconds": seconds,
        "rows_per_s": manifest["rows"] / seconds,
        "ttfb_s": ttfb or seconds,
    }


async def measure_export(
    server: Server, trainer: Account, project_id: str, params: dict[str, str], timeout_s: float, rss_limit_mb: float
) -> dict[str, Any]:
    """Stream one full export and sample the server's RSS; give up if the server grows past the limit."""
    limit = int(rss_limit_mb * 2**20)
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(trainer.token), timeout=timeout_s) as client:
        with RssSampler(server.pid, limit_bytes=limit) as rss:
            stream = asyncio.create_task(_stream(client, f"/api/v1/projects/{project_id}/export", params))
            watchdog = asyncio.create_task(asyncio.to_thread(rss.exceeded.wait, timeout_s))
            done, _ = await asyncio.wait({stream, watchdog}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            rss.exceeded.set()  # ends the watchdog thread whichever way this went
            await watchdog
            if stream not in done:
                stream.cancel()
                figures = {"aborted": f"server RSS passed {rss_limit_mb:,.0f} MB or {timeout_s:.0f} s passed"}
            else:
                figures = stream.result()
    return figures | {"rss_before_mb": rss.before_mb, "rss_peak_mb": rss.peak_mb}


async def wait_until_exportable(url: str, project_id: str, timeout_s: float) -> dict[str, Any]:
    """Wait until the cluster's snapshot xmin has passed the project's newest judgment.

    Exports only send judgments whose transaction is older than the oldest transaction still
    running anywhere on the PostgreSQL server (any database), so one long transaction elsewhere
    makes an export come back empty. We wait for that, and record who held it back.
    """
    connection = await connect(url)
    started = time.monotonic()
    blockers: list[str] = []
    try:
        newest = await connection.fetchval(
            "SELECT max(xid) FROM judgments WHERE project_id = $1", uuid.UUID(project_id)
        )
        while time.monotonic() - started < timeout_s:
            xmin = await connection.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            if newest is None or xmin > newest:
                break
            blockers = [_describe_blocker(r) for r in await connection.fetch(_OLD_TRANSACTIONS)] or blockers
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
    return {"waited_s": time.monotonic() - started, "blockers": blockers[:5]}


_OLD_TRANSACTIONS = """
    SELECT datname, state, round(extract(epoch FROM now() - xact_start)) AS age_s, left(query, 80) AS query
    FROM pg_stat_activity
    WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
    ORDER BY xact_start LIMIT 5
"""


def _describe_blocker(row: Any) -> str:
    return f"{row['datname']}: {row['state']} for {row['age_s']} s: {row['query']!r}"

"""`make bench`: measure Assay against pgbench on the same PostgreSQL, in one run, and print a table.

Phases: pgbench baseline (idle machine) → accounts → import (1 server) → queue-size probe →
raters with 1 then 4 server processes → SQL audit → export of a bulk-filled project → Label
Studio's own benchmark (bench/label_studio.py, about 10 minutes, its own PostgreSQL cluster and
pgbench; `--no-label-studio` or BENCH_LABEL_STUDIO=0 skips it and the table then says that its
column comes from another run). Every server process is started by PID and stopped in
`finally`; the bench database is dropped.
"""

import argparse
import asyncio
import os
import signal
import tempfile
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("ASSAY_ENVIRONMENT", "test")  # before server.config is imported anywhere

import asyncpg
import httpx
import psutil
from rich.console import Console

from bench import label_studio, phases, report
from bench.accounts import Accounts, create_accounts, create_project
from bench.database import DatabaseServer, audit, connect, database_server, migrate, scratch_database
from bench.dataset import fill_judgments
from bench.pgbench import run_pgbench
from bench.servers import ROOT, Server, running_servers

RESULTS = ROOT / "bench" / "results"
PHASES = ("import", "raters", "swap", "export")
EXPORTS = {  # label -> query of one full export of the bulk-filled project
    "raw": {"format": "raw"},
    "trl": {"format": "trl"},
    "trl parquet": {"format": "trl", "encoding": "parquet"},
}
POOL_HEADROOM = 20  # connections left for the bench itself, psql, autovacuum and anyone else
console = Console(stderr=True)


@dataclass(frozen=True)
class Config:
    mode: str
    items: int
    small_items: int
    raters: int
    server_counts: tuple[int, ...]
    phase: phases.PhaseConfig
    export_items: int
    export_raters: int  # judgments per exported item: export_items * export_raters judgments
    pgbench_duration_s: int
    phases: frozenset[str]
    budget_s: float
    think_s: float = 5.0
    label_studio: bool = True


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2-minute smoke run: 10k items, 10 s phases")
    parser.add_argument("--phases", default=",".join(PHASES), help="comma list of import,raters,swap,export")
    parser.add_argument("--no-pgbench", action="store_true", help="skip the baseline (no ratios then)")
    parser.add_argument("--duration", type=float, help="seconds per rater phase (30; quick 10)")
    parser.add_argument("--items", type=int, help="items in the upload (100,000; quick 10,000)")
    parser.add_argument(
        "--think", type=float, default=5.0, help="rater page: mean seconds per item before submitting (5; 0 = none)"
    )
    parser.add_argument("--budget", type=float, default=720.0, help="seconds; later phases are skipped past it")
    parser.add_argument(
        "--no-label-studio",
        action="store_true",
        help="do not run Label Studio's benchmark after ours (~10 min); its column then shows another run's figures",
    )
    args = parser.parse_args(argv)
    chosen = frozenset(p.strip() for p in args.phases.split(",") if p.strip())
    if unknown := chosen - set(PHASES):
        parser.error(f"unknown phase(s) {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}")
    if not args.no_pgbench:
        chosen |= {"pgbench"}
    quick = args.quick
    return Config(
        mode="quick" if quick else "full",
        items=args.items or (10_000 if quick else 100_000),
        small_items=1_000,
        raters=100,
        server_counts=(1, 4),
        phase=phases.PhaseConfig(
            warmup_s=1.0 if quick else 5.0,  # past pool growth and per-connection statement preparation
            duration_s=args.duration or (10.0 if quick else 30.0),
            client_processes=2,
            probe_cycles=50 if quick else 200,
        ),
        export_items=10_000 if quick else 100_000,
        export_raters=10,
        pgbench_duration_s=10 if quick else 15,
        phases=chosen,
        budget_s=args.budget,
        think_s=args.think,
        label_studio=not args.no_label_studio,
    )


@dataclass
class Run:
    config: Config
    server: DatabaseServer
    url: str
    accounts: Accounts
    workdir: Path
    started: float = field(default_factory=time.monotonic)
    results: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def log(self, message: str) -> None:
        console.print(f"[dim]{time.monotonic() - self.started:6.1f} s[/dim] {message}")

    def remaining(self) -> float:
        return self.config.budget_s - (time.monotonic() - self.started)

    def pool_size(self, processes: int) -> int:
        """Per-process pool so that processes * pool stays well under max_connections."""
        return max(2, min(20, (self.server.max_connections - POOL_HEADROOM) // processes))

    def servers(self, count: int) -> AbstractContextManager[list[Server]]:
        return running_servers(count, database_url=self.url, pool_size=self.pool_size(count), log_dir=RESULTS / "logs")

    @property
    def tps(self) -> float | None:
        pg = self.results.get("pgbench")
        return float(pg["tps"]) if pg else None


async def baseline(server: DatabaseServer, config: Config) -> dict[str, Any]:
    async with scratch_database(server, "assay_pgbench") as url:
        result = await asyncio.to_thread(
            run_pgbench, url, server_version_num=server.version_num, duration_s=config.pgbench_duration_s
        )
    return result.as_dict()


async def labeling_phases(run: Run) -> None:
    """Import the queue, probe its cost, run the raters with 1 and 4 server processes, then the rater page."""
    config, accounts = run.config, run.accounts
    with run.servers(1) as servers:
        async with httpx.AsyncClient(base_url=servers[0].url, timeout=60) as client:
            big = await create_project(client, accounts.admin, "bench queue", [*accounts.raters, accounts.probe])
            small = await create_project(client, accounts.admin, "bench small queue", [accounts.probe])
        run.log(f"importing {config.items:,} items in one POST")
        run.results["import"] = await phases.measure_import(
            servers[0], accounts.admin, big, config.items, run.workdir, run.server.postmaster_pid, run.url
        )
        run.log(f"imported at {run.results['import']['items_per_s']:,.0f} items/s")
        if "raters" in config.phases:
            await phases.import_small(servers[0], accounts.admin, small, config.small_items, run.workdir)
            run.log("queue-size probe (one rater, sequential)")
            run.results["queue_probe"] = await phases.queue_probe(
                servers[0],
                accounts.probe,
                {f"{config.small_items // 1000}k": small, f"{config.items // 1000}k": big},
                config.phase,
            )
    if not config.phases & {"raters", "swap"}:
        return
    # A phase that fails (e.g. its clients could not start on a loaded machine) is reported as
    # skipped with the reason; the phases after it still run.
    if "raters" in config.phases:
        await _guarded(run, "raters", api_rater_phases(run, big))
    if "swap" in config.phases:
        await _guarded(run, "swap", swap_phase(run, big))
    run.results["audit"] = await audit(run.url, big)
    run.log(f"audit: {'OK' if run.results['audit']['ok'] else 'FAILED'} {run.results['audit']}")


async def _guarded(run: Run, name: str, phase: Any) -> None:
    try:
        await phase
    except RuntimeError as exc:
        run.log(f"{name} failed: {exc}")
        run.skipped.append(f"{name} (failed: {exc})")


async def api_rater_phases(run: Run, project: str) -> None:
    config = run.config
    tokens = [r.token for r in run.accounts.raters]
    run.results["raters"] = {}
    for count in config.server_counts:
        with run.servers(count) as servers:
            run.log(f"{len(tokens)} raters for {config.phase.duration_s:.0f} s against {count} server process(es)")
            pid = run.server.postmaster_pid
            figures = await phases.rater_phase(servers, tokens, project, config.phase, pid, run.tps)
            run.results["raters"][str(count)] = figures
            run.log(f"{figures['annotations_per_s']:,.1f} annotations/s, {figures['http_errors']} HTTP errors")


async def swap_phase(run: Run, project: str) -> None:
    """The same raters on the rater page, with 1 and 4 server processes: the htmx next-item swap."""
    emails = [r.email for r in run.accounts.raters]
    config = run.config
    run.results["swap"] = {}
    for count in config.server_counts:
        with run.servers(count) as servers:
            run.log(f"{len(emails)} raters on the rater page for {config.phase.duration_s:.0f} s, {count} process(es)")
            pid = run.server.postmaster_pid
            swap = await phases.swap_phase(servers, emails, project, config.phase, pid, config.think_s, run.url)
        run.results["swap"][str(count)] = swap
        if swap["swaps"] == 0:
            run.log(f"swap: no swap in the window, {swap['http_errors']} HTTP errors {swap['error_examples'][:2]}")
        else:
            run.log(f"swap: server p95 {swap['server_ms']['p95']:.1f} ms, {swap['http_errors']} HTTP errors")


async def export_phase(run: Run) -> None:
    config, accounts = run.config, run.accounts
    fill_raters = accounts.raters[: config.export_raters]
    with run.servers(1) as servers:
        async with httpx.AsyncClient(base_url=servers[0].url, timeout=60) as client:
            project = await create_project(client, accounts.admin, "bench export", [accounts.trainer])
    run.log(f"bulk-filling {config.export_items * config.export_raters:,} judgments in SQL")
    connection: asyncpg.Connection = await connect(run.url)
    try:
        fill = await fill_judgments(
            connection,
            project_id=project,
            admin_id=accounts.admin.id,
            rater_ids=[r.id for r in fill_raters],
            items=config.export_items,
        )
    finally:
        await connection.close()
    run.results["export"] = {"fill": fill.as_dict()}
    run.results["export"]["snapshot"] = await phases.wait_until_exportable(run.url, project, timeout_s=60)
    for fmt, params in EXPORTS.items():
        if run.remaining() < 30:
            run.skipped.append(f"export {fmt} (time budget)")
            continue
        # A fresh server per format: its RSS starts from idle and an aborted export cannot linger.
        with run.servers(1) as servers:
            run.log(f"streaming export format={fmt}")
            figures = await phases.measure_export(
                servers[0], accounts.trainer, project, params, run.remaining(), rss_limit_mb=_rss_limit_mb()
            )
        run.results["export"][fmt] = figures | {"expected_rows": fill.judgments}
        if "aborted" in figures:
            run.log(f"export {fmt} aborted: {figures['aborted']}")
        else:
            growth = figures["rss_peak_mb"] - figures["rss_before_mb"]
            run.log(f"export {fmt}: {figures['rows_per_s']:,.0f} rows/s, server RSS +{growth:,.0f} MB")


def _rss_limit_mb() -> float:
    """How far a server may grow during an export before the bench stops it: the machine comes first."""
    return min(16_384.0, 0.6 * float(psutil.virtual_memory().available) / 2**20)


async def measure(config: Config) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {}
    skipped: list[str] = []
    async with database_server() as server:
        console.print(f"PostgreSQL {server.version} ({server.source}), max_connections {server.max_connections}")
        if "pgbench" in config.phases:
            console.print(f"pgbench -i -s 10, then -N -c 8 -j 2 -T {config.pgbench_duration_s}")
            results["pgbench"] = await baseline(server, config)
            console.print(f"pgbench -N: {results['pgbench']['tps']:,.0f} TPS")
        async with scratch_database(server, "assay_bench") as url:
            await migrate(url)
            accounts = await create_accounts(url, config.raters)
            with tempfile.TemporaryDirectory(prefix="assay-bench-") as workdir:
                run = Run(config, server, url, accounts, Path(workdir), started, results, skipped)
                run.log(f"database migrated, {len(accounts.raters)} raters with tokens")
                if config.phases & {"import", "raters", "swap"}:
                    await labeling_phases(run)
                if "export" in config.phases:
                    if run.remaining() > 90:
                        await export_phase(run)
                    else:
                        skipped.append("export (time budget)")
        meta_db = {"source": server.source, "version": server.version, "max_connections": server.max_connections}
    results["label_studio"] = await asyncio.to_thread(run_label_studio, config)
    results["meta"] = {
        "mode": config.mode,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": time.monotonic() - started,
        "database": meta_db,
        "machine": {"cpus": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
        "config": {k: str(v) for k, v in config.__dict__.items()},
        "skipped": skipped,
    }
    return results


def run_label_studio(config: Config) -> dict[str, Any]:
    """Label Studio's benchmark after ours (nothing of ours runs meanwhile), or why it was not run."""
    reason = label_studio.skip_reason(config.label_studio)
    if reason is None and config.mode == "quick":
        reason = "--quick"
    if reason is not None:
        console.print(f"Label Studio not run ({reason}): its column shows another run's figures, labelled so")
        return {"skipped": reason}
    console.print(f"Label Studio: {label_studio.SCRIPT} {' '.join(label_studio.ARGS)} (about 10 minutes)")
    with tempfile.TemporaryDirectory(prefix="assay-bench-ls-") as workdir:
        raw = label_studio.run(Path(workdir), RESULTS / "logs" / "label_studio.log")
    if "error" in raw:
        console.print(f"Label Studio failed: {raw['error']}")
        return {"skipped": f"it failed ({raw['error']})"}
    return {"raw": raw, "figures": label_studio.figures(raw)}


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so every `finally` (servers, databases) still runs."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    _exit_on_sigterm()
    results = asyncio.run(measure(config))
    out = Console()
    if not out.is_terminal:
        out = Console(width=200)  # a log file or pipe: keep each row on one line
    report.print_table(results, out)
    path = RESULTS / "latest.json"
    report.write_json(results, path)
    console.print(f"Results written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

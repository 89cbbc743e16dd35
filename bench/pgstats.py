"""pg_stat_statements and backend CPU for one database, read as snapshots and diffed.

Used by `bench.requests --pair` (per block of annotations) and by `make bench`'s rater-page phase
(per judgment stored in the phase). Available only when the server preloads pg_stat_statements
(`shared_preload_libraries`); `initdb`'s defaults do not, and the figures are then left out.
"""

from typing import Any

import psutil

COLUMNS = (
    "calls, plans, total_exec_time, total_plan_time, rows, shared_blks_hit + shared_blks_read AS buffers, "
    "shared_blks_dirtied AS dirtied, wal_bytes"
)


async def available(connection: Any) -> bool:
    """Whether pg_stat_statements can be read (the server must preload it; the extension is created)."""
    if "pg_stat_statements" not in await connection.fetchval("SHOW shared_preload_libraries"):
        return False
    await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return True


class PgStats:
    """pg_stat_statements for one database (when available) and the CPU time of its backends."""

    def __init__(self, connection: Any, database: str, available: bool) -> None:
        self.connection, self.database, self.available = connection, database, available

    async def snapshot(self) -> dict[str, Any]:
        backends = [
            r["pid"]
            for r in await self.connection.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", self.database)
        ]
        statements: dict[tuple[int, bool], dict[str, Any]] = {}
        if self.available:
            rows = await self.connection.fetch(
                f"SELECT queryid, toplevel, query, {COLUMNS} FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
                self.database,
            )
            statements = {(r["queryid"], r["toplevel"]): dict(r) for r in rows}
        return {"backends": backends, "cpu": cpu_by_pid(backends), "statements": statements}


_SUMMED = {
    "calls": "calls",
    "plans": "plans",
    "exec_ms": "total_exec_time",
    "plan_ms": "total_plan_time",
    "rows": "rows",
    "buffers": "buffers",
    "dirtied": "dirtied",
    "wal_bytes": "wal_bytes",
}


def statement_delta(
    before: dict[tuple[int, bool], dict[str, Any]], after: dict[tuple[int, bool], dict[str, Any]]
) -> list[dict[str, Any]]:
    """What each statement did between two snapshots, most execution time first; nested ones
    (foreign-key checks) kept apart, as their time and buffers are already in the statement that ran them."""
    delta = []
    for key, row in after.items():
        old = before.get(key, {})
        if row["calls"] - old.get("calls", 0):
            change = {name: float(row[column] - old.get(column, 0)) for name, column in _SUMMED.items()}
            delta.append({"query": " ".join(row["query"].split())[:300], "toplevel": row["toplevel"], **change})
    return sorted(delta, key=lambda d: -d["exec_ms"])


def per_unit(statements: list[dict[str, Any]], units: int, top: int = 20) -> dict[str, Any]:
    """Totals of the top-level statements and the `top` costliest ones, each divided by `units`."""
    per = 1.0 / max(1, units)
    outer = [s for s in statements if s["toplevel"]]
    totals = {name: sum(s[name] for s in outer) * per for name in _SUMMED}
    return {
        **totals,
        "nested_calls": sum(s["calls"] for s in statements if not s["toplevel"]) * per,
        "top": [{**s, **{name: s[name] * per for name in _SUMMED}} for s in statements[:top]],
    }


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    seconds: dict[int, float] = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        seconds[pid] = times.user + times.system
    return seconds

"""The results table (rich) and JSON file, with Label Studio's published figures beside ours."""

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# Label Studio Community 1.23.2 on this machine, as published by the peer run in
# /work/shared/peers/label_studio/FINDINGS.md ("Results", canonical run 3). These are the
# peer's figures, not measured here: they are printed as a reference column only.
# LS's rater workload was 20 raters on a 10k-task queue (overlap 1) unless marked 100k.
LABEL_STUDIO: dict[str, Any] = {
    "source": "/work/shared/peers/label_studio/FINDINGS.md (run 3)",
    "pgbench_n_tps": 7008,
    "annotations_per_1k_tps": 1.60,  # gunicorn x4, overlap 1 ("Normalized throughput")
    "runserver": {"annotations_per_s": 8.1, "next_ms": (1062, 1524, 2263), "submit_ms": (1306, 1952, 2209)},
    "gunicorn_x4": {"annotations_per_s": 11.2, "next_ms": (830, 1369, 1507), "submit_ms": (836, 1308, 1422)},
    "cpu_ms_per_annotation": {"app": 98, "postgres": 70},  # gunicorn, overlap 1
    "queue_100k": {"annotations_per_s": 2.5, "next_p50_ms": 4288, "next_p95_ms": 7527},
    "next_unloaded_ms": {"10k": "~130", "100k": "135-360 (its query alone)"},
    "import_100k": {"seconds": 35.7, "items_per_s": 2798, "rss_before_mb": 1399, "rss_peak_mb": 2091},
    "export_100k_json": {"seconds": 211, "mb": 195, "rows_per_s": 474, "rss_before_mb": 2021, "rss_peak_mb": 2939},
    "http_errors": 0,
    "over_overlap_items": 0,
}


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _trio(values: dict[str, float] | tuple[float, ...] | None) -> str:
    if values is None:
        return "-"
    if isinstance(values, dict):
        values = (values["p50"], values["p95"], values["p99"])
    return " / ".join(_n(v, 1 if v < 10 else 0) for v in values)


def _ls_phase(servers: int) -> dict[str, Any]:
    phase: dict[str, Any] = LABEL_STUDIO["runserver"] if servers == 1 else LABEL_STUDIO["gunicorn_x4"]
    return phase


Row = tuple[str, str, str, str]


def _baseline_rows(results: dict[str, Any]) -> list[Row]:
    pg = results.get("pgbench")
    if not pg:
        return [("pgbench -N TPS", "skipped", _n(LABEL_STUDIO["pgbench_n_tps"]), "")]
    note = f"-c {pg['clients']} -j {pg['threads']} -T {pg['duration_s']}, scale {pg['scale']}"
    return [("pgbench -N TPS (baseline)", _n(pg["tps"]), _n(LABEL_STUDIO["pgbench_n_tps"]), note)]


def _import_rows(results: dict[str, Any]) -> list[Row]:
    imp = results.get("import")
    if not imp:
        return []
    ls = LABEL_STUDIO["import_100k"]
    return [
        (
            f"import {imp['items']:,} items, one POST (items/s)",
            _n(imp["items_per_s"]),
            _n(ls["items_per_s"]),
            f"{imp['seconds']:.1f} s, {imp['mb']:.0f} MB JSONL; CPU-s app {imp['server_cpu_s']:.1f}, "
            f"PostgreSQL {imp['postgres_cpu_s']:.1f}; target ≥ 30,000/s",
        ),
        (
            "import: server RSS before → peak (MB)",
            f"{imp['rss_before_mb']:.0f} → {imp['rss_peak_mb']:.0f}",
            f"{ls['rss_before_mb']} → {ls['rss_peak_mb']}",
            "LS: 100k tasks, 156 MB JSON",
        ),
    ]


def _phase_rows(servers: int, phase: dict[str, Any]) -> list[Row]:
    ls = _ls_phase(servers)
    ls_name = "runserver" if servers == 1 else "gunicorn x4"
    label = f"{servers} server process{'es' if servers > 1 else ''}"
    ls_cpu = LABEL_STUDIO["cpu_ms_per_annotation"]
    return [
        (
            f"{label}: annotations/s ({phase['raters']} raters)",
            _n(phase["annotations_per_s"], 1),
            _n(ls["annotations_per_s"], 1),
            f"{phase['annotations']:,} in {phase['duration_s']:.0f} s; LS {ls_name}, 20 raters, 10k queue",
        ),
        (
            f"{label}: annotations/s per 1,000 pgbench TPS",
            _n(phase.get("per_1k_tps"), 2),
            _n(LABEL_STUDIO["annotations_per_1k_tps"], 2) if servers > 1 else "-",
            "headline" if servers > 1 else "",
        ),
        (f"{label}: next p50 / p95 / p99 (ms)", _trio(phase["next_ms"]), _trio(ls["next_ms"]), ""),
        (f"{label}: submit p50 / p95 / p99 (ms)", _trio(phase["submit_ms"]), _trio(ls["submit_ms"]), ""),
        (
            f"{label}: CPU ms per annotation, app / PostgreSQL",
            f"{_n(phase['server_cpu_ms_per_annotation'], 1)} / {_n(phase['postgres_cpu_ms_per_annotation'], 1)}",
            f"{ls_cpu['app']} / {ls_cpu['postgres']}" if servers > 1 else "-",
            f"machine {phase['machine_busy_pct']:.0f}% busy; clients {phase['client_cpu_s']:.0f} CPU-s, "
            f"other processes {phase['other_cpu_s']:.0f} CPU-s in {phase['phase_s']:.0f} s",
        ),
        (f"{label}: HTTP errors", str(phase["http_errors"]), str(LABEL_STUDIO["http_errors"]), "must be 0"),
    ]


def _rater_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for servers, phase in sorted(results.get("raters", {}).items(), key=lambda kv: int(kv[0])):
        rows += _phase_rows(int(servers), phase)
    if rows:
        big = LABEL_STUDIO["queue_100k"]
        rows.append(
            (
                "LS on a 100k queue: annotations/s, next p50 / p95 (ms)",
                "-",
                f"{big['annotations_per_s']} ; {big['next_p50_ms']:,} / {big['next_p95_ms']:,}",
                "LS gunicorn x4, 20 raters (our phases above run on the 100k queue)",
            )
        )
    return rows


def _swap_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for _, swap in sorted(results.get("swap", {}).items(), key=lambda kv: int(kv[0])):
        rows += _swap_phase_rows(swap)
    return rows


def _swap_phase_rows(swap: dict[str, Any]) -> list[Row]:
    processes = f"{swap['servers']} server process{'es' if swap['servers'] > 1 else ''}"
    label = f"rater page swap, {swap['raters']} raters, {processes}"
    return [
        (
            f"{label}: server time p50 / p95 / p99 (ms)",
            _trio(swap["server_ms"]),
            "-",
            "submit + lease the item after the next + render it (Server-Timing); target p95 < 20 ms",
        ),
        (
            f"{label}: at the client p50 / p95 / p99 (ms)",
            _trio(swap["client_ms"]),
            "-",
            f"{swap['swaps']:,} swaps, {swap['swaps_per_s']:,.1f}/s, {swap['think_s']:g} s mean think time; "
            f"machine {swap['machine_busy_pct']:.0f}% busy; HTTP errors {swap['http_errors']}",
        ),
    ]


def _audit_rows(results: dict[str, Any]) -> list[Row]:
    audit = results.get("audit")
    if not audit:
        return []
    verdict = "OK" if audit["ok"] else "FAILED"
    detail = (
        f"{audit['items_over_wanted']} items over overlap, {audit['item_rater_pairs_twice']} pairs twice, "
        f"counter drift {audit['judged_counter_drift']}/{audit['leased_counter_drift']}, "
        f"{audit['surplus_judgments']} surplus of {audit['judgments']:,}"
    )
    return [("audit (SQL, after the rater phases)", verdict, str(LABEL_STUDIO["over_overlap_items"]), detail)]


def _probe_rows(results: dict[str, Any]) -> list[Row]:
    probe = results.get("queue_probe")
    if not probe:
        return []
    ls = LABEL_STUDIO["next_unloaded_ms"]
    rows: list[Row] = []
    for name, figures in probe.items():
        if name == "next_p50_ratio":
            continue
        rows.append(
            (
                f"1 rater, {name} open items: next / submit p50 (ms)",
                f"{_n(figures['next_ms']['p50'], 1)} / {_n(figures['submit_ms']['p50'], 1)}",
                ls["100k"] if name.startswith("100") else ls["10k"] + " (10k)",
                f"{figures['cycles']} sequential cycles; next p95 {_n(figures['next_ms']['p95'], 1)} ms",
            )
        )
    rows.append(("next p50, large ÷ small queue", _n(probe.get("next_p50_ratio"), 2), "linear in queue", ""))
    return rows


def _export_rows(results: dict[str, Any]) -> list[Row]:
    export = results.get("export")
    if not export:
        return []
    fill = export["fill"]
    rows: list[Row] = [
        (
            "export data: judgments bulk-filled in SQL",
            f"{fill['judgments']:,}",
            "100k tasks",
            f"{fill['items']:,} items; fill {fill['seconds']:.0f} s + vacuum {fill['vacuum_s']:.0f} s",
        )
    ]
    snapshot = export.get("snapshot", {})
    if snapshot.get("waited_s", 0) > 1:
        rows.append(
            ("export: waited for older transactions", f"{snapshot['waited_s']:.0f} s", "-", _blockers(snapshot))
        )
    for fmt in ("raw", "trl", "trl parquet"):
        run = export.get(fmt)
        if run:
            rows += _export_format_rows(fmt, run)
    return rows


def _blockers(snapshot: dict[str, Any]) -> str:
    return "; ".join(snapshot.get("blockers", [])[:2]) or "(gone before they could be named)"


def _export_format_rows(fmt: str, run: dict[str, Any]) -> list[Row]:
    ls = LABEL_STUDIO["export_100k_json"]
    growth = run["rss_peak_mb"] - run["rss_before_mb"]
    memory: Row = (
        f"export {fmt}: server RSS before → peak (MB)",
        f"{run['rss_before_mb']:.0f} → {run['rss_peak_mb']:.0f}",
        f"{ls['rss_before_mb']} → {ls['rss_peak_mb']}",
        f"+{growth:,.0f} MB (LS +{ls['rss_peak_mb'] - ls['rss_before_mb']} MB for 100k tasks)",
    )
    if "aborted" in run:
        return [(f"export {fmt}: rows/s", "ABORTED", _n(ls["rows_per_s"]) + " tasks/s", run["aborted"]), memory]
    missing = run["expected_rows"] - run["rows"]
    speed: Row = (
        f"export {fmt}: rows/s",
        _n(run["rows_per_s"]),
        _n(ls["rows_per_s"]) + " tasks/s",
        f"{run['rows']:,} rows, {run['mb']:,.0f} MB ({run.get('wire_mb', run['mb']):,.0f} MB on the wire)"
        f" in {run['seconds']:.1f} s; first byte {run['ttfb_s']:.1f} s"
        + (f"; {missing:,} ROWS MISSING" if missing else ""),
    )
    return [speed, memory]


def build_rows(results: dict[str, Any]) -> list[Row]:
    return (
        _baseline_rows(results)
        + _import_rows(results)
        + _probe_rows(results)
        + _rater_rows(results)
        + _swap_rows(results)
        + _audit_rows(results)
        + _export_rows(results)
    )


def print_table(results: dict[str, Any], console: Console) -> None:
    meta = results["meta"]
    title = f"Assay bench ({meta['mode']}), {meta['database']['source']}, PostgreSQL {meta['database']['version']}"
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("Assay (this run)", justify="right")
    table.add_column("Label Studio (peer)*", justify="right")
    table.add_column("notes")
    for row in build_rows(results):
        table.add_row(*row)
    console.print(table)
    console.print(
        f"* {LABEL_STUDIO['source']}: the peer's published figures on this machine, not measured by this run. "
        f"Wall time {meta['wall_s']:.0f} s; skipped: {', '.join(meta['skipped']) or 'nothing'}."
    )


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results | {"label_studio_reference": LABEL_STUDIO}, indent=2, default=str) + "\n")

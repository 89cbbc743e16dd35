"""The results table (rich) and JSON file, with Label Studio's figures beside ours.

The Label Studio column is measured in the same run (bench/label_studio.py) unless that was skipped;
then it shows the peer's figures from another run on another day, and its header and footnote say so.
"""

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import label_studio


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


def _ls_phase(ls: dict[str, Any], servers: int) -> dict[str, Any]:
    phase: dict[str, Any] = ls.get("runserver" if servers == 1 else "gunicorn_x4") or {}
    return phase


Row = tuple[str, str, str, str]


def _baseline_rows(results: dict[str, Any], ls: dict[str, Any]) -> list[Row]:
    pg = results.get("pgbench")
    if not pg:
        return [("pgbench -N TPS", "skipped", _n(ls.get("pgbench_n_tps")), "no ratios without it")]
    note = f"-c {pg['clients']} -j {pg['threads']} -T {pg['duration_s']}, scale {pg['scale']}"
    rows: list[Row] = [("pgbench -N TPS (baseline)", _n(pg["tps"]), _n(ls.get("pgbench_n_tps")), note)]
    ours, theirs = results.get("raters", {}).get("4", {}).get("per_1k_tps"), ls.get("annotations_per_1k_tps")
    if ours and theirs:
        rows.append(
            (
                "annotations/s per 1,000 pgbench TPS: Assay x4 ÷ LS gunicorn x4",
                f"{ours / theirs:,.1f} times",
                "",
                "each against its own run's pgbench"
                + ("" if ls.get("same_run") else "; LS from ANOTHER run on another day"),
            )
        )
    return rows


def _import_rows(results: dict[str, Any], ls: dict[str, Any]) -> list[Row]:
    imp = results.get("import")
    if not imp:
        return []
    big = ls.get("import_100k") or {}
    return [
        (
            f"import {imp['items']:,} items, one POST (items/s)",
            _n(imp["items_per_s"]),
            _n(big.get("items_per_s")),
            f"{imp['seconds']:.1f} s, {imp['mb']:.0f} MB JSONL; CPU-s app {imp['server_cpu_s']:.1f}, "
            f"PostgreSQL {imp['postgres_cpu_s']:.1f}; target ≥ 30,000/s",
        ),
        *(
            [
                (
                    "import: then one word search (ms)",
                    _n(imp["first_search_s"] * 1000),
                    "-",
                    "the data browser right after the answer: the next items past the indexer are searched on the fly",
                ),
                (
                    "import until a word search lists its last item (items/s)",
                    _n(imp["searchable_items_per_s"]),
                    "-",
                    f"{imp['searchable_s']:.1f} s after the POST began, searching again each second",
                ),
                (
                    "import until its search vectors are written (items/s)",
                    _n(imp["indexed_items_per_s"]),
                    "-",
                    f"{imp['indexed_s']:.1f} s after the POST began; CPU-s app {imp['indexed_server_cpu_s']:.1f}, "
                    f"PostgreSQL {imp['indexed_postgres_cpu_s']:.1f} (the import's included)",
                ),
            ]
            if imp.get("first_search_s") is not None and imp.get("indexed_s") is not None
            else []
        ),
        (
            "import: server RSS before → peak (MB)",
            f"{imp['rss_before_mb']:.0f} → {imp['rss_peak_mb']:.0f}",
            f"{_n(big.get('rss_before_mb'))} → {_n(big.get('rss_peak_mb'))}",
            "LS: 100k tasks, 156 MB JSON",
        ),
    ]


def _phase_rows(servers: int, phase: dict[str, Any], ls_all: dict[str, Any]) -> list[Row]:
    ls = _ls_phase(ls_all, servers)
    ls_name = "runserver" if servers == 1 else "gunicorn x4"
    label = f"{servers} server process{'es' if servers > 1 else ''}"
    ls_cpu = ls_all.get("cpu_ms_per_annotation") or {}
    return [
        (
            f"{label}: annotations/s ({phase['raters']} raters)",
            _n(phase["annotations_per_s"], 1),
            _n(ls.get("annotations_per_s"), 1),
            f"{phase['annotations']:,} in {phase['duration_s']:.0f} s; LS {ls_name}, 20 raters, 10k queue",
        ),
        (
            f"{label}: annotations/s per 1,000 pgbench TPS",
            _n(phase.get("per_1k_tps"), 2),
            _n(ls_all.get("annotations_per_1k_tps"), 2) if servers > 1 else "-",
            "headline" if servers > 1 else "",
        ),
        (f"{label}: next p50 / p95 / p99 (ms)", _trio(phase["next_ms"]), _trio(ls.get("next_ms")), ""),
        (f"{label}: submit p50 / p95 / p99 (ms)", _trio(phase["submit_ms"]), _trio(ls.get("submit_ms")), ""),
        (
            f"{label}: CPU ms per annotation, app / PostgreSQL",
            f"{_n(phase['server_cpu_ms_per_annotation'], 1)} / {_n(phase['postgres_cpu_ms_per_annotation'], 1)}",
            f"{_n(ls_cpu.get('app'))} / {_n(ls_cpu.get('postgres'))}" if servers > 1 and ls_cpu else "-",
            f"machine {phase['machine_busy_pct']:.0f}% busy; clients {phase['client_cpu_s']:.0f} CPU-s, "
            f"other processes {phase['other_cpu_s']:.0f} CPU-s in {phase['phase_s']:.0f} s",
        ),
        (f"{label}: HTTP errors", str(phase["http_errors"]), str(ls_all.get("http_errors", "-")), "must be 0"),
    ]


def _rater_rows(results: dict[str, Any], ls: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for servers, phase in sorted(results.get("raters", {}).items(), key=lambda kv: int(kv[0])):
        rows += _phase_rows(int(servers), phase, ls)
    if rows:
        big = ls.get("queue_100k") or {}
        rows.append(
            (
                "LS on a 100k queue: annotations/s, next p50 / p95 (ms)",
                "-",
                f"{_n(big.get('annotations_per_s'), 1)} ; {_n(big.get('next_p50_ms'))} / {_n(big.get('next_p95_ms'))}",
                "LS gunicorn x4, 20 raters (our phases above run on the 100k queue)",
            )
        )
    return rows


def _swap_rows(results: dict[str, Any], ls: dict[str, Any]) -> list[Row]:
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


def _audit_rows(results: dict[str, Any], ls: dict[str, Any]) -> list[Row]:
    audit = results.get("audit")
    if not audit:
        return []
    verdict = "OK" if audit["ok"] else "FAILED"
    detail = (
        f"{audit['items_over_wanted']} items over overlap, {audit['item_rater_pairs_twice']} pairs twice, "
        f"counter drift {audit['judged_counter_drift']}/{audit['leased_counter_drift']}, "
        f"{audit['surplus_judgments']} surplus of {audit['judgments']:,}"
    )
    return [("audit (SQL, after the rater phases)", verdict, str(ls.get("over_overlap_items", "-")), detail)]


def _probe_rows(results: dict[str, Any], ls: dict[str, Any]) -> list[Row]:
    probe = results.get("queue_probe")
    if not probe:
        return []
    unloaded = ls.get("next_unloaded_ms") or {}
    rows: list[Row] = []
    for name, figures in probe.items():
        if name == "next_p50_ratio":
            continue
        rows.append(
            (
                f"1 rater, {name} open items: next / submit p50 (ms)",
                f"{_n(figures['next_ms']['p50'], 1)} / {_n(figures['submit_ms']['p50'], 1)}",
                unloaded.get("100k", "-") if name.startswith("100") else unloaded.get("10k", "-") + " (10k)",
                f"{figures['cycles']} sequential cycles; next p95 {_n(figures['next_ms']['p95'], 1)} ms",
            )
        )
    rows.append(("next p50, large ÷ small queue", _n(probe.get("next_p50_ratio"), 2), "linear in queue", ""))
    return rows


def _export_rows(results: dict[str, Any], ls: dict[str, Any]) -> list[Row]:
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
            rows += _export_format_rows(fmt, run, ls)
    return rows


def _blockers(snapshot: dict[str, Any]) -> str:
    return "; ".join(snapshot.get("blockers", [])[:2]) or "(gone before they could be named)"


def _export_format_rows(fmt: str, run: dict[str, Any], ls_all: dict[str, Any]) -> list[Row]:
    ls = ls_all.get("export_100k_json") or {}
    ls_growth = ls["rss_peak_mb"] - ls["rss_before_mb"] if ls else None
    growth = run["rss_peak_mb"] - run["rss_before_mb"]
    memory: Row = (
        f"export {fmt}: server RSS before → peak (MB)",
        f"{run['rss_before_mb']:.0f} → {run['rss_peak_mb']:.0f}",
        f"{_n(ls.get('rss_before_mb'))} → {_n(ls.get('rss_peak_mb'))}",
        f"+{growth:,.0f} MB (LS +{_n(ls_growth)} MB for 100k tasks)",
    )
    if "aborted" in run:
        return [(f"export {fmt}: rows/s", "ABORTED", _n(ls.get("rows_per_s")) + " tasks/s", run["aborted"]), memory]
    missing = run["expected_rows"] - run["rows"]
    speed: Row = (
        f"export {fmt}: rows/s",
        _n(run["rows_per_s"]),
        _n(ls.get("rows_per_s")) + " tasks/s",
        f"{run['rows']:,} rows, {run['mb']:,.0f} MB ({run.get('wire_mb', run['mb']):,.0f} MB on the wire)"
        f" in {run['seconds']:.1f} s; first byte {run['ttfb_s']:.1f} s"
        + (f"; {missing:,} ROWS MISSING" if missing else ""),
    )
    return [speed, memory]


def build_rows(results: dict[str, Any], ls: dict[str, Any]) -> list[Row]:
    return (
        _baseline_rows(results, ls)
        + _import_rows(results, ls)
        + _probe_rows(results, ls)
        + _rater_rows(results, ls)
        + _swap_rows(results, ls)
        + _audit_rows(results, ls)
        + _export_rows(results, ls)
    )


def label_studio_figures(results: dict[str, Any]) -> dict[str, Any]:
    """This run's Label Studio figures, or the labelled figures of the peer's run on another day."""
    return label_studio.shown(results.get("label_studio", {}).get("figures"))


def print_table(results: dict[str, Any], console: Console) -> None:
    meta = results["meta"]
    ls = label_studio_figures(results)
    title = f"Assay bench ({meta['mode']}), {meta['database']['source']}, PostgreSQL {meta['database']['version']}"
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("Assay (this run)", justify="right")
    header = "Label Studio (this run)*" if ls.get("same_run") else "Label Studio (ANOTHER run)*"
    table.add_column(header, justify="right")
    table.add_column("notes")
    for row in build_rows(results, ls):
        table.add_row(*row)
    console.print(table)
    skipped = results.get("label_studio", {}).get("skipped")
    console.print(
        f"* Label Studio: {ls['source']}."
        + (f" Label Studio was not run: {skipped}." if skipped else "")
        + f" Wall time {meta['wall_s']:.0f} s; skipped: {', '.join(meta['skipped']) or 'nothing'}."
    )


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = label_studio_figures(results)
    path.write_text(json.dumps(results | {"label_studio_shown": shown}, indent=2, default=str) + "\n")

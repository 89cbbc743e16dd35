"""Label Studio in the same `make bench` run: the peer's script, run after our phases, and its figures.

`../shared/peers/label_studio/run.sh` installs Label Studio from PyPI into /tmp/ls-venv, starts
its own PostgreSQL cluster (port 55432) and Label Studio on 127.0.0.1, runs pgbench and the same
kind of workload as ours (a 10k-task import, 20 closed-loop raters, a 100k-task queue, JSON
exports), and stops everything it started. It takes about 10 minutes and is never part of
`make test` or `.ci/run`. Skipped with a printed reason when BENCH_LABEL_STUDIO=0, with
`--no-label-studio`, or when the script is not there; the table then shows the figures of the
peer's own run on another day (REFERENCE), labelled as such.
"""

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.servers import ROOT

SCRIPT = ROOT.parent / "shared" / "peers" / "label_studio" / "run.sh"
# SQLite is LS's zero-config default, not a production setup, and we have no such column.
ARGS = ("--no-sqlite",)
TIMEOUT_S = 1500.0

# The peer's run 3 of 2026-11-22 on this kind of machine (FINDINGS.md "Results"): shown only when
# Label Studio does not run in this run, and labelled as figures of another run on another day.
REFERENCE: dict[str, Any] = {
    "source": (
        "NOT this run: the peer's run 3 on 2026-11-22 (Label Studio 1.23.2, PostgreSQL 15.18, 2 cores), "
        "/work/shared/peers/label_studio/FINDINGS.md; workload: 20 closed-loop raters on a 10k-task queue at "
        "overlap 1 (60 s), a 100k-task import, 20 raters for 20 s on it and a full JSON export. Compare "
        "only the per-1,000-pgbench-TPS ratios, each against its own run's pgbench"
    ),
    "same_run": False,
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


def skip_reason(requested: bool) -> str | None:
    """Why Label Studio does not run in this bench, or None when it does."""
    if not requested:
        return "--no-label-studio"
    if os.environ.get("BENCH_LABEL_STUDIO", "1") == "0":
        return "BENCH_LABEL_STUDIO=0"
    if not SCRIPT.exists():
        return f"the peer's script is not at {SCRIPT} (it lives in ../shared/peers)"
    return None


def run(workdir: Path, log_path: Path) -> dict[str, Any]:
    """Run the peer's script; its raw results JSON, or {"error": ...} with the log's tail."""
    out = workdir / "label_studio.json"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("wb") as log:
        try:
            done = subprocess.run(
                ["bash", str(SCRIPT), *ARGS, "--results-json", str(out)],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:  # run.sh turns SIGTERM into its own clean stop
            return {"error": f"no result after {TIMEOUT_S:.0f} s; log in {log_path}"}
    if done.returncode != 0 or not out.exists():
        tail = log_path.read_text(errors="replace").splitlines()[-5:]
        return {"error": f"run.sh exited {done.returncode}: {' | '.join(tail)}"}
    raw: dict[str, Any] = json.loads(out.read_text())
    raw["wall_s"] = time.monotonic() - started
    return raw


def _trio(latency: dict[str, Any] | None) -> tuple[float, float, float] | None:
    return None if not latency else (latency["p50"], latency["p95"], latency["p99"])


def _phase(raw: dict[str, Any], server: str, overlap: int = 1) -> dict[str, Any] | None:
    for mode in raw.get("modes", []):
        if mode["server"] == server:
            for run_ in mode["runs"]:
                if run_["overlap"] == overlap:
                    return dict(run_)
    return None


def figures(raw: dict[str, Any]) -> dict[str, Any]:
    """The measured run in the shape of REFERENCE, so the table reads either the same way."""
    tps = raw["pgbench"]["simple_update"]["tps"]
    versions = raw["versions"]
    out: dict[str, Any] = {
        "source": (
            f"measured in this run: Label Studio {versions['label_studio']} on its own PostgreSQL "
            f"{versions['postgres']} cluster, run by ../{SCRIPT.relative_to(ROOT.parent)} {' '.join(ARGS)} after our "
            f"phases ({raw['wall_s']:.0f} s); its pgbench -N {tps:,.0f} TPS, ours above"
        ),
        "same_run": True,
        "pgbench_n_tps": tps,
        "next_unloaded_ms": {"10k": "-", "100k": "-"},
        "http_errors": 0,
        "over_overlap_items": 0,
    }
    for key, server in (("runserver", "runserver"), ("gunicorn_x4", "gunicorn")):
        phase = _phase(raw, server)
        if phase is None:
            continue
        raters = phase["raters"]
        out[key] = {
            "annotations_per_s": raters["annotations_per_s"],
            "next_ms": _trio(raters["latency_ms"].get("next")),
            "submit_ms": _trio(raters["latency_ms"].get("annotate")),
        }
        out["http_errors"] += raters["error_count"]
        out["over_overlap_items"] += raters["db"]["tasks_over_overlap"]
        if server == "gunicorn":
            out["annotations_per_1k_tps"] = raters["annotations_per_s"] / (tps / 1000)
            cpu = raters["cpu_ms_per_annotation"]
            out["cpu_ms_per_annotation"] = {"app": cpu["ls_server"], "postgres": cpu["postgres"]}
    large = raw.get("large")
    if large:
        imp = large["import"]
        out["import_100k"] = {
            "seconds": imp["queryable_s"],
            "items_per_s": imp["tasks_per_s"],
            "rss_before_mb": imp["rss_before_mb"],
            "rss_peak_mb": imp["rss_peak_mb"],
        }
        if raters := large.get("raters"):
            latency = raters["latency_ms"].get("next", {})
            out["queue_100k"] = {
                "annotations_per_s": raters["annotations_per_s"],
                "next_p50_ms": latency.get("p50"),
                "next_p95_ms": latency.get("p95"),
            }
        if export := large.get("export_all"):
            out["export_100k_json"] = {
                "seconds": export["seconds"],
                "mb": export["mb"],
                "rows_per_s": export.get("records", 0) / export["seconds"],
                "rss_before_mb": export["rss_before_mb"],
                "rss_peak_mb": export["rss_peak_mb"],
            }
    return out


def shown(measured: dict[str, Any] | None) -> dict[str, Any]:
    """What the table shows: this run's figures (a part it did not measure is absent, shown as "-"),
    or, when Label Studio did not run, REFERENCE, labelled as another run."""
    return measured if measured else REFERENCE

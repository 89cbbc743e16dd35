"""Before/after table of `make bench` runs: every figure against the same run's pgbench, then head ÷ base.

    python -m bench.compare --base base-1.json base-2.json --head head-1.json head-2.json

A shared machine moves absolute figures by 20-40% between runs, so each figure is first taken
relative to the pgbench -N TPS measured at the start of its own run (throughput per 1,000 TPS;
a latency times TPS / 1,000, i.e. "at 1,000 TPS"; CPU ms per annotation and RSS as measured).
The table gives, per figure, the median of those per-run values on each side, their spread (min-max), and head ÷ base of
the medians, written so that above 1 is better; "slower" marks a figure whose head is more than
10% worse than its base. bench/before_after.sh produces the input files.
"""

import argparse
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THRESHOLD = 0.10  # a figure more than 10% worse than the base counts as slower


@dataclass(frozen=True)
class Figure:
    name: str
    get: Callable[[dict[str, Any]], float | None]
    higher_is_better: bool


def _dig(*path: str) -> Callable[[dict[str, Any]], float | None]:
    def get(results: dict[str, Any]) -> float | None:
        value: Any = results
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return float(value) if isinstance(value, int | float) else None

    return get


def _rss_growth(fmt: str) -> Callable[[dict[str, Any]], float | None]:
    def get(results: dict[str, Any]) -> float | None:
        run = results.get("export", {}).get(fmt)
        return None if not run or "aborted" in run else float(run["rss_peak_mb"] - run["rss_before_mb"])

    return get


def _probe(size: str, kind: str) -> Callable[[dict[str, Any]], float | None]:
    def get(results: dict[str, Any]) -> float | None:
        probe = results.get("queue_probe", {})
        name = next((k for k in probe if k.startswith(size)), None)
        return None if name is None else float(probe[name][kind]["p50"])

    return get


FIGURES: list[Figure] = [
    Figure("import, items/s", _dig("import", "items_per_s"), True),
    # The next two are new work: a commit without the data browser's word search (b1f0ebf) has neither.
    Figure("import until a word search lists its last item, items/s", _dig("import", "searchable_items_per_s"), True),
    Figure("import until its search vectors are written, items/s", _dig("import", "indexed_items_per_s"), True),
    Figure("1 rater, 1k queue: next p50 (ms)", _probe("1k", "next_ms"), False),
    Figure("1 rater, 1k queue: submit p50 (ms)", _probe("1k", "submit_ms"), False),
    Figure("1 rater, 100k queue: next p50 (ms)", _probe("100k", "next_ms"), False),
    Figure("1 rater, 100k queue: submit p50 (ms)", _probe("100k", "submit_ms"), False),
]
for _servers in ("1", "4"):
    _label = f"API raters, {_servers} process{'es' if _servers == '4' else ''}"
    FIGURES += [
        Figure(f"{_label}: annotations/s", _dig("raters", _servers, "annotations_per_s"), True),
        Figure(f"{_label}: next p50 (ms)", _dig("raters", _servers, "next_ms", "p50"), False),
        Figure(f"{_label}: next p95 (ms)", _dig("raters", _servers, "next_ms", "p95"), False),
        Figure(f"{_label}: submit p50 (ms)", _dig("raters", _servers, "submit_ms", "p50"), False),
        Figure(f"{_label}: submit p95 (ms)", _dig("raters", _servers, "submit_ms", "p95"), False),
        Figure(
            f"{_label}: app CPU ms per annotation",
            _dig("raters", _servers, "server_cpu_ms_per_annotation"),
            False,
        ),
        Figure(
            f"{_label}: PostgreSQL CPU ms per annotation",
            _dig("raters", _servers, "postgres_cpu_ms_per_annotation"),
            False,
        ),
        Figure(
            f"{_label}: PostgreSQL backends' CPU ms per annotation",
            _dig("raters", _servers, "postgres_backend_cpu_ms_per_annotation"),
            False,
        ),
    ]
for _servers in ("1", "4"):
    _label = f"rater page, {_servers} process{'es' if _servers == '4' else ''}"
    FIGURES += [
        Figure(f"{_label}: swap server p50 (ms)", _dig("swap", _servers, "server_ms", "p50"), False),
        Figure(f"{_label}: swap server p95 (ms)", _dig("swap", _servers, "server_ms", "p95"), False),
        Figure(f"{_label}: swap at the client p95 (ms)", _dig("swap", _servers, "client_ms", "p95"), False),
        Figure(f"{_label}: app CPU ms per swap", _dig("swap", _servers, "server_cpu_ms_per_swap"), False),
        Figure(f"{_label}: PostgreSQL CPU ms per swap", _dig("swap", _servers, "postgres_cpu_ms_per_swap"), False),
        Figure(
            f"{_label}: PostgreSQL backends' CPU ms per swap",
            _dig("swap", _servers, "postgres_backend_cpu_ms_per_swap"),
            False,
        ),
        # pg_stat_statements, when the server preloads it: over the whole phase, per judgment stored.
        Figure(
            f"{_label}: statements' execution ms per judgment", _dig("swap", _servers, "statements", "exec_ms"), False
        ),
        Figure(
            f"{_label}: statements' planning ms per judgment", _dig("swap", _servers, "statements", "plan_ms"), False
        ),
    ]
for _fmt in ("raw", "trl", "trl parquet"):
    FIGURES += [
        Figure(f"export {_fmt}: rows/s", _dig("export", _fmt, "rows_per_s"), True),
        Figure(f"export {_fmt}: server RSS growth (MB)", _rss_growth(_fmt), False),
    ]
# Memory and CPU time per annotation do not scale with how busy the machine is (a busy machine
# gives a process fewer CPU-seconds, not more per request): compared as measured.
UNSCALED = ("RSS", "CPU ms")


def normalised(figure: Figure, results: dict[str, Any]) -> float | None:
    """The figure against its own run's pgbench: per 1,000 TPS (throughput) or at 1,000 TPS (costs)."""
    value = figure.get(results)
    tps = _dig("pgbench", "tps")(results)
    if value is None or not tps:
        return None
    if any(word in figure.name for word in UNSCALED):
        return value
    return value / (tps / 1000) if figure.higher_is_better else value * (tps / 1000)


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    digits = 2 if median < 100 else 0
    low, high = min(values), max(values)
    if len(values) == 1:
        return f"{median:,.{digits}f}"
    return f"{median:,.{digits}f} ({low:,.{digits}f}-{high:,.{digits}f})"


def _ratio(figure: Figure, base: list[float], head: list[float]) -> float | None:
    """head ÷ base of the medians, oriented so that above 1 is better."""
    if not base or not head:
        return None
    b, h = statistics.median(base), statistics.median(head)
    if b == 0 or h == 0:
        return None
    return h / b if figure.higher_is_better else b / h


def table(bases: list[dict[str, Any]], heads: list[dict[str, Any]]) -> str:
    def runs(results: list[dict[str, Any]], figure: Figure, norm: bool) -> list[float]:
        values = [normalised(figure, r) if norm else figure.get(r) for r in results]
        return [v for v in values if v is not None]

    tps_base = [r["pgbench"]["tps"] for r in bases if r.get("pgbench")]
    tps_head = [r["pgbench"]["tps"] for r in heads if r.get("pgbench")]
    lines = [
        f"pgbench -N TPS at the start of each run: base {_spread(tps_base)}, head {_spread(tps_head)} "
        f"({len(bases)} base and {len(heads)} head runs; median (min-max)).",
        "",
        "| figure | base, vs pgbench | head, vs pgbench | head ÷ base (vs pgbench) | head ÷ base (as measured) | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    worse: list[str] = []
    for figure in FIGURES:
        nb, nh = runs(bases, figure, True), runs(heads, figure, True)
        rb, rh = runs(bases, figure, False), runs(heads, figure, False)
        if not nb and not nh:
            continue
        ratio, raw = _ratio(figure, nb, nh), _ratio(figure, rb, rh)
        flag = ""
        if ratio is not None and ratio < 1 - THRESHOLD:
            flag = "**slower**" if raw is not None and raw < 1 - THRESHOLD else "slower vs pgbench only"
            worse.append(figure.name)
        lines.append(
            f"| {figure.name} | {_spread(nb)} | {_spread(nh)} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} | {'-' if raw is None else f'{raw:.2f}'} | {flag} |"
        )
    errors = {
        side: [sum(int(p.get("http_errors", 0)) for p in r.get("raters", {}).values()) for r in runs_]
        for side, runs_ in (("base", bases), ("head", heads))
    }
    skipped = {side: [r["meta"]["skipped"] for r in runs_] for side, runs_ in (("base", bases), ("head", heads))}
    out_of_work = {
        side: [
            {f"{phase} {n}": p["raters_out_of_work"] for phase in ("raters", "swap")
             for n, p in r.get(phase, {}).items() if p.get("raters_out_of_work")}
            for r in runs_
        ]
        for side, runs_ in (("base", bases), ("head", heads))
    }  # fmt: skip
    lines += [
        "",
        f"HTTP errors in the API rater phases, per run: base {errors['base']}, head {errors['head']}. "
        f"Skipped parts, per run: base {skipped['base']}, head {skipped['head']}.",
        "",
        "Phases whose queue ran out before their end (raters out of work; those figures are not comparable), "
        f"per run: base {out_of_work['base']}, head {out_of_work['head']}.",
        "",
        "Throughputs are per 1,000 pgbench TPS of the same run; latencies are multiplied by "
        "TPS / 1,000; CPU ms per annotation and RSS are as measured. "
        "Ratios above 1 mean head is better (faster, cheaper, smaller).",
        f"More than {THRESHOLD:.0%} worse: {', '.join(worse) if worse else 'none'}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--base", nargs="+", type=Path, required=True, help="results JSON of the base commit")
    parser.add_argument("--head", nargs="+", type=Path, required=True, help="results JSON of the new commit")
    args = parser.parse_args(argv)
    bases = [json.loads(p.read_text()) for p in args.base]
    heads = [json.loads(p.read_text()) for p in args.head]
    print(table(bases, heads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Proof of the assistance experiment statistics by simulation (issue 11, "Proof").

    .venv/bin/python -m bench.assistance [--seeds 20] [--null-seeds 200] [--raters 20] [--per-rater 30]
    .venv/bin/python -m bench.assistance --stretch-check [--null-seeds 200]
    .venv/bin/python -m bench.assistance --timing 20000

Simulated raters judge items that each carry one planted flaw. A rater catches it with probability
0.4 unaided and 0.6 when shown a critique that points at it, shifted per rater by a skill drawn
uniformly from ±0.1 (both arms) and a benefit from the critique drawn uniformly from ±0.1 (assisted
arm only), so raters differ in level and in how much the critiques help them: their judgments are
not independent, and the effect varies by rater around its mean. Each rater's assignments are
assisted in exactly `ratio` (0.5) of cases, in random order: the stratified randomisation the
server does per assignment.

Runs, each through `server.quality.experiment.compare` directly (no HTTP, no database):
- detection: the planted effect (0.4 → 0.6), `--seeds` seeds; the share whose interval excludes 0;
- null, sharp: 0.4 in both arms and no benefit for anyone, `--null-seeds` seeds;
- null, on average: 0.4 in both arms, benefit ±0.1 per rater (mean 0), `--null-seeds` seeds;
  and again with benefit ±0.3;
- the ±0.3 null with the interval computed as if every judgment were its own rater (a bootstrap
  of judgments): what the report would say if it ignored the clustering.
A false positive is an interval that excludes 0; the permutation p < 0.05 is counted beside it.
Shares carry 95% Wilson intervals.

`--stretch-check` instead runs null experiments at 8, 12 and 20 raters with and without the
interval's small-sample stretch (server/quality/resampling.py:interval), `--null-seeds` each.
"""

import argparse
import time
from dataclasses import dataclass, replace

import numpy as np
from rich.console import Console
from rich.table import Table

from server.quality import experiment
from server.quality.experiment import Judgment
from server.quality.gold import wilson


@dataclass(frozen=True, slots=True)
class Design:
    raters: int = 20
    per_rater: int = 30
    unaided: float = 0.4
    aided: float = 0.6
    skill: float = 0.1  # rater level, ± (both arms)
    benefit: float = 0.1  # rater-specific effect of the critique, ± (assisted arm)
    ratio: float = 0.5


def simulate(seed: int, design: Design) -> list[Judgment]:
    """One experiment's judgments: one planted flaw per item, caught or not."""
    rng = np.random.default_rng(seed)
    records = []
    assisted_count = round(design.ratio * design.per_rater)
    for rater in range(design.raters):
        skill = rng.uniform(-design.skill, design.skill)
        benefit = rng.uniform(-design.benefit, design.benefit)
        arms = np.zeros(design.per_rater, dtype=bool)
        arms[rng.choice(design.per_rater, assisted_count, replace=False)] = True
        for assisted in arms:
            p = (design.aided + benefit if assisted else design.unaided) + skill
            caught = int(rng.random() < min(1.0, max(0.0, p)))
            records.append(Judgment(f"r{rater}", bool(assisted), planted=1, caught=caught))
    return records


def as_independent(records: list[Judgment]) -> list[Judgment]:
    """The same judgments with each one its own rater: the cluster bootstrap becomes a judgment bootstrap."""
    return [replace(r, rater=f"{r.rater}/{i}") for i, r in enumerate(records)]


@dataclass(frozen=True, slots=True)
class Outcome:
    runs: int
    excludes_zero: int  # intervals that exclude 0
    p_below: int  # permutation p < 0.05
    significant: int  # both: what the report calls significant
    mean_estimate: float
    mean_needed: float | None


def run(
    seeds: range,
    design: Design,
    *,
    independent: bool = False,
    bootstrap: int = experiment.BOOTSTRAP,
    permutations: int = experiment.PERMUTATIONS,
    stretch: bool = True,
) -> Outcome:
    """Simulate each seed and count how often the report calls the catch-rate difference significant."""
    excludes = below = called = 0
    estimates: list[float] = []
    needed: list[float] = []
    for seed in seeds:
        records = simulate(seed, design)
        records = as_independent(records) if independent else records
        report = experiment.compare(
            records,
            metrics=("catch_rate",),
            bootstrap=bootstrap,
            permutations=0 if independent else permutations,
            stretch=stretch,
        )
        diff = report.differences["catch_rate"]
        excludes += diff.ci is not None and not diff.ci[0] <= 0 <= diff.ci[1]
        called += bool(diff.significant)
        below += diff.p is not None and diff.p < 0.05 and not independent
        estimates.append(diff.estimate if diff.estimate is not None else float("nan"))
        if diff.needed:
            needed.append(diff.needed["judgments_total"])
    mean_needed = float(np.mean(needed)) if needed else None
    return Outcome(len(seeds), excludes, below, called, float(np.mean(estimates)), mean_needed)


def share(k: int, n: int) -> str:
    low, high = wilson(k, n)
    return f"{k}/{n} = {100 * k / n:.1f}% (95% CI {100 * low:.1f}–{100 * high:.1f})"  # noqa: RUF001


def stretch_check(seeds: int) -> None:
    """How often null intervals exclude 0 with and without the small-sample stretch, by rater count."""
    table = Table(title=f"Null experiments, {seeds} seeds each, 500 resamples: interval excludes 0")
    for column in ("raters x judgments", "benefit", "plain percentile", "stretched (the report)"):
        table.add_column(column)
    for raters, per_rater in ((8, 50), (12, 50), (20, 30)):
        for benefit in (0.0, 0.2):
            design = Design(raters=raters, per_rater=per_rater, aided=0.4, benefit=benefit)
            cells = [
                share(run(range(seeds), design, bootstrap=500, permutations=0, stretch=s).excludes_zero, seeds)
                for s in (False, True)
            ]
            table.add_row(f"{raters} x {per_rater}", f"±{benefit}", *cells)
    Console(width=150).print(table)


def timing(judgments: int) -> None:
    """Seconds for the full report (every metric, default resamples) on `judgments` simulated judgments."""
    rng = np.random.default_rng(0)
    design = Design(raters=max(2, judgments // 400), per_rater=400)
    records = [
        replace(r, gold=float(rng.random() < 0.7), agreement=float(rng.random() < 0.8), seconds=rng.lognormal(3, 0.5))
        for r in simulate(0, design)
    ]
    started = time.perf_counter()
    experiment.compare(records)
    print(f"{len(records)} judgments by {design.raters} raters: {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--null-seeds", type=int, default=200)
    parser.add_argument("--raters", type=int, default=Design().raters)
    parser.add_argument("--per-rater", type=int, default=Design().per_rater)
    parser.add_argument("--stretch-check", action="store_true", help="only the small-sample table")
    parser.add_argument("--timing", type=int, metavar="N", help="only time the full report on N judgments")
    args = parser.parse_args()
    if args.timing:
        timing(args.timing)
        return
    if args.stretch_check:
        stretch_check(args.null_seeds)
        return
    design = Design(raters=args.raters, per_rater=args.per_rater)
    null = replace(design, aided=design.unaided)
    wide = replace(null, benefit=0.3)
    runs = [
        ("effect 0.4 → 0.6", design, False, range(args.seeds)),
        ("null, sharp (no benefit)", replace(null, benefit=0.0), False, range(1000, 1000 + args.null_seeds)),
        ("null on average (benefit ±0.1)", null, False, range(1000, 1000 + args.null_seeds)),
        ("null on average (benefit ±0.3)", wide, False, range(1000, 1000 + args.null_seeds)),
        ("same, judgments resampled", wide, True, range(1000, 1000 + args.null_seeds)),
    ]
    table = Table(title=f"Assistance experiment: {design.raters} raters, {design.per_rater} judgments each")
    columns = ("scenario", "interval excludes 0", "permutation p < 0.05", "both (significant)", "mean difference",
               "needed (10 points)", "s")  # fmt: skip
    for column in columns:
        table.add_column(column)
    for name, d, independent, seeds in runs:
        started = time.perf_counter()
        out = run(seeds, d, independent=independent)
        p_col = "—" if independent else share(out.p_below, out.runs)
        table.add_row(
            name,
            share(out.excludes_zero, out.runs),
            p_col,
            share(out.significant, out.runs),
            f"{100 * out.mean_estimate:+.1f} points",
            "—" if out.mean_needed is None else f"{out.mean_needed:.0f}",
            f"{time.perf_counter() - started:.1f}",
        )
    Console(width=150).print(table)


if __name__ == "__main__":
    main()

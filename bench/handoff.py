"""The hand-off by simulation (issue 12, "Proof"): model judges take the sure items, humans the rest.

    .venv/bin/python -m bench.handoff [--items 60000] [--reps 30] [--every 5000] [--seed 1]

A model judge states a confidence c uniform on [0.5, 1] and is right with probability c. Humans are
each right with probability 0.8, three per item (overlap 3), labelled by their majority: right with
probability 0.8^3 + 3 * 0.8^2 * 0.2 = 0.896. Every routing decision is the server's own pure
function (`server.handoff.rules.route`, one model verdict per item, `min_judges` 1); spot checks
are drawn as the server draws them (`spot_check_rate` 0.1).

1. The curve: for each threshold, `--items` items routed with it; the share of items sent to humans
   and the accuracy of the final labels (95% Wilson intervals over items), against all-human labeling.
2. The threshold chosen from spot-check data, as a platform would, `--reps` times: the first
   `--every` items run at the default threshold 0.8, and before each next block of `--every` items
   the threshold is chosen again from every item checked so far (all those handed to humans, and
   the spot checks). Several strategies on the same draws:
   - `platform, ...`: the platform's own suggestion, `server.handoff.threshold` (its docstring has
     the method): the checked items as server/handoff/service.py hands them over (agreement with
     the humans' label by `server.handoff.report.agreement`, human pairs by
     `threshold.human_pairs`), the curve of human share and estimated cost by threshold, and
     `threshold.suggest` for the issue's goals: 40% of items kept from humans within 1 point. The
     estimator is `logistic` (a calibration curve fitted to every checked verdict) or `binned` (the
     checked verdicts above t), and "within budget" is the estimate, or the top of its 95% interval
     (`upper bound`). When nothing is suggested the block keeps its threshold.
   - `old rule, ...`: the bench-only rule this bench used before (`choose_threshold`): the lowest
     threshold whose estimated cost is at most half a point, the models' accuracy above t either
     `binned` or from a straight line in c.
3. Where the budget binds: the same with an overconfident model, right with probability c - 0.05;
   then no threshold keeps 40% from humans within 1 point (the threshold costing exactly 1 point is
   about 0.828), and what matters is whether the suggestion keeps the accuracy within the budget.
   Reported over all items and over those after the first block: the human share, the accuracy's
   gap to all-human labeling on the same items, and how many replications meet the claim "within
   1 point of all-human accuracy with at least 40% fewer items to humans" (95% Wilson intervals
   over replications).
"""

import argparse
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from server.handoff import threshold
from server.handoff.report import agreement
from server.handoff.rules import ModelVerdict, Rule, route
from server.handoff.threshold import human_pairs
from server.quality.gold import wilson

HUMAN_ACCURACY = 0.8
OVERLAP = 3
SPOT_CHECK_RATE = 0.1
DEFAULT_THRESHOLD = 0.8
TARGET_LOSS = 0.005  # the chosen threshold's estimated cost in accuracy (half of the 1-point claim)
GRID = np.round(np.arange(0.5, 1.0001, 0.005), 3)
RIGHT, WRONG = ("right",), ("wrong",)


@dataclass(frozen=True, slots=True)
class Items:
    confidence: NDArray[np.float64]
    model_right: NDArray[np.bool_]
    humans_right: NDArray[np.int64]  # how many of the three humans are right (0..3)
    draws: NDArray[np.float64]  # the spot-check draw of each item

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, skew: float = 0.0) -> "Items":
        """`skew`: the model is right with probability c - skew (overconfident when positive)."""
        confidence = rng.uniform(0.5, 1.0, n)
        return cls(
            confidence=confidence,
            model_right=rng.random(n) < confidence - skew,
            humans_right=rng.binomial(OVERLAP, HUMAN_ACCURACY, n),
            draws=rng.random(n),
        )

    def part(self, start: int, stop: int) -> "Items":
        return Items(
            self.confidence[start:stop],
            self.model_right[start:stop],
            self.humans_right[start:stop],
            self.draws[start:stop],
        )


@dataclass(frozen=True, slots=True)
class Routed:
    to_humans: NDArray[np.bool_]
    spot_check: NDArray[np.bool_]
    label_right: NDArray[np.bool_]


def routed(items: Items, threshold: float) -> Routed:
    """Route every item with the server's rule; the final label is the models' or the humans' majority."""
    rule = Rule(min_confidence=threshold, min_judges=1, spot_check_rate=SPOT_CHECK_RATE)
    decisions = [
        route([ModelVerdict(key=RIGHT if right else WRONG, confidence=float(c))], rule, draw=float(d))
        for c, right, d in zip(items.confidence, items.model_right, items.draws, strict=True)
    ]
    to_humans = np.array([d.to_humans for d in decisions])
    spot = np.array([d.spot_check for d in decisions])
    humans_label_right = items.humans_right >= 2
    return Routed(to_humans, spot, np.where(to_humans, humans_label_right, items.model_right))


def human_keys(right: int) -> list[tuple[str]]:
    return [RIGHT] * right + [WRONG] * (OVERLAP - right)


def choose_threshold(items: Items, checked: Routed, estimator: str) -> tuple[float, float]:
    """The lowest threshold whose estimated cost in accuracy is at most TARGET_LOSS, from the checked items.

    `binned`: the models' accuracy above each candidate threshold from the checked verdicts above it
    (no assumption on its shape); `linear`: a straight line a(c) = alpha + beta c fitted to every
    checked verdict (weighted least squares), then averaged over the confidences above the threshold.
    Returns (threshold, estimated human label accuracy)."""
    seen = checked.to_humans
    # The humans' individual accuracy from their pairwise agreement on the checked items.
    r = items.humans_right[seen]
    pairs_agreeing = (r * (r - 1) + (OVERLAP - r) * (OVERLAP - r - 1)) / 2
    p = float(pairs_agreeing.sum() / (len(r) * OVERLAP * (OVERLAP - 1) / 2))
    q = (1 + math.sqrt(max(2 * p - 1, 0.0))) / 2
    h = q**3 + 3 * q**2 * (1 - q)
    c = items.confidence[seen]
    agree = np.array(
        [
            agreement(RIGHT if m else WRONG, human_keys(int(k)))
            for m, k in zip(items.model_right[seen], items.humans_right[seen], strict=True)
        ],
        dtype=float,
    )
    weight = np.where(checked.spot_check[seen], 1 / SPOT_CHECK_RATE, 1.0)
    if estimator == "linear":
        return _linear_threshold(items, c, (agree - (1 - h)) / (2 * h - 1), weight, h), h
    for t in GRID:
        above = c >= t
        if weight[above].sum() < 50:  # too few checked verdicts to say anything: stop at the safe side
            return 1.0, h
        agreed = float((agree[above] * weight[above]).sum() / weight[above].sum())
        model_accuracy = (agreed - (1 - h)) / (2 * h - 1)
        share = float((items.confidence >= t).mean()) * (1 - SPOT_CHECK_RATE)
        if share * (h - model_accuracy) <= TARGET_LOSS:
            return float(t), h
    return 1.0, h


def _linear_threshold(
    items: Items, c: NDArray[np.float64], accuracy: NDArray[np.float64], weight: NDArray[np.float64], h: float
) -> float:
    """`choose_threshold` with a(c) = alpha + beta c: each checked verdict's de-noised agreement is an
    unbiased reading of a(c) at its confidence, so a weighted straight-line fit pools all of them."""
    design = np.c_[np.ones_like(c), c] * np.sqrt(weight)[:, None]
    alpha, beta = np.linalg.lstsq(design, accuracy * np.sqrt(weight), rcond=None)[0]
    every = items.confidence
    for t in GRID:
        above = every >= t
        loss = float(((h - alpha - beta * every) * above).mean()) * (1 - SPOT_CHECK_RATE)
        if loss <= TARGET_LOSS:
            return float(t)
    return 1.0


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ci(successes: float, n: int) -> str:
    low, high = wilson(successes, n)
    return f"{100 * low:.1f}-{100 * high:.1f}"


def curve(rng: np.random.Generator, n: int, console: Console) -> None:
    items = Items.draw(rng, n)
    baseline = int((items.humans_right >= 2).sum())
    table = Table(
        title=f"Threshold vs human share vs label accuracy ({n:,} items each; all-human: "
        f"{_pct(baseline / n)}, {_ci(baseline, n)})"
    )
    for column in ("threshold", "to humans", "fewer items to humans", "label accuracy (95%)", "gap to all-human"):
        table.add_column(column, justify="right")
    for t in (0.5, 0.6, 0.7, 0.72, 0.74, 0.75, 0.76, 0.77, 0.78, 0.8, 0.85, 0.9, 0.95, 1.0):
        r = routed(items, t)
        right = int(r.label_right.sum())
        share = float(r.to_humans.mean())
        table.add_row(
            f"{t:.2f}",
            _pct(share),
            _pct(1 - share),
            f"{_pct(right / n)} ({_ci(right, n)})",
            f"{100 * (right - baseline) / n:+.2f} pt",
        )
    console.print(table)


# The strategies compared in part 2: the old bench-only rule (the lowest threshold whose estimated
# cost is at most half a point), and the platform's suggestion (server.handoff.threshold) with each
# of its estimators, for the goals: 40% of items kept from humans within 1 point.
STRATEGIES: dict[str, tuple[str, str, threshold.Bound]] = {
    "old rule, binned": ("old", "binned", "estimate"),
    "old rule, linear": ("old", "linear", "estimate"),
    "platform (logistic)": ("platform", "logistic", "estimate"),
    "platform, upper bound": ("platform", "logistic", "upper"),
    "platform, logit-only fit": ("platform", "logit-only", "estimate"),
    "platform, binned": ("platform", "binned", "estimate"),
}
OVERCONFIDENT_STRATEGIES = (
    "old rule, binned",
    "platform (logistic)",
    "platform, upper bound",
    "platform, logit-only fit",
)
SAVINGS_GOAL, BUDGET = 0.4, 0.01
OVERCONFIDENT = 0.05  # part 3: the model is right with probability c - 0.05


def evidence(items: Items, checked: Routed) -> threshold.Evidence:
    """What the platform reads from the checked items, as server/handoff/service.py assembles it: each
    checked verdict's confidence, its agreement with the humans' label (report.agreement) and whether it
    was a spot check; the humans' pairwise agreement (threshold.human_pairs); every routed confidence."""
    seen = checked.to_humans
    right = items.humans_right[seen]
    verdict_agrees = np.array([[agreement(m, human_keys(r)) for r in range(OVERLAP + 1)] for m in (WRONG, RIGHT)])
    pairs = np.array([human_pairs(human_keys(r)) for r in range(OVERLAP + 1)], dtype=float)
    return threshold.Evidence(
        confidence=items.confidence[seen],
        agreement=verdict_agrees[items.model_right[seen].astype(int), right],
        spot_check=checked.spot_check[seen],
        humans=np.full(len(right), OVERLAP),
        pairs_agreeing=pairs[right, 0],
        pairs=pairs[right, 1],
        routed=items.confidence,
        spot_check_rate=SPOT_CHECK_RATE,
    )


def next_threshold(
    items: Items, checked: Routed, strategy: str, current: float, margin: float = threshold.MARGIN
) -> tuple[float, float]:
    """The next block's threshold by `strategy`; (threshold, the humans' estimated label accuracy)."""
    rule, method, bound = STRATEGIES[strategy]
    if rule == "old":
        return choose_threshold(items, checked, method)
    estimated = threshold.curve(evidence(items, checked), method=cast(threshold.Method, method))
    chosen = threshold.suggest(
        estimated.points, savings=SAVINGS_GOAL, budget=BUDGET, problem=estimated.problem, bound=bound, margin=margin
    )
    h = estimated.humans_accuracy if estimated.humans_accuracy is not None else float("nan")
    return (current if chosen.threshold is None else chosen.threshold), h


@dataclass
class Rep:
    thresholds: list[float]  # the threshold of each block
    h_hat: float
    share_all: float
    share_after: float  # after the first block (the default threshold)
    gap_all: float  # label accuracy minus all-human accuracy, same items
    gap_after: float


def _concat(parts: list[Items]) -> Items:
    return Items(*(np.concatenate([getattr(p, f) for p in parts]) for f in Items.__slots__))


def _concat_routed(parts: list[Routed]) -> Routed:
    return Routed(*(np.concatenate([getattr(p, f) for p in parts]) for f in Routed.__slots__))


def replicate(items: Items, every: int, strategy: str, margin: float = threshold.MARGIN) -> Rep:
    """Route block by block: the first at the default threshold, each next one at the threshold chosen
    from every item checked so far (spot checks and the items handed to humans)."""
    n = len(items.confidence)
    blocks = [items.part(i, min(i + every, n)) for i in range(0, n, every)]
    done: list[Routed] = []
    thresholds = [DEFAULT_THRESHOLD]
    h_hat = float("nan")
    for k, block in enumerate(blocks):
        if k:
            t, h_hat = next_threshold(_concat(blocks[:k]), _concat_routed(done), strategy, thresholds[-1], margin)
            thresholds.append(t)
        done.append(routed(block, thresholds[-1]))
    every_routed = _concat_routed(done)
    baseline = (items.humans_right >= 2).astype(float)
    right = every_routed.label_right.astype(float)
    first = len(blocks[0].confidence)
    return Rep(
        thresholds=thresholds,
        h_hat=h_hat,
        share_all=float(every_routed.to_humans.mean()),
        share_after=float(every_routed.to_humans[first:].mean()),
        gap_all=float(right.mean() - baseline.mean()),
        gap_after=float(right[first:].mean() - baseline[first:].mean()),
    )


def chosen(
    rng: np.random.Generator,
    n: int,
    every: int,
    reps: int,
    console: Console,
    *,
    strategies: tuple[str, ...] = tuple(STRATEGIES),
    skew: float = 0.0,
    margin: float = threshold.MARGIN,
) -> None:
    draws = [Items.draw(rng, n, skew) for _ in range(reps)]
    with ProcessPoolExecutor() as pool:  # every replication of every strategy on its own: the same draws
        jobs = {s: [pool.submit(replicate, items, every, s, margin) for items in draws] for s in strategies}
        results = {s: [job.result() for job in done] for s, done in jobs.items()}
    if skew:
        console.print(f"[bold]An overconfident model: right with probability c - {skew:g}[/bold]")
    console.print(
        f"{reps} replications of {n:,} items, the same draws for every strategy; the first {every:,} items at "
        f"the default {DEFAULT_THRESHOLD}, then the threshold chosen again before every block of {every:,} from "
        f"the items checked so far. The platform's goal: {_pct(SAVINGS_GOAL)} of items kept from humans within "
        f"{100 * BUDGET:g} point of accuracy, margin {margin:g} (its suggestion; the block keeps its threshold when "
        "there is none)."
    )
    table = Table(title="The threshold chosen (after the first block and for the last block: median, 5-95%)")
    for column in ("strategy", "after the first block", "last block", "humans' label accuracy estimated"):
        table.add_column(column, justify="right")
    for strategy, reps_ in results.items():
        second = np.array([r.thresholds[1] for r in reps_ if len(r.thresholds) > 1])
        last = np.array([r.thresholds[-1] for r in reps_])
        table.add_row(
            strategy,
            f"{np.median(second):.3f} ({np.percentile(second, 5):.3f}-{np.percentile(second, 95):.3f})",
            f"{np.median(last):.3f} ({np.percentile(last, 5):.3f}-{np.percentile(last, 95):.3f})",
            f"{np.nanmean([r.h_hat for r in reps_]):.3f} (true 0.896)",
        )
    console.print(table)
    table = Table(title="Does a project meet the claim? (mean over replications, 5-95% of them; 95% Wilson intervals)")
    for column in (
        "strategy",
        "items",
        "to humans",
        "gap to all-human",
        "within 1 pt",
        "≥ 40% fewer",
        "both (the claim)",
    ):
        table.add_column(column, justify="right")
    for strategy, reps_ in results.items():
        for name, share, gap in (
            ("all", [r.share_all for r in reps_], [r.gap_all for r in reps_]),
            ("after the first block", [r.share_after for r in reps_], [r.gap_after for r in reps_]),
        ):
            s, g = np.array(share), np.array(gap)
            within, fewer = g >= -0.01, s <= 0.6
            both = int((within & fewer).sum())
            table.add_row(
                strategy,
                name,
                f"{_pct(s.mean())} ({_pct(np.percentile(s, 5))}-{_pct(np.percentile(s, 95))})",
                f"{100 * g.mean():+.2f} pt ({100 * np.percentile(g, 5):+.2f} to {100 * np.percentile(g, 95):+.2f})",
                f"{int(within.sum())}/{len(reps_)}",
                f"{int(fewer.sum())}/{len(reps_)}",
                f"{both}/{len(reps_)} = {_pct(both / len(reps_))} ({_ci(both, len(reps_))})",
            )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=60_000, help="items per replication (and on the curve)")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--every", type=int, default=5_000, help="items between two choices of the threshold")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--margin", type=float, default=threshold.MARGIN, help="the suggestion's margin above the savings goal"
    )
    args = parser.parse_args()
    console = Console(width=175)
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    curve(rng, args.items, console)
    chosen(rng, args.items, args.every, args.reps, console, margin=args.margin)
    # 3. Where the budget binds: a model less right than it says cannot keep 40% from humans within 1 point.
    chosen(
        rng,
        args.items,
        args.every,
        args.reps,
        console,
        strategies=OVERCONFIDENT_STRATEGIES,
        skew=OVERCONFIDENT,
        margin=args.margin,
    )
    console.print(f"[dim]{time.perf_counter() - started:.0f} s[/dim]")


if __name__ == "__main__":
    main()

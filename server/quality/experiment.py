"""The assistance experiment report: assisted against unassisted judgments, with intervals (pure).

Input: one `Judgment` per stored judgment, with its rater, its arm (assistance shown or not, as the
server decided at lease time) and whichever outcomes apply. Output (`compare`): per arm the
judgments, raters and five metrics; per metric the difference assisted - unassisted with

- a 95% percentile interval from a **cluster bootstrap over raters**: `BOOTSTRAP` resamples of the
  raters with replacement, each drawn rater bringing all their judgments in both arms, because the
  judgments of one rater are not independent;
- a two-sided **stratified permutation p-value**: the arm labels are permuted within each rater
  (the design randomises per assignment within rater, so each rater keeps their number of assisted
  judgments), `PERMUTATIONS` times, p = (1 + #{|T*| ≥ |T|}) / (1 + PERMUTATIONS); when a rater's
  arrangements number at most `PERMUTATIONS` in all they are enumerated and p is exact;
- the judgments needed to detect `effect` at 80% power, alpha 0.05 (`_needed`).

Metrics, each over the judgments that carry it: gold accuracy (mean gold score), catch rate
(planted flaws caught / planted flaws present, over judgments with planted flaws), agreement with
the aggregated label (mean), median seconds per judgment, flaws marked per item (mean). All
resamples use the fixed `SEED`, so the same data give the same page.

Nothing here raises on thin data: an empty arm, a single rater, no planted flaws or a missing
metric each give a sentence in place of the figure.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from server.quality import resampling
from server.quality.resampling import LEVEL

Metric = Literal["gold_accuracy", "catch_rate", "agreement", "median_seconds", "flaws_per_item"]
METRICS: tuple[Metric, ...] = ("gold_accuracy", "catch_rate", "agreement", "median_seconds", "flaws_per_item")
PROPORTIONS: frozenset[str] = frozenset({"gold_accuracy", "catch_rate", "agreement"})
BOOTSTRAP = 2000  # cluster-bootstrap resamples of the raters
PERMUTATIONS = 2000  # within-rater relabelings for the p-value
SEED = 20261201
ALPHA = 0.05
POWER = 0.80
EFFECT = 0.10  # points for proportions, a share of the unassisted value for seconds and flaws
MIN_VALID = 0.8  # share of resamples with both arms present needed for an interval


@dataclass(frozen=True, slots=True)
class Judgment:
    """One judgment: who, which arm, and the outcomes that apply (None = not measured)."""

    rater: str
    assisted: bool
    gold: float | None = None  # gold score, 0..1
    planted: int | None = None  # planted flaws in what was judged
    caught: int | None = None  # of those, caught
    agreement: float | None = None  # 1 when the verdict matches the aggregated label
    seconds: float | None = None
    flaws: int | None = None  # flaws the rater marked


@dataclass(slots=True)
class Difference:
    metric: str
    estimate: float | None = None
    ci: tuple[float, float] | None = None
    p: float | None = None
    significant: bool | None = None
    judgments: int = 0
    raters: int = 0
    design_effect: float | None = None
    needed: dict[str, Any] | None = None
    note: str | None = None  # why there is no interval, when there is none
    sentence: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "estimate": self.estimate,
            "ci": list(self.ci) if self.ci else None,
            "p": self.p,
            "significant": self.significant,
            "judgments": self.judgments,
            "raters": self.raters,
            "design_effect": self.design_effect,
            "needed": self.needed,
            "note": self.note,
            "sentence": self.sentence,
        }


@dataclass(slots=True)
class Report:
    arms: dict[str, dict[str, Any]]
    differences: dict[str, Difference]
    statement: str | None = None  # why there is no comparison at all, when there is none
    settings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "arms": self.arms,
            "differences": {m: d.as_dict() for m, d in self.differences.items()},
            "statement": self.statement,
            **self.settings,
        }


VALUES: dict[str, Callable[[Judgment], float | None]] = {
    "gold_accuracy": lambda r: r.gold,
    "agreement": lambda r: r.agreement,
    "median_seconds": lambda r: r.seconds,
    "flaws_per_item": lambda r: r.flaws,
}


def _select(records: Sequence[Judgment], metric: str) -> resampling.Data:
    """The judgments that carry `metric`, as numerator and denominator, sorted by rater."""
    rows: list[tuple[str, bool, float, float]] = []
    for r in records:
        if metric == "catch_rate":
            if r.planted and r.caught is not None:
                rows.append((r.rater, r.assisted, float(min(r.caught, r.planted)), float(r.planted)))
            continue
        value = VALUES[metric](r)
        if value is not None:
            rows.append((r.rater, r.assisted, float(value), 1.0))
    ids = {name: i for i, name in enumerate(sorted({row[0] for row in rows}))}
    rows.sort(key=lambda row: ids[row[0]])
    return resampling.Data(
        rater=np.array([ids[row[0]] for row in rows], dtype=np.intp),
        assisted=np.array([row[1] for row in rows], dtype=np.bool_),
        num=np.array([row[2] for row in rows], dtype=np.float64),
        den=np.array([row[3] for row in rows], dtype=np.float64),
    )


def _needed(n: int, se: float, delta: float | None, effect: float, metric: str) -> dict[str, Any] | None:
    """Judgments needed to detect `delta` at POWER and ALPHA, from the cluster-bootstrap SE.

    With the same design at a larger size, Var(diff) = DEFF · σ²_eff / N (σ²_eff the per-judgment
    variance of both arms at this allocation, DEFF the design effect of clustering by rater), so
    N = DEFF · σ²_eff · (z_{1-alpha/2} + z_{power})² / δ² = n · se² · (z_{1-alpha/2} + z_{power})² / δ².
    """
    if delta is None or delta <= 0 or not math.isfinite(se):
        return None
    from scipy.stats import norm  # imported on first use (the rater loop never needs scipy)

    z = float(norm.ppf(1 - ALPHA / 2) + norm.ppf(POWER))
    total = math.ceil(n * (z * se / delta) ** 2)
    units = "points" if metric in PROPORTIONS else "share of the unassisted value"
    return {"effect": effect, "effect_units": units, "judgments_total": total, "judgments_more": max(0, total - n)}


def _compare_metric(
    d: resampling.Data, metric: str, *, bootstrap: int, permutations: int, effect: float, stretch: bool
) -> Difference:
    """The difference of one metric with its interval, p-value and sample size."""
    full = np.ones((1, d.rater.size))
    labels = d.assisted.astype(np.float64)[None, :]
    result = Difference(metric, judgments=int(d.rater.size), raters=d.raters)
    estimate = float(resampling.difference(d, metric, labels, full)[0])
    result.estimate = estimate
    result.p = resampling.permutation_p(d, metric, estimate, permutations, SEED) if permutations > 0 else None
    if d.raters < 2:
        result.note = "No interval: it resamples raters, and at least two are needed."
        return result
    diffs = resampling.bootstrap(d, metric, bootstrap, SEED)
    valid = diffs[np.isfinite(diffs)]
    if len(valid) < max(2, MIN_VALID * len(diffs)):
        result.note = "No interval: most resamples of the raters left one arm without this figure."
        return result
    result.ci = resampling.interval(valid, d.raters, stretch=stretch)
    # Both must call it: the interval (which allows for which raters took part) and, when it was run,
    # the permutation test (which holds the raters fixed); with a few raters the two can disagree.
    excludes = not (result.ci[0] <= 0 <= result.ci[1])
    result.significant = excludes and (result.p is None or result.p < ALPHA)
    se = float(np.std(valid, ddof=1)) * math.sqrt(d.raters / (d.raters - 1))
    naive = resampling.naive_variance(d, metric)
    result.design_effect = se**2 / naive if naive else None
    unassisted = float(resampling.arm_value(d, metric, full * (1 - labels))[0])
    delta = effect if metric in PROPORTIONS else effect * abs(unassisted)
    result.needed = _needed(d.rater.size, se, delta, effect, metric)
    return result


def _arm(records: Sequence[Judgment], arm: bool) -> dict[str, Any]:
    """The per-arm figures: judgments, raters, and each metric (None when not measured)."""
    mine = [r for r in records if r.assisted == arm]
    figures: dict[str, Any] = {"judgments": len(mine), "raters": len({r.rater for r in mine})}
    for metric in METRICS:
        d = _select(mine, metric)
        value = resampling.arm_value(d, metric, np.ones((1, d.rater.size)))[0] if d.rater.size else math.nan
        figures[metric] = float(value) if math.isfinite(value) else None
    return figures


MISSING = {
    "gold_accuracy": "No gold answers among these judgments.",
    "catch_rate": "No planted flaws among these judgments.",
    "agreement": "No aggregated labels to agree with among these judgments.",
    "median_seconds": "No judgment times recorded.",
    "flaws_per_item": "No flaw marking among these judgments.",
}


def compare(
    records: Sequence[Judgment],
    *,
    effect: float = EFFECT,
    metrics: Sequence[str] = METRICS,
    bootstrap: int = BOOTSTRAP,
    permutations: int = PERMUTATIONS,
    help_name: str = "critiques",
    stretch: bool = True,
) -> Report:
    """The experiment report: per-arm figures and, per metric, the difference with interval and p.

    `stretch=False` leaves out the small-sample stretch of the interval (`resampling.interval`); the
    benchmark turns it off to show what it does.
    """
    arms = {"assisted": _arm(records, True), "unassisted": _arm(records, False)}
    settings = {"bootstrap": bootstrap, "permutations": permutations, "seed": SEED, "level": LEVEL}
    statement = _statement(arms)
    differences: dict[str, Difference] = {}
    for metric in metrics:
        d = _select(records, metric)
        if statement is not None or not d.assisted.any() or d.assisted.all():
            differences[metric] = Difference(metric, sentence=statement or _one_sided(d, metric))
            continue
        diff = _compare_metric(
            d, metric, bootstrap=bootstrap, permutations=permutations, effect=effect, stretch=stretch
        )
        a, u = (resampling.arm_value(d, metric, np.ones((1, d.rater.size)) * w)[0] for w in (d.assisted, ~d.assisted))
        diff.sentence = sentence(metric, float(a), float(u), diff, help_name)
        differences[metric] = diff
    return Report(arms, differences, statement, settings)


def _statement(arms: dict[str, dict[str, Any]]) -> str | None:
    """Why no arm can be compared at all, or None."""
    a, u = arms["assisted"]["judgments"], arms["unassisted"]["judgments"]
    if a == 0 and u == 0:
        return "No judgments yet: nothing to compare."
    if a == 0:
        return f"No assisted judgments yet ({u} unassisted): nothing to compare."
    if u == 0:
        return f"No unassisted judgments yet ({a} assisted): nothing to compare."
    return None


def _one_sided(d: resampling.Data, metric: str) -> str:
    if d.rater.size == 0:
        return MISSING[metric]
    arm = "assisted" if d.assisted.all() else "unassisted"
    return f"{LABELS[metric]}: only {_count(d.rater.size, 'judgment')}, all {arm}, carry it: nothing to compare."


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


LABELS = {
    "gold_accuracy": "Gold accuracy",
    "catch_rate": "Catch rate",
    "agreement": "Agreement",
    "median_seconds": "Median time",
    "flaws_per_item": "Flaws per item",
}
PHRASES: dict[str, Callable[[str, str], str]] = {
    "gold_accuracy": lambda a, u: f"raters matched gold on {a} of judgments vs {u} without",
    "catch_rate": lambda a, u: f"raters caught {a} of planted flaws vs {u} without",
    "agreement": lambda a, u: f"raters agreed with the aggregated label on {a} of judgments vs {u} without",
    "median_seconds": lambda a, u: f"the median judgment took {a} vs {u} without",
    "flaws_per_item": lambda a, u: f"raters marked {a} flaws per item vs {u} without",
}


def _number(metric: str, value: float) -> str:
    """Points for proportions, whole seconds, two decimals for flaws; never "-0"."""
    if metric in PROPORTIONS:
        return f"{round(100 * value)}"
    digits = 0 if metric == "median_seconds" else 2
    return f"{round(value, digits) + 0.0:.{digits}f}"


def _range(metric: str, low: float, high: float) -> str:
    lo, hi = _number(metric, low), _number(metric, high)
    return f"{lo}\u2013{hi}" if low >= 0 else f"{lo} to {hi}"


def format_p(p: float) -> str:
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def sentence(metric: str, assisted: float, unassisted: float, diff: Difference, help_name: str) -> str:
    """The result in words, as the report page shows it."""
    unit = {"median_seconds": " s"}.get(metric, "")
    a, u = (
        f"{round(100 * v)}%" if metric in PROPORTIONS else f"{_number(metric, v)}{unit}" for v in (assisted, unassisted)
    )
    estimate = diff.estimate if diff.estimate is not None else math.nan
    parts = [f"difference {_number(metric, estimate)}{' points' if metric in PROPORTIONS else unit}"]
    if diff.ci is not None:
        parts.append(f"{round(100 * LEVEL)}% CI {_range(metric, *diff.ci)}")
    if diff.p is not None:
        parts.append(format_p(diff.p))
    size = f"{_count(diff.judgments, 'judgment')} by {_count(diff.raters, 'rater')}"
    text = f"With {help_name}, {PHRASES[metric](a, u)} ({', '.join(parts)}; {size})."
    if diff.ci is None:
        return f"{text} {diff.note or 'No interval.'}"
    if not diff.significant and not diff.ci[0] <= 0 <= diff.ci[1]:
        return (
            f"{text} Not significant: the {round(100 * LEVEL)}% interval excludes 0 but the permutation test does "
            f"not ({format_p(diff.p if diff.p is not None else math.nan)}); with few raters the two can disagree."
        )
    if not diff.significant:
        text += f" Not significant: the {round(100 * LEVEL)}% interval includes 0"
        if diff.p is not None and diff.p < 1 - LEVEL:
            # The permutation test holds each rater's arms fixed and so does not carry the
            # uncertainty of which raters took part; the interval does, and decides.
            return (
                text + " (the permutation test alone would call it, but it does not allow for which raters took part)."
            )
        return text + "."
    return text

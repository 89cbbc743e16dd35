"""Choosing the hand-off threshold from the checked items, pure: what each threshold would cost.

For every candidate threshold t the platform knows two things about the items the model judges
routed so far. The share that would go to humans, exactly, from the confidences alone: F(t) + s (1
- F(t)), F the share of routed items below t (or whose models disagree), s the spot-check rate. And
the cost in label accuracy against all-human labeling, estimated: (1 - s) times the mean over the
routed items of [c >= t] (h - a(c)), h the humans' label accuracy and a(c) the models' accuracy at
confidence c. Both h and a are measured on the items humans labelled after the models (the checked
items), and neither is seen directly, because the humans' label is itself sometimes wrong:

- The humans' individual accuracy q from their pairwise agreement (two humans agree with
  probability q^2 + (1 - q)^2: errors independent and between two outcomes), and h at k humans as
  the chance their plurality is right (a level vote counts a half, as `report.agreement` does).
- The models' accuracy from their agreement with the humans' label: P(agree) = a h + (1 - a)(1 - h).
  `logistic` (the default) fits a(c) = sigmoid(alpha + beta logit(c) + gamma c) to every checked
  verdict by maximum likelihood with that noisy-label likelihood (unweighted: being checked
  depends on the confidence only, so given the confidence the checked verdicts are a fair sample);
  `logit-only` drops the gamma c term (see `features`); `binned` takes the checked verdicts at or
  above t and de-noises their mean agreement (no assumption on the shape, but above the threshold
  in force only the spot checks are seen, so it is noisy exactly where it matters).

Checked items are not a random sample: below the threshold in force every item is checked, above
it only the spot checks, a random share s. So each checked verdict is weighted by the inverse of
its chance of being checked, 1 for an item handed to humans and 1 / s for a spot check (Horvitz and
Thompson, s the rate now in force), wherever a mean over the routed items is taken from them: the
binned estimate and the humans' label accuracy. Intervals are 95%, by the delta method with a
sandwich covariance, adding the uncertainty of q; the routed items' confidences are taken as known.

`suggest` turns the curve into one threshold from two numbers an admin states: a goal for the share
of items kept from humans and a budget for the cost in accuracy. Among the thresholds whose
estimated cost is within the budget, the highest that keeps the goal plus a margin from humans (the
least accuracy at risk); if none does, the one within budget that keeps the most from humans, and
the reason says which goal cannot be met. "Within the budget" is the estimate by default; `bound=
"upper"` asks the top of its 95% interval instead. bench/handoff.py measures both: the upper bound
is too cautious to meet the issue's claim (the first blocks' intervals are wide, so it keeps high
thresholds while the savings goal slips), and the estimate, where the budget binds, lands on its
edge, so about half the projects exceed it a little. The interval is in the reason either way.
"""

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Method = Literal["logistic", "logit-only", "binned"]
Bound = Literal["estimate", "upper"]
Floats = NDArray[np.float64]

GRID: tuple[float, ...] = tuple(round(0.5 + 0.005 * i, 3) for i in range(101))  # 0.5, 0.505, ..., 1.0
SAVINGS, BUDGET = 0.4, 0.01  # the default goals: the claim (40% fewer items to humans within 1 point)
MAX_SAVINGS, MAX_BUDGET = 0.95, 0.2  # the bounds of the goals an admin can ask for
MIN_VERDICTS = 30  # checked model verdicts needed before a threshold is suggested
MARGIN = 0.02  # kept from humans beyond the goal: the first blocks' thresholds, and the share of new items, vary
Z = 1.959964  # two-sided 95%
_CLIP = 1e-3  # confidences are clipped to [0.001, 0.999] before their logit


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the estimate reads, as arrays.

    The first four are one entry per checked item whose models agreed (their verdict could have
    stood): the models' confidence (the lowest, with several models), the verdict's agreement with
    the humans' label (0..1), whether it was a spot check, and how many humans labelled it. The
    pairs are one entry per checked item: human pairs agreeing and human pairs. `routed` is the
    confidence of every item the models routed (0 when their verdicts could not stand: disagreeing
    models, no confidence), the population the shares and costs are about."""

    confidence: Floats
    agreement: Floats
    spot_check: NDArray[np.bool_]
    humans: NDArray[np.int64]
    pairs_agreeing: Floats
    pairs: Floats
    routed: Floats
    spot_check_rate: float

    @property
    def weight(self) -> Floats:
        """1 / the chance of being checked: 1 below the threshold in force, 1 / s for a spot check."""
        s = self.spot_check_rate
        return np.where(self.spot_check, 1.0 / s if s > 0 else 1.0, 1.0)


def human_pairs(keys: Sequence[tuple[Any, ...]]) -> tuple[int, int]:
    """How many pairs of the humans' verdicts on one item agree, and how many pairs there are."""
    n = len(keys)
    return sum(k * (k - 1) // 2 for k in Counter(keys).values()), n * (n - 1) // 2


def majority_accuracy(q: float, humans: NDArray[np.int64]) -> Floats:
    """The chance that k humans each right with probability q give the right plurality (a level vote: half)."""
    from scipy.stats import binom  # imported on first use (server processes start without scipy)

    k = humans.astype(float)
    above = binom.sf(np.floor(k / 2), k, q)  # more than half right
    level = np.where(humans % 2 == 0, binom.pmf(k / 2, k, q), 0.0)
    return np.asarray(above + level / 2, dtype=float)


def humans_accuracy(evidence: Evidence) -> tuple[float, float] | None:
    """A human's accuracy q from pairwise agreement p = q^2 + (1 - q)^2, and its standard error (None: no pairs)."""
    total = float(evidence.pairs.sum())
    if total == 0:
        return None
    p = float(evidence.pairs_agreeing.sum()) / total
    var_p = float(((evidence.pairs_agreeing - p * evidence.pairs) ** 2).sum()) / total**2
    root = math.sqrt(max(2 * p - 1, 0.0))
    q = (1 + root) / 2
    se = math.sqrt(var_p) / (2 * root) if root > 0 else math.inf
    return q, se


@dataclass(frozen=True, slots=True)
class Point:
    threshold: float
    human_share: float  # F(t) + s (1 - F(t)): exact for the routed items
    cost: float  # estimated label accuracy lost against all-human labeling (positive: worse)
    low: float
    high: float

    @classmethod
    def of(cls, point: dict[str, Any]) -> "Point":
        """Back from `as_dict` (the cached report)."""
        cost = point["estimated_cost"]
        if cost["estimate"] is None:
            return cls(point["threshold"], point["human_share"], math.nan, -math.inf, math.inf)
        return cls(point["threshold"], point["human_share"], cost["estimate"], *cost["ci"])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: a cost nothing can be said of (binned, no checked verdict above t) is null."""
        known = all(math.isfinite(x) for x in (self.cost, self.low, self.high))
        return {
            "threshold": self.threshold,
            "human_share": self.human_share,
            "estimated_cost": {"estimate": self.cost if known else None, "ci": [self.low, self.high] if known else []},
        }


@dataclass(frozen=True, slots=True)
class Curve:
    points: list[Point]  # empty when `problem` says why nothing can be estimated
    verdicts: int  # checked model verdicts the estimate rests on
    humans_accuracy: float | None  # the humans' estimated label accuracy (at their numbers on checked items)
    problem: str | None = None


def human_share(routed: Floats, threshold: float, spot_check_rate: float) -> float:
    """Share of the routed items a threshold sends to humans: those below it, and the spot checks of the rest."""
    if len(routed) == 0:
        return 1.0
    below = float((routed < threshold).mean())
    return below + spot_check_rate * (1 - below)


def _logit(c: Floats) -> Floats:
    c = np.clip(c, _CLIP, 1 - _CLIP)
    return np.asarray(np.log(c / (1 - c)), dtype=float)


def _sigmoid(eta: Floats) -> Floats:
    return np.asarray(1 / (1 + np.exp(-np.clip(eta, -30, 30))), dtype=float)


def features(c: Floats, method: Method = "logistic") -> Floats:
    """The calibration curve's design, a(c) = sigmoid(theta . features(c)): 1, logit(c) and c.

    With logit(c) alone (`logit-only`) a(c) must reach 1 as c does, so a model that says 0.99 and
    is right 90% of the time is read as nearly always right where only spot checks are seen; the c
    term lets the curve level off below 1 (bench/handoff.py, part 3, measures the difference)."""
    columns = [np.ones_like(c), _logit(c)] if method == "logit-only" else [np.ones_like(c), _logit(c), c]
    return np.asarray(np.column_stack(columns), dtype=float)


def fit(design: Floats, y: Floats, w: Floats, h: Floats) -> tuple[Floats, Floats]:
    """a = sigmoid(design @ theta) by weighted maximum likelihood of y under P(y) = a h + (1 - a)(1 - h).

    Fisher scoring with step halving; returns the estimate and its sandwich covariance."""
    g = 2 * h - 1

    def loglik(theta: Floats) -> float:
        p = np.clip(1 - h + _sigmoid(design @ theta) * g, 1e-12, 1 - 1e-12)
        return float((w * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum())

    def parts(theta: Floats) -> tuple[Floats, Floats, Floats]:
        a = _sigmoid(design @ theta)
        p = np.clip(1 - h + a * g, 1e-12, 1 - 1e-12)
        d = g * a * (1 - a)  # dp / d eta
        scores = ((y - p) / (p * (1 - p)) * d)[:, None] * design  # one row per verdict
        info = (design * (w * d**2 / (p * (1 - p)))[:, None]).T @ design
        return scores, info, d

    theta = np.zeros(design.shape[1])
    current = loglik(theta)
    for _ in range(100):
        scores, info, _ = parts(theta)
        step = np.linalg.lstsq(info, (w[:, None] * scores).sum(axis=0), rcond=None)[0]
        for _ in range(30):
            trial = theta + step
            if (new := loglik(trial)) >= current - 1e-12:
                break
            step = step / 2
        else:
            break
        theta, moved, current = trial, float(np.abs(step).max()), new
        if moved < 1e-9:
            break
    scores, info, _ = parts(theta)
    bread = np.linalg.pinv(info)
    meat = (scores * (w**2)[:, None]).T @ scores
    return theta, bread @ meat @ bread


def _tail(v: Floats) -> Floats:
    """The sum from each index to the end (one more entry: 0, for an index past the end)."""
    return np.asarray(np.r_[np.cumsum(v[::-1])[::-1], 0.0], dtype=float)


def _costs(evidence: Evidence, q: float, method: Method, grid: Sequence[float]) -> tuple[Floats, Floats, float]:
    """The cost at each threshold, its variance given q, and the humans' label accuracy, for a given q."""
    w = evidence.weight
    h = majority_accuracy(q, evidence.humans)
    h_all = float((w * h).sum() / w.sum())  # what all-human labeling would reach on the routed items
    s = evidence.spot_check_rate
    routed = np.sort(evidence.routed)
    n = len(routed)
    first = np.searchsorted(routed, np.asarray(grid), side="left")  # routed[first:] are >= t
    if method == "binned":
        order = np.argsort(evidence.confidence)
        c, y, w, hs = evidence.confidence[order], evidence.agreement[order], w[order], h[order]
        start = np.searchsorted(c, np.asarray(grid), side="left")
        sw, swy, swh = _tail(w), _tail(w * y), _tail(w * hs)
        costs, variances = np.zeros(len(grid)), np.zeros(len(grid))
        for i, (j, k) in enumerate(zip(start, first, strict=True)):
            above = (n - k) / n if n else 0.0
            if above == 0:
                continue
            if sw[j] == 0:  # routed items above t but no checked verdict there: nothing known
                costs[i], variances[i] = math.nan, math.inf
                continue
            mean_y, mean_h = swy[j] / sw[j], swh[j] / sw[j]
            accuracy = (mean_y - (1 - mean_h)) / (2 * mean_h - 1)
            resid = w[j:] * (y[j:] - mean_y)
            var_y = float((resid**2).sum()) / sw[j] ** 2
            costs[i] = (1 - s) * above * (h_all - accuracy)
            variances[i] = ((1 - s) * above / (2 * mean_h - 1)) ** 2 * var_y
        return costs, variances, h_all
    # Unweighted: which items were checked depends on their confidence alone (and a random draw), so
    # the model of agreement given confidence is estimated without bias from them as they are, and
    # weighting the spot checks by 1 / s would only add variance.
    theta, cov = fit(features(evidence.confidence, method), evidence.agreement, np.ones_like(w), h)
    design = features(routed, method)
    a = _sigmoid(design @ theta)
    n_ = max(n, 1)
    costs = (1 - s) * _tail(h_all - a)[first] / n_
    slope = a * (1 - a)
    grad = -np.stack([_tail(slope * design[:, k])[first] for k in range(design.shape[1])], axis=1) * (1 - s) / n_
    variances = np.einsum("ij,jk,ik->i", grad, cov, grad)
    return costs, variances, h_all


def curve(evidence: Evidence, *, method: Method = "logistic", grid: Sequence[float] = GRID) -> Curve:
    """Every candidate threshold's human share and estimated cost in accuracy, with 95% intervals."""
    verdicts = len(evidence.confidence)
    measured = humans_accuracy(evidence)
    if measured is None:
        return Curve(
            [], verdicts, None, "No checked item has two human judgments, so the humans' own accuracy is unknown."
        )
    q, se_q = measured
    if q < 0.55 or not math.isfinite(se_q):
        return Curve(
            [], verdicts, None, "The humans agree too little with each other to measure the models against them."
        )
    if verdicts < MIN_VERDICTS:
        return Curve(
            [],
            verdicts,
            None,
            f"Only {verdicts:,} model verdicts have been checked by humans; {MIN_VERDICTS} are needed.",
        )
    costs, variances, h_all = _costs(evidence, q, method, grid)
    # q's own uncertainty, through its effect on the whole estimate (the fit included).
    delta = 1e-3 if q + 1e-3 <= 1 else -1e-3
    shifted, _, _ = _costs(evidence, q + delta, method, grid)
    variances = variances + ((shifted - costs) / delta * se_q) ** 2
    s = evidence.spot_check_rate
    points = []
    for t, cost, var in zip(grid, costs, variances, strict=True):
        half = Z * math.sqrt(var) if math.isfinite(var) else math.inf
        share = human_share(evidence.routed, t, s)
        if math.isnan(cost):
            points.append(Point(float(t), share, math.nan, -math.inf, math.inf))
        else:
            points.append(Point(float(t), share, float(cost), float(cost - half), float(cost + half)))
    return Curve(points, verdicts, h_all)


@dataclass(frozen=True, slots=True)
class Suggestion:
    threshold: float | None
    human_share: float | None
    cost: float | None
    ci: tuple[float, float] | None
    meets_savings: bool
    meets_budget: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "human_share": self.human_share,
            "estimated_cost": None if self.cost is None else {"estimate": self.cost, "ci": list(self.ci or ())},
            "meets": {"savings": self.meets_savings, "budget": self.meets_budget},
            "reason": self.reason,
        }


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _pt(x: float, *, unit: bool = True) -> str:
    """A share of accuracy in points: 0.004 is "0.4 points"."""
    figure = f"{100 * x:.1f}".removesuffix(".0")
    figure = "0" if figure == "-0" else figure
    if not unit:
        return figure
    return f"{figure} point" + ("" if figure == "1" else "s")


def suggest(
    points: Sequence[Point],
    *,
    savings: float,
    budget: float,
    problem: str | None = None,
    margin: float = MARGIN,
    bound: Bound = "estimate",
) -> Suggestion:
    """The threshold to set for keeping `savings` of the items from humans at a cost of at most `budget`.

    Within budget: the estimated cost is (`bound="upper"`: the top of its 95% interval is). Among
    those thresholds, the highest that keeps `savings + margin` from humans (the least accuracy at
    risk); if none does, the one within budget that keeps the most from humans, and the reason says
    the goal cannot be met."""
    if problem is not None or not points:
        return Suggestion(None, None, None, None, False, False, problem or "Nothing has been routed by the models yet.")
    within = [p for p in points if math.isfinite(p.cost) and (p.high if bound == "upper" else p.cost) <= budget]
    saving = [p for p in within if 1 - p.human_share >= savings + margin]
    measure = "at the top of its 95% interval" if bound == "upper" else "by the estimate"
    if saving:
        best = max(saving, key=lambda p: p.threshold)
        reason = (
            f"Threshold {best.threshold:g} keeps {_pct(1 - best.human_share)} of items from humans at {_cost(best)}."
        )
        return Suggestion(best.threshold, best.human_share, best.cost, (best.low, best.high), True, True, reason)
    if within:
        best = min(within, key=lambda p: (p.human_share, -p.threshold))
        reason = (
            f"No threshold keeps {_pct(savings)} of items from humans within {_pt(budget)} of accuracy {measure}; "
            f"threshold {best.threshold:g} keeps the most within the budget, {_pct(1 - best.human_share)}, at "
            f"{_cost(best)}."
        )
        return Suggestion(best.threshold, best.human_share, best.cost, (best.low, best.high), False, True, reason)
    reason = f"No threshold costs at most {_pt(budget)} of accuracy {measure}; keep sending every item to humans."
    return Suggestion(None, None, None, None, False, False, reason)


def _cost(p: Point) -> str:
    return f"an estimated cost of {_pt(p.cost)} of accuracy (95% interval {_pt(p.low, unit=False)} to {_pt(p.high)})"

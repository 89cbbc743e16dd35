"""Resampling for the assistance experiment report (pure): the rater cluster bootstrap, the
within-rater permutation test, and the figures they recompute (server/quality/experiment.py
explains the method; docs/QUALITY.md "Assistance experiments" the figures behind it)."""

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations, product

import numpy as np
from numpy.typing import NDArray

LEVEL = 0.95
CHUNK = 2_000_000  # matrix cells per block, so memory stays bounded on large projects
EPS = 1e-12
MAX_KINDS = 16  # distinct values per rater up to which relabelings are drawn by value, not by judgment
# A median's resamples work on counts per distinct value instead of per judgment; past this many
# distinct values, the values are grouped into this many bins of equal counts, so the cost stays
# flat however many judgments there are.
MAX_BINS = 2048
# The permutation test's statistic is the median difference over at most this many bins: any
# function of the data is a valid statistic when the observed and the permuted values use the same
# one, and drawing the relabelings costs permutations x bins x raters.
TEST_BINS = 256

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Data:
    """One metric's judgments sorted by rater: value = num / den (den 1 for means)."""

    rater: NDArray[np.intp]  # 0..raters-1, ascending
    assisted: NDArray[np.bool_]
    num: Floats
    den: Floats

    @property
    def raters(self) -> int:
        return int(self.rater.max()) + 1 if self.rater.size else 0


def weighted_median(values: Floats, weights: Floats) -> Floats:
    """Per row of integer `weights`, the median of `values` repeated that many times (NaN if none).

    `values` must be sorted. The median of W values is the mean of the ones at ranks
    ⌊(W+1)/2⌋ and ⌊W/2⌋+1 (1-based), which coincide when W is odd.
    """
    cum = np.cumsum(weights, axis=1)
    total = cum[:, -1] if cum.shape[1] else np.zeros(cum.shape[0])
    low_rank, high_rank = np.floor((total + 1) / 2), np.floor(total / 2) + 1
    # The value at rank r is the first whose running count reaches r: one search per row, the rows
    # laid end to end with offsets so that a single searchsorted does them all.
    offsets = np.arange(len(cum)) * (float(total.max(initial=0)) + 2)
    flat = (cum + offsets[:, None]).ravel()
    start = np.arange(len(cum)) * cum.shape[1]
    low = np.minimum(np.searchsorted(flat, low_rank - EPS + offsets) - start, len(values) - 1)
    high = np.minimum(np.searchsorted(flat, high_rank - EPS + offsets) - start, len(values) - 1)
    out = (values[low] + values[high]) / 2 if len(values) else np.full(len(total), np.nan)
    return np.where(total > 0, out, np.nan)


@dataclass(frozen=True, slots=True)
class Binned:
    """A median's values as counts: `values` sorted, `index` each judgment's place in them."""

    values: Floats
    index: NDArray[np.intp]

    def counts(self, d: Data, mask: NDArray[np.bool_]) -> Floats:
        """Per rater (rows) the number of `mask`ed judgments at each value (columns)."""
        out = np.zeros((d.raters, len(self.values)))
        np.add.at(out, (d.rater[mask], self.index[mask]), 1.0)
        return out


def binned(d: Data, limit: int = MAX_BINS) -> Binned:
    """The distinct values of `d.num` (exact), or `limit` bins of equal counts when there are more.

    Equal-count bins (edges at quantiles) are finest where the judgments are dense, around the
    median: with 2,048 of them a bin near the median of log-normal times spans well under 1%. A
    bin stands for the mean of its values, so the bins stay in order.
    """
    values, index = np.unique(d.num, return_inverse=True)
    if len(values) <= limit:
        return Binned(values, index.ravel())
    edges = np.unique(np.quantile(d.num, np.linspace(0.0, 1.0, limit + 1)))
    bin_of = np.clip(np.searchsorted(edges, d.num, side="right") - 1, 0, len(edges) - 2)
    used, index = np.unique(bin_of, return_inverse=True)  # bins that hold a value, in order
    sums = np.bincount(index, weights=d.num, minlength=len(used))
    return Binned(sums / np.bincount(index, minlength=len(used)), index.ravel().astype(np.intp))


def _median_difference(values: Floats, assisted: Floats, unassisted: Floats) -> Floats:
    return weighted_median(values, assisted) - weighted_median(values, unassisted)


def arm_value(d: Data, metric: str, weights: Floats) -> Floats:
    """The metric for each row of per-judgment weights (a resample or relabeling of one arm)."""
    if metric == "median_seconds":
        order = np.argsort(d.num, kind="stable")
        return weighted_median(d.num[order], weights[:, order])
    with np.errstate(invalid="ignore", divide="ignore"):
        den = weights @ d.den
        return np.where(den > 0, (weights @ d.num) / np.where(den > 0, den, 1), np.nan)


def difference(d: Data, metric: str, assisted: Floats, weights: Floats) -> Floats:
    """assisted - unassisted per row, for 0/1 `assisted` labels and judgment multiplicities."""
    return arm_value(d, metric, weights * assisted) - arm_value(d, metric, weights * (1 - assisted))


def _rows(total: int, width: int) -> list[int]:
    """Block sizes of at most CHUNK cells that add up to `total` rows."""
    step = max(1, CHUNK // max(width, 1))
    return [min(step, total - start) for start in range(0, total, step)]


def bootstrap(d: Data, metric: str, resamples: int, seed: int) -> Floats:
    """The difference in each cluster-bootstrap resample of the raters (NaN where an arm is empty)."""
    rng = np.random.default_rng(seed)
    raters = d.raters
    if metric == "median_seconds":  # counts per value, binned once for every resample
        b = binned(d)
        arms = b.counts(d, d.assisted), b.counts(d, ~d.assisted)
        out = []
        for rows in _rows(resamples, len(b.values)):
            drawn = rng.multinomial(raters, np.full(raters, 1 / raters), size=rows).astype(np.float64)
            out.append(_median_difference(b.values, drawn @ arms[0], drawn @ arms[1]))
        return np.concatenate(out) if out else np.empty(0)
    out = [
        resampled(d, metric, rng.multinomial(raters, np.full(raters, 1 / raters), size=rows))
        for rows in _rows(resamples, d.rater.size)
    ]
    return np.concatenate(out) if out else np.empty(0)


def resampled(d: Data, metric: str, counts: NDArray[np.int64]) -> Floats:
    """The difference for each row of rater counts (how often each rater was drawn)."""
    drawn = np.asarray(counts, dtype=np.float64)
    if metric == "median_seconds":  # each drawn rater brings their counts per value in each arm
        b = binned(d)
        return _median_difference(b.values, drawn @ b.counts(d, d.assisted), drawn @ b.counts(d, ~d.assisted))
    # A ratio needs only each rater's sums per arm: a product with the counts, not one per judgment.
    sums = [
        drawn @ np.bincount(d.rater, weights=values * mask, minlength=d.raters)
        for mask in (d.assisted, ~d.assisted)
        for values in (d.num, d.den)
    ]
    with np.errstate(invalid="ignore", divide="ignore"):
        arms = [np.where(den > 0, num / np.where(den > 0, den, 1), np.nan) for num, den in (sums[:2], sums[2:])]
    return arms[0] - arms[1]


def interval(diffs: Floats, raters: int, *, stretch: bool = True) -> tuple[float, float]:
    """The percentile interval of bootstrap differences, widened for few raters.

    Resampling R raters gives (R - 1) / R of the between-rater variance, and with few raters the
    estimate of that variance is itself uncertain: the deviations from the bootstrap mean are
    stretched by sqrt(R / (R - 1)) * t_{R-1} / z (the usual small-cluster rule: CR1 and a t with
    R - 1 degrees of freedom), which tends to 1 as raters grow.
    """
    from scipy.stats import norm  # imported on first use: a server process that never reports starts lighter
    from scipy.stats import t as t_dist

    quantile = 1 - (1 - LEVEL) / 2
    factor = math.sqrt(raters / (raters - 1)) * float(t_dist.ppf(quantile, raters - 1) / norm.ppf(quantile))
    centre = float(diffs.mean())
    low, high = np.percentile(
        centre + (diffs - centre) * (factor if stretch else 1.0), [100 * (1 - quantile), 100 * quantile]
    )
    return float(low), float(high)


def relabelings(d: Data, count: int, seed: int) -> tuple[Iterator[NDArray[np.bool_]], bool]:
    """Arm labels permuted within each rater, in blocks of rows: every arrangement when there are
    at most `count`, else `count` random ones. The bool says which."""
    blocks = _rater_blocks(d)
    total = math.prod(math.comb(e - s, int(d.assisted[s:e].sum())) for s, e in blocks)
    if total <= count:
        choices = [list(combinations(range(s, e), int(d.assisted[s:e].sum()))) for s, e in blocks]
        labels = np.zeros((total, d.rater.size), dtype=np.bool_)
        for row, picks in enumerate(product(*choices)):
            labels[row, [i for pick in picks for i in pick]] = True
        return iter([labels]), True
    return _random_relabelings(d, blocks, count, np.random.default_rng(seed)), False


def _random_relabelings(
    d: Data, blocks: list[tuple[int, int]], count: int, rng: np.random.Generator
) -> Iterator[NDArray[np.bool_]]:
    for rows in _rows(count, d.rater.size):
        labels = np.empty((rows, d.rater.size), dtype=np.bool_)
        for s, e in blocks:
            labels[:, s:e] = rng.permuted(np.tile(d.assisted[s:e], (rows, 1)), axis=1)
        yield labels


def _rater_blocks(d: Data) -> list[tuple[int, int]]:
    """Each rater's [start, end) in the rater-sorted judgments."""
    starts = np.flatnonzero(np.r_[True, d.rater[1:] != d.rater[:-1]]) if d.rater.size else np.empty(0, np.intp)
    return [(int(s), int(e)) for s, e in zip(starts, [*starts[1:], d.rater.size], strict=True)]


def _drawn_sums(d: Data, count: int, rng: np.random.Generator) -> Floats | None:
    """Assisted-arm numerator and denominator sums (2 x count) of random within-rater relabelings.

    Relabeling a rater's judgments draws their assisted ones without replacement: over the rater's
    distinct (numerator, denominator) values that is a multivariate hypergeometric draw, count x
    (distinct values) numbers instead of count x judgments. None when a rater has more than
    `MAX_KINDS` distinct values (continuous scores): relabel judgment by judgment then.
    """
    sums = np.zeros((2, count))
    for s, e in _rater_blocks(d):
        kinds, inverse = np.unique(np.c_[d.num[s:e], d.den[s:e]], axis=0, return_inverse=True)
        if len(kinds) > MAX_KINDS:
            return None
        colors = np.bincount(inverse.ravel(), minlength=len(kinds))
        drawn = rng.multivariate_hypergeometric(colors, int(d.assisted[s:e].sum()), size=count)
        sums += (drawn @ kinds).T
    return sums


def _drawn_medians(d: Data, count: int, rng: np.random.Generator) -> tuple[Floats, float]:
    """The median difference of `count` random within-rater relabelings, and the observed one,
    both over the values binned to TEST_BINS: each rater's assisted judgments are a multivariate
    hypergeometric draw over their counts per value (count x values numbers, not count x judgments)."""
    b = binned(d, TEST_BINS)
    assisted = np.zeros((count, len(b.values)))
    for s, e in _rater_blocks(d):
        kinds, inverse = np.unique(b.index[s:e], return_inverse=True)
        colors = np.bincount(inverse.ravel(), minlength=len(kinds))
        assisted[:, kinds] += rng.multivariate_hypergeometric(colors, int(d.assisted[s:e].sum()), size=count)
    whole = np.bincount(b.index, minlength=len(b.values)).astype(np.float64)
    observed = _median_difference(
        b.values,
        np.bincount(b.index[d.assisted], minlength=len(b.values))[None, :].astype(np.float64),
        np.bincount(b.index[~d.assisted], minlength=len(b.values))[None, :].astype(np.float64),
    )
    return _median_difference(b.values, assisted, whole[None, :] - assisted), float(observed[0])


def permutation_p(d: Data, metric: str, observed: float, permutations: int, seed: int) -> float:
    """Two-sided p of the within-rater permutation test (exact when all arrangements fit)."""
    blocks, exact = relabelings(d, permutations, seed)
    if metric == "median_seconds" and not exact:
        diffs, binned_observed = _drawn_medians(d, permutations, np.random.default_rng(seed))
        extreme = int((np.abs(diffs) >= abs(binned_observed) - 1e-9).sum())
        return (1 + extreme) / (1 + permutations)
    drawn = None if exact or metric == "median_seconds" else _drawn_sums(d, permutations, np.random.default_rng(seed))
    if drawn is not None:
        num, den = d.num.sum(), d.den.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            diffs = drawn[0] / drawn[1] - (num - drawn[0]) / (den - drawn[1])
        extreme = int((np.abs(diffs) >= abs(observed) - 1e-9).sum())
        return (1 + extreme) / (1 + permutations)
    extreme = total = 0
    for block in blocks:
        diffs = difference(d, metric, block.astype(np.float64), np.ones(block.shape))
        extreme += int((np.abs(diffs) >= abs(observed) - 1e-9).sum())
        total += len(block)
    return extreme / total if exact else (1 + extreme) / (1 + total)


def naive_variance(d: Data, metric: str) -> float | None:
    """Variance of the difference if judgments were independent (linearised ratio), or None."""
    if metric == "median_seconds":
        return None
    total = 0.0
    for arm in (True, False):
        num, den = d.num[d.assisted == arm], d.den[d.assisted == arm]
        n = len(num)
        if n < 2 or den.sum() == 0:
            return None
        ratio = num.sum() / den.sum()
        total += n / (n - 1) * float(((num - ratio * den) ** 2).sum()) / float(den.sum()) ** 2
    return total

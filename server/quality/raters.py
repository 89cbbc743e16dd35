"""Each rater's reliability and biases, and the flags an admin should look at (pure: no database).

Per rater, from their judgments:
- agreement with the leave-one-out majority: on each unit (item, candidate pair) they judged, the
  direction most of the *other* judgments took (a strict plurality; units where the others are
  split or absent do not count), and whether theirs is the same;
- gold accuracy: the mean score of their scored gold judgments (server/quality/gold.py);
- position bias: the share of their choices on two-candidate items that went to the candidate
  shown first (on the left); the shown order is random per assignment, so a fair rater sits
  near 0.5;
- speed: the median active time, and the share of judgments faster than the project's threshold;
- tie, both-bad, skip and revision rates;
- the same figures per block of their judgments in time order (the trend).

Flags come from tests, one per (rater, question): an exact binomial test of the left share
against 0.5 (two-sided), of the fast share against the other raters' (greater), of the agreement
and the gold accuracy against the other raters' (less). The p-values of all human raters and all
questions are corrected together (Holm, family-wise 5%), and a flag also needs a minimum sample
and a minimum size of effect, so that noise on an honest rater flags nothing. Flags are sentences
for admins, with the numbers that justify them.
"""

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scipy.stats import binomtest, norm

from server.quality.agreement import Unit
from server.quality.gold import wilson

ALPHA = 0.05  # family-wise error rate over every human rater and question
MIN_CHOICES = 20  # two-candidate choices before a position flag
MIN_TIMED = 20  # timed judgments before a speed flag
MIN_COMPARED = 20  # units compared with the others' majority before an agreement flag
MIN_GOLD = 10  # scored gold judgments before a gold flag
MIN_LEFT_EFFECT = 0.15  # |left share - 0.5|
MIN_AGREEMENT_GAP = 0.10  # below the other raters' agreement
MIN_GOLD_GAP = 0.15  # below the other raters' gold accuracy
MAX_BLOCKS = 12  # trend rows per rater
MIN_BLOCK = 25


@dataclass(frozen=True, slots=True)
class Judged:
    """One judgment, as the figures need it."""

    rater: str
    values: dict[Unit, int]  # the verdict's value per unit (agreement.pair_values); empty when both bad
    left: bool | None  # on a two-candidate item with a choice: was the candidate shown first chosen?
    seconds: float | None  # active time
    tie: bool
    both_bad: bool
    revised: bool
    at: float  # time order (epoch seconds, or a sequence number)
    gold_score: float | None = None  # scored gold judgment: 0..1


@dataclass(frozen=True, slots=True)
class Rater:
    rater: str
    human: bool = True
    skips: int = 0


@dataclass(slots=True)
class _Tally:
    judgments: int = 0
    left: int = 0
    choices: int = 0
    seconds: list[float] = field(default_factory=list)
    fast: int = 0
    agree: float = 0.0
    agree_sq: float = 0.0  # sum of squared per-judgment unit scores (for the test's variance)
    compared: int = 0
    gold: float = 0.0
    gold_n: int = 0
    ties: int = 0
    both_bad: int = 0
    revised: int = 0

    def add(self, j: Judged, agreed: tuple[float, int], fast_seconds: float) -> None:
        self.judgments += 1
        if j.left is not None:
            self.choices += 1
            self.left += j.left
        if j.seconds is not None:
            self.seconds.append(j.seconds)
            self.fast += j.seconds < fast_seconds
        self.agree += agreed[0]
        self.compared += agreed[1]
        if agreed[1]:
            self.agree_sq += agreed[0] ** 2 / agreed[1]
        if j.gold_score is not None:
            self.gold += j.gold_score
            self.gold_n += 1
        self.ties += j.tie
        self.both_bad += j.both_bad
        self.revised += j.revised

    def figures(self) -> dict[str, Any]:
        n = self.judgments
        return {
            "judgments": n,
            "left_share": _share(self.left, self.choices),
            "choices": self.choices,
            "median_seconds": statistics.median(self.seconds) if self.seconds else None,
            "fast_share": _share(self.fast, len(self.seconds)),
            "agreement": _share(self.agree, self.compared),
            "compared": self.compared,
            "gold_accuracy": _share(self.gold, self.gold_n),
            "gold_scored": self.gold_n,
            "tie_rate": _share(self.ties, n),
            "both_bad_rate": _share(self.both_bad, n),
            "revision_rate": _share(self.revised, n),
        }


def _share(part: float, whole: int) -> float | None:
    return part / whole if whole else None


def _majority_agreement(judged: Sequence[Judged]) -> list[tuple[float, int]]:
    """Per judgment: (agreement with the others' majority direction summed over its units, units).

    A unit scores 1 when the judgment takes the direction most other judgments took, 0 when it
    does not, and a share when the others are split (1/2 when two directions are level with
    it among them); units with no other judgment do not count.
    """
    signs: dict[Unit, list[int]] = defaultdict(lambda: [0, 0, 0])  # counts of -, 0, +
    for j in judged:
        for unit, value in j.values.items():
            signs[unit][(value > 0) - (value < 0) + 1] += 1
    result = []
    for j in judged:
        agree = 0.0
        compared = 0
        for unit, value in j.values.items():
            own = (value > 0) - (value < 0) + 1
            others = list(signs[unit])
            others[own] -= 1
            top = max(others)
            if top == 0:
                continue
            compared += 1
            if others[own] == top:
                agree += 1 / others.count(top)
        result.append((agree, compared))
    return result


def _blocks(rows: list[tuple[Judged, tuple[float, int]]], fast_seconds: float) -> list[dict[str, Any]]:
    """The rater's figures per block of consecutive judgments (at most MAX_BLOCKS blocks)."""
    size = max(MIN_BLOCK, math.ceil(len(rows) / MAX_BLOCKS))
    trend = []
    for start in range(0, len(rows), size):
        tally = _Tally()
        block = rows[start : start + size]
        for j, agreed in block:
            tally.add(j, agreed, fast_seconds)
        trend.append({"from": block[0][0].at, "to": block[-1][0].at, **tally.figures()})
    return trend


def holm(pvalues: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level `alpha`."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = [False] * len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - rank):
            break
        rejected[i] = True
    return rejected


def _mean_below(total: float, squares: float, n: int, reference: float) -> float:
    """One-sided p-value that the mean score (scores in 0..1, `n` of them) is below `reference`.

    A z-test with the scores' own variance (Bernoulli variance at the reference when that is
    larger, so that a few identical scores do not make the test overconfident).
    """
    mean = total / n
    variance = max(squares / n - mean * mean, reference * (1 - reference) / 2)
    return float(norm.cdf((mean - reference) / math.sqrt(variance / n)))


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"


@dataclass(frozen=True, slots=True)
class _Test:
    rater: str
    kind: str
    p: float
    text: str
    effect: bool  # the effect is large enough to be worth a flag


def _pool(tallies: dict[str, _Tally], rater: str, part: str, whole: str) -> float | None:
    """The other raters' pooled share (`part` / `whole` summed over everyone but `rater`)."""
    num = sum(getattr(t, part) for r, t in tallies.items() if r != rater)
    den = sum(len(v) if isinstance(v := getattr(t, whole), list) else v for r, t in tallies.items() if r != rater)
    return num / den if den else None


def _tests(rater: str, tallies: dict[str, _Tally], project_median: float | None, fast_seconds: float) -> list[_Test]:
    t = tallies[rater]
    tests = []
    if t.choices >= MIN_CHOICES:
        share = t.left / t.choices
        p = binomtest(t.left, t.choices, 0.5).pvalue
        side, pct = ("left", share) if share >= 0.5 else ("right", 1 - share)
        text = f"chooses the {side} response {pct:.0%} of the time ({_p(p)})"
        tests.append(_Test(rater, "position", p, text, abs(share - 0.5) >= MIN_LEFT_EFFECT))
    if len(t.seconds) >= MIN_TIMED and project_median is not None:
        median = statistics.median(t.seconds)
        pool = max(_pool(tallies, rater, "fast", "seconds") or 0.0, 0.01)
        p = binomtest(t.fast, len(t.seconds), pool, alternative="greater").pvalue
        text = (
            f"answers in {_seconds(median)} median; the project's median is {_seconds(project_median)} "
            f"({t.fast / len(t.seconds):.0%} of answers under {_seconds(fast_seconds)}, {_p(p)})"
        )
        tests.append(_Test(rater, "speed", p, text, median < fast_seconds))
    pool_agree = _pool(tallies, rater, "agree", "compared")
    if t.compared >= MIN_COMPARED and pool_agree is not None:
        share = t.agree / t.compared
        p = _mean_below(t.agree, t.agree_sq, t.compared, pool_agree)
        text = (
            f"agrees with the other raters {share:.0%} of the time; the project's raters agree "
            f"{pool_agree:.0%} ({_p(p)})"
        )
        tests.append(_Test(rater, "agreement", p, text, share <= pool_agree - MIN_AGREEMENT_GAP))
    pool_gold = _pool(tallies, rater, "gold", "gold_n")
    if t.gold_n >= MIN_GOLD and pool_gold is not None:
        share = t.gold / t.gold_n
        p = binomtest(round(t.gold), t.gold_n, pool_gold, alternative="less").pvalue
        text = f"is right on {share:.0%} of {t.gold_n} gold items; the other raters {pool_gold:.0%} ({_p(p)})"
        tests.append(_Test(rater, "gold", p, text, share <= pool_gold - MIN_GOLD_GAP))
    return tests


def rater_figures(
    judged: Sequence[Judged], members: Iterable[Rater], *, fast_seconds: float
) -> dict[str, dict[str, Any]]:
    """Every rater's figures, trend and flags, keyed by rater; judgments in time order."""
    raters = {r.rater: r for r in members}
    agreed = _majority_agreement(judged)
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    rows: dict[str, list[tuple[Judged, tuple[float, int]]]] = defaultdict(list)
    for j, a in zip(judged, agreed, strict=True):
        tallies[j.rater].add(j, a, fast_seconds)
        rows[j.rater].append((j, a))
    everyone = [s for j in judged if (s := j.seconds) is not None]
    project_median = statistics.median(everyone) if everyone else None

    tests = [
        test
        for rater, info in raters.items()
        if info.human and rater in tallies
        for test in _tests(rater, tallies, project_median, fast_seconds)
    ]
    rejected = holm([t.p for t in tests])
    flags: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for test, significant in zip(tests, rejected, strict=True):
        if significant and test.effect:
            flags[test.rater].append({"kind": test.kind, "text": test.text, "p": test.p})

    result = {}
    for rater, info in raters.items():
        t = tallies.get(rater, _Tally())
        figures = t.figures()
        gold_ci = wilson(t.gold, t.gold_n)
        left_p = binomtest(t.left, t.choices, 0.5).pvalue if t.choices else None
        result[rater] = {
            **figures,
            "gold_ci": list(gold_ci),
            "left_p": left_p,
            "skips": info.skips,
            "skip_rate": _share(info.skips, t.judgments + info.skips),
            "human": info.human,
            "flags": flags.get(rater, []),
            "trend": _blocks(rows.get(rater, []), fast_seconds),
        }
    return result


def project_figures(judged: Sequence[Judged]) -> dict[str, Any]:
    """The project's median active time and agreement with the leave-one-out majority."""
    seconds = [s for j in judged if (s := j.seconds) is not None]
    agreed = _majority_agreement(judged)
    compared = sum(c for _, c in agreed)
    return {
        "median_seconds": statistics.median(seconds) if seconds else None,
        "majority_agreement": _share(sum(a for a, _ in agreed), compared),
    }

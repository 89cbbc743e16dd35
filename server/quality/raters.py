"""Each rater's reliability and biases, and the flags an admin should look at (pure: no database).

Per rater, from their judgments:
- agreement with the label left one out: on each unit (item, candidate pair) they judged, the
  label the *other* human judgments give under the project's rater model (Dawid-Skene,
  server/quality/aggregate.py: each weighted by its rater's estimated confusion), or the gold
  answer where the item has one, and whether theirs is the same (`label_agreement`). At overlap 3
  a plain majority of the two others is split a third of the time and, in a crowd with a third of
  careless raters, often wrong; the weighted label is right more often, so a random rater (0.50)
  stands further from honest ones;
- gold accuracy: the mean score of their scored gold judgments (server/quality/gold.py);
- position bias: the share of their choices on two-candidate items that went to the candidate
  shown first (on the left); the shown order is random per assignment, so a fair rater sits
  near 0.5;
- speed: the median active time, and the share of judgments faster than the project's threshold;
- tie, both-bad, skip and revision rates;
- the same figures per block of their judgments in time order (the trend).

Flags come from tests, one per (rater, question): an exact binomial test of the left share
against 0.5 (two-sided), of the fast share against the other raters' (greater), of the agreement
and the gold accuracy against the other raters' (less). The agreement test is a z-test on the
*support* (each unit scored by the probability the others' label gives the rater's answer, which
adds little noise where the others split), against the median of the other human raters not
flagged on position or speed (a first pass finds those). The p-values are corrected in two
stages, because a flag is about a rater (`corrected`): raters are selected by the
Benjamini-Hochberg procedure on one p-value each (the smallest of their tests, times their
number), which keeps the expected share of honest raters among the flagged ones under FLAG_FDR
(3%; one minus a flag's precision), and a selected rater's tests are then corrected by Holm's
procedure at that rate scaled by the share of raters selected (Benjamini and Bogomolov, 2014).
With no careless rater in the project every flag is wrong, and the procedure then bounds the
chance of any flag, as a family-wise correction would. A flag also needs a minimum sample and a
minimum size of effect, so that noise on an honest rater flags nothing. Flags are sentences for
admins, with the numbers that justify them.
"""

import math
import statistics
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.quality import aggregate
from server.quality.agreement import Unit
from server.quality.gold import wilson

# The expected share of flagged raters flagged wrongly (the false discovery rate over raters): 3%, where
# 5% is usual, because the expected share is an average over projects and the bar is a flag
# precision of 0.95 (docs/BENCHMARKS.md, "Flag precision and recall", draws the curve).
FLAG_FDR = 0.03
MIN_CHOICES = 20  # two-candidate choices before a position flag
MIN_TIMED = 20  # timed judgments before a speed flag
MIN_COMPARED = 20  # units compared with their label left one out before an agreement flag
MIN_GOLD = 10  # scored gold judgments before a gold flag
MIN_LEFT_EFFECT = 0.15  # |left share - 0.5|
MIN_AGREEMENT_GAP = 0.05  # below the median rater's agreement
CHANCE_Z = 1.645  # an agreement flag needs agreement within this many standard errors above a coin's (5%)
MIN_GOLD_GAP = 0.15  # below the other raters' gold accuracy
MAX_BLOCKS = 12  # trend rows per rater
MIN_BLOCK = 25
# The cached figures' name (server/quality/cache.py), with the speed threshold; the number is the
# payload's shape or meaning (3: subtask figures and the weighted-label agreement; 4: the agreement
# flag tested on the support; 5: flags corrected per rater, then per test), so an older one is not read.
SNAPSHOT = "reliability.5"


def snapshot_name(fast_seconds: float) -> str:
    """The name the figures of a project with this speed threshold are cached under."""
    return f"{SNAPSHOT}:{fast_seconds:g}"


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
    human: bool = True  # a human's judgment; a model judge's is compared with the humans, never counted in


@dataclass(frozen=True, slots=True)
class Rater:
    rater: str
    human: bool = True
    skips: int = 0


@dataclass(slots=True)
class Tally:
    """Counts over a set of judgments (a rater's, or one block of them): what the figures and tests need.

    Built from `Judged` rows here (`tally`), or by SQL aggregates (server/quality/reliability.py).
    """

    judgments: int = 0
    left: int = 0  # two-candidate choices of the candidate shown first
    choices: int = 0  # two-candidate choices
    timed: int = 0  # judgments with an active time
    median: float | None = None  # median active seconds
    fast: int = 0  # judgments faster than the threshold
    agree: float = 0.0  # sum of unit scores against the label left one out (`label_agreement`)
    agree_sq: float = 0.0  # sum of squared unit scores (the test's variance)
    compared: int = 0  # units scored
    support: float = 0.0  # sum over the units scored of the probability the others give the rater's answer
    support_sq: float = 0.0  # sum of its squares (the agreement test's variance)
    gold: float = 0.0  # sum of gold scores
    gold_n: int = 0  # scored gold judgments
    ties: int = 0
    both_bad: int = 0
    revised: int = 0
    start: float | None = None  # time of the first judgment (epoch seconds)
    end: float | None = None

    def figures(self) -> dict[str, Any]:
        n = self.judgments
        return {
            "judgments": n,
            "left_share": _share(self.left, self.choices),
            "choices": self.choices,
            "median_seconds": self.median,
            "fast_share": _share(self.fast, self.timed),
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


# (sum of unit scores, sum of their squares, units scored, and the sum and sum of squares of the
# probability the others give each unit's answer: aggregate.leave_one_out with `soft`)
Scores = tuple[float, float, int, float, float]


def _label(value: int) -> int:
    """A unit's value (agreement.pair_values: + a preferred, - b, 0 a tie) as a Dawid-Skene class."""
    return aggregate.A if value > 0 else aggregate.B if value < 0 else aggregate.TIE


def observations(judged: Iterable[Judged]) -> list[aggregate.Observation]:
    """Every unit value of these judgments as the rater model's observations (rater, unit, class)."""
    return [
        aggregate.Observation(unit=unit, rater=j.rater, label=_label(value))
        for j in judged
        for unit, value in j.values.items()
    ]


def label_agreement(
    judged: Sequence[Judged], fit: aggregate.Fit, gold: Mapping[Unit, int] | None = None
) -> list[Scores]:
    """Per judgment: its unit scores against the unit's label left one out (aggregate.leave_one_out).

    The label of a unit is the one the *other* human judgments give under the project's rater model
    (Dawid-Skene: each weighted by its rater's estimated confusion), or its gold answer where the
    item has one. Model judges' verdicts are scored against the humans' and never make anyone's
    label. A unit scores 1 when the judgment gives its label, 0 when not, and 1/k when k classes are
    level at the top, its own one of them; units with no other human judgment and no gold do not count.
    """
    obs = observations(judged)
    counted = [j.human for j in judged for _ in j.values]
    known: dict[Hashable, int] = {u: c for u, c in (gold or {}).items()}
    scores = aggregate.leave_one_out(fit, obs, counted=counted, gold=known)
    support = aggregate.leave_one_out(fit, obs, counted=counted, gold=known, soft=True)
    result = []
    at = 0
    for j in judged:
        mine, likely = scores[at : at + len(j.values)], support[at : at + len(j.values)]
        at += len(j.values)
        mine, likely = mine[~np.isnan(mine)], likely[~np.isnan(likely)]
        result.append(
            (
                float(mine.sum()),
                float((mine * mine).sum()),
                len(mine),
                float(likely.sum()),
                float((likely * likely).sum()),
            )
        )
    return result


def _tally(rows: Sequence[tuple[Judged, Scores]], fast_seconds: float) -> Tally:
    t = Tally(start=rows[0][0].at if rows else None, end=rows[-1][0].at if rows else None)
    seconds = []
    for j, (total, squares, compared, support, support_sq) in rows:
        t.judgments += 1
        if j.left is not None:
            t.choices += 1
            t.left += j.left
        if j.seconds is not None:
            seconds.append(j.seconds)
            t.fast += j.seconds < fast_seconds
        t.agree += total
        t.agree_sq += squares
        t.compared += compared
        t.support += support
        t.support_sq += support_sq
        if j.gold_score is not None:
            t.gold += j.gold_score
            t.gold_n += 1
        t.ties += j.tie
        t.both_bad += j.both_bad
        t.revised += j.revised
    t.timed = len(seconds)
    t.median = statistics.median(seconds) if seconds else None
    return t


def block_size(judgments: int) -> int:
    """Judgments per trend block for a rater with this many: at most MAX_BLOCKS blocks."""
    return max(MIN_BLOCK, math.ceil(judgments / MAX_BLOCKS))


@dataclass(frozen=True, slots=True)
class Tallies:
    raters: dict[str, Tally]
    blocks: dict[str, list[Tally]]  # each rater's trend, oldest block first
    median_seconds: float | None  # over every judgment of the project
    label_agreement: float | None  # every judgment's units against their label left one out
    prior: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # the rater model's class prior (A, B, tie)

    @property
    def chance(self) -> float:
        """The agreement of a coin choosing between the two responses of each unit, against labels drawn
        from the class prior: whatever the labels, it is right half the time on those that are not ties."""
        a, b, _ = self.prior
        return (a + b) / 2


def tally(
    judged: Sequence[Judged],
    *,
    fast_seconds: float,
    fit: aggregate.Fit | None = None,
    gold: Mapping[Unit, int] | None = None,
) -> Tallies:
    """The counts of every rater and trend block, from judgments in time order.

    `fit`: the project's rater model (server/quality/weighted.py); fitted here on these judgments
    and `gold` (unit -> class) when not given."""
    if fit is None:
        fit = aggregate.fit(observations(judged), gold={unit: cls for unit, cls in (gold or {}).items()})
    scores = label_agreement(judged, fit, gold)
    rows: dict[str, list[tuple[Judged, Scores]]] = defaultdict(list)
    for j, score in zip(judged, scores, strict=True):
        rows[j.rater].append((j, score))
    everyone = [s for j in judged if (s := j.seconds) is not None]
    compared = sum(s[2] for s in scores)
    return Tallies(
        raters={r: _tally(own, fast_seconds) for r, own in rows.items()},
        blocks={
            r: [
                _tally(own[i : i + block_size(len(own))], fast_seconds)
                for i in range(0, len(own), block_size(len(own)))
            ]
            for r, own in rows.items()
        },
        median_seconds=statistics.median(everyone) if everyone else None,
        label_agreement=_share(sum(s[0] for s in scores), compared),
        prior=(float(fit.prior[0]), float(fit.prior[1]), float(fit.prior[2])),
    )


def holm(pvalues: Sequence[float], alpha: float) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level `alpha`."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = [False] * len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - rank):
            break
        rejected[i] = True
    return rejected


def benjamini_hochberg(pvalues: Sequence[float], q: float) -> list[bool]:
    """Which hypotheses the Benjamini-Hochberg step-up procedure rejects at false discovery rate `q`:
    the k smallest, for the largest k whose p-value is at most q * k / m."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    cut = max((rank for rank, i in enumerate(order, 1) if pvalues[i] <= q * rank / m), default=0)
    rejected = [False] * m
    for i in order[:cut]:
        rejected[i] = True
    return rejected


def corrected(families: Sequence[Sequence[float]], q: float) -> list[list[bool]]:
    """Which p-values of each family (a rater's tests) are significant, in two stages (Benjamini and
    Bogomolov, 2014, with Bonferroni's combination and Holm's procedure): the families are selected by
    Benjamini-Hochberg at `q` on one p-value each (the smallest times the family's size), then each
    selected family's p-values are corrected by Holm at `q` times the share of families selected.
    The expected share of wrongly selected families stays under `q`; a family with no test is never
    selected."""
    tested = [i for i, family in enumerate(families) if family]
    combined = [min(1.0, len(families[i]) * min(families[i])) for i in tested]
    selected = [i for i, chosen in zip(tested, benjamini_hochberg(combined, q), strict=True) if chosen]
    level = q * len(selected) / len(tested) if tested else 0.0
    out = [[False] * len(family) for family in families]
    for i in selected:
        out[i] = holm(families[i], level)
    return out


def _mean_below(total: float, squares: float, n: int, reference: float) -> float:
    """One-sided p-value that the mean score (scores in 0..1, `n` of them) is below `reference`.

    A z-test with the scores' own variance (Bernoulli variance at the reference when that is
    larger, so that a few identical scores do not make the test overconfident).
    """
    mean = total / n
    variance = max(squares / n - mean * mean, reference * (1 - reference) / 2)
    if variance <= 0:  # every score the same and a reference of 0 or 1: nothing varies to test
        return 0.0 if mean < reference else 1.0
    from scipy.stats import norm  # imported on first use (the rater loop never needs scipy)

    return float(norm.cdf((mean - reference) / math.sqrt(variance / n)))


def _fair_coin(k: int, n: int) -> float:
    """Exact two-sided binomial p-value of k in n against 0.5 (symmetric: twice the smaller tail)."""
    from scipy.stats import binom

    return float(min(1.0, 2 * min(binom.cdf(k, n, 0.5), binom.sf(k - 1, n, 0.5))))


def _below(k: int, n: int, p0: float) -> float:
    """Exact one-sided binomial p-value of at most k in n against p0."""
    from scipy.stats import binom

    return float(binom.cdf(k, n, p0))


def _above(k: int, n: int, p0: float) -> float:
    """Exact one-sided binomial p-value of at least k in n against p0."""
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, p0))


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


def _pool(tallies: dict[str, Tally], rater: str, part: str, whole: str) -> float | None:
    """The other raters' pooled share (`part` / `whole` summed over everyone but `rater`)."""
    num = sum(getattr(t, part) for r, t in tallies.items() if r != rater)
    den = sum(getattr(t, whole) for r, t in tallies.items() if r != rater)
    return num / den if den else None


def _typical(tallies: dict[str, Tally], rater: str, reference: set[str], part: str) -> float | None:
    """The median of `part` / compared over the other raters of `reference` with enough compared
    units: the reference a rater's agreement is tested against (`support`) and shown beside it
    (`agree`). A median, not the pooled share: the careless raters the test looks for would drag a
    pooled share down towards themselves (a third of the issue's crowd)."""
    shares = [
        getattr(t, part) / t.compared
        for r, t in tallies.items()
        if r != rater and r in reference and t.compared >= MIN_COMPARED
    ]
    return statistics.median(shares) if shares else None


def _tests(rater: str, counts: Tallies, fast_seconds: float, reference: set[str]) -> list[_Test]:
    """The tests of one rater; `reference`: the raters whose median agreement theirs is tested against."""
    tallies, project_median = counts.raters, counts.median_seconds
    t = tallies[rater]
    tests = []
    if t.choices >= MIN_CHOICES:
        share = t.left / t.choices
        p = _fair_coin(t.left, t.choices)
        side, pct = ("left", share) if share >= 0.5 else ("right", 1 - share)
        text = f"chooses the {side} response {pct:.0%} of the time ({_p(p)})"
        tests.append(_Test(rater, "position", p, text, abs(share - 0.5) >= MIN_LEFT_EFFECT))
    if t.timed >= MIN_TIMED and t.median is not None and project_median is not None:
        median = t.median
        pool = max(_pool(tallies, rater, "fast", "timed") or 0.0, 0.01)
        p = _above(t.fast, t.timed, pool)
        text = (
            f"answers in {_seconds(median)} median; the project's median is {_seconds(project_median)} "
            f"({t.fast / t.timed:.0%} of answers under {_seconds(fast_seconds)}, {_p(p)})"
        )
        tests.append(_Test(rater, "speed", p, text, median < fast_seconds))
    typical = _typical(tallies, rater, reference, "support")
    chance = counts.chance
    if t.compared >= MIN_COMPARED and typical is not None:
        # Tested on the support (the probability the others' label gives each answer: near a half on
        # units they split, so those add little noise), shown as the plain share that matched.
        support = t.support / t.compared
        p = _mean_below(t.support, t.support_sq, t.compared, typical)
        spread = math.sqrt(max(t.support_sq / t.compared - support * support, 0.0) / t.compared)
        shown = _typical(tallies, rater, reference, "agree")
        text = (
            f"agrees {t.agree / t.compared:.0%} of the time with the other raters' weighted label (or the gold "
            f"answer), as a coin would ({chance:.0%}); the project's median rater agrees {shown:.0%} ({_p(p)})"
        )
        # Below the median rater, and no further above chance than noise: answers like a coin (an honest
        # rater who is merely the weakest of the project, or paired with weak raters, is above chance).
        effect = support <= typical - MIN_AGREEMENT_GAP and support <= chance + CHANCE_Z * spread
        tests.append(_Test(rater, "agreement", p, text, effect))
    pool_gold = _pool(tallies, rater, "gold", "gold_n")
    if t.gold_n >= MIN_GOLD and pool_gold is not None:
        share = t.gold / t.gold_n
        p = _below(round(t.gold), t.gold_n, pool_gold)
        text = f"is right on {share:.0%} of {t.gold_n} gold items; the other raters {pool_gold:.0%} ({_p(p)})"
        tests.append(_Test(rater, "gold", p, text, share <= pool_gold - MIN_GOLD_GAP))
    return tests


def _flagged(tallies: Tallies, humans: set[str], fast_seconds: float, *, reference: set[str]) -> dict[str, list[_Test]]:
    """The tests that flag, per rater: significant after the correction over every human rater
    (`corrected`), and large enough."""
    families = [_tests(rater, tallies, fast_seconds, reference) for rater in sorted(humans & tallies.raters.keys())]
    flagged: dict[str, list[_Test]] = defaultdict(list)
    for family, significant in zip(families, corrected([[t.p for t in f] for f in families], FLAG_FDR), strict=True):
        for test, flags in zip(family, significant, strict=True):
            if flags and test.effect:
                flagged[test.rater].append(test)
    return flagged


def figures(tallies: Tallies, members: Iterable[Rater], *, fast_seconds: float) -> dict[str, dict[str, Any]]:
    """Every member's figures, trend and flags, keyed by rater."""
    raters = {r.rater: r for r in members}
    humans = {r for r, info in raters.items() if info.human}
    flagged = _flagged(tallies, humans, fast_seconds, reference=humans)
    # The median agreement a rater is tested against leaves out the raters flagged for answering by
    # position or in no time: what they agree with says nothing of how a rater who reads agrees.
    off = {r for r, tests in flagged.items() if any(t.kind in ("position", "speed") for t in tests)}
    if off:
        flagged = _flagged(tallies, humans, fast_seconds, reference=humans - off)
    flags = {r: [{"kind": t.kind, "text": t.text, "p": t.p} for t in tests] for r, tests in flagged.items()}

    result = {}
    for rater, info in raters.items():
        t = tallies.raters.get(rater, Tally())
        result[rater] = {
            **t.figures(),
            "gold_ci": list(wilson(t.gold, t.gold_n)),
            "left_p": _fair_coin(t.left, t.choices) if t.choices else None,
            "skips": info.skips,
            "skip_rate": _share(info.skips, t.judgments + info.skips),
            "human": info.human,
            "flags": flags.get(rater, []),
            "trend": [{"from": b.start, "to": b.end, **b.figures()} for b in tallies.blocks.get(rater, [])],
        }
    return result


def rater_figures(
    judged: Sequence[Judged],
    members: Iterable[Rater],
    *,
    fast_seconds: float,
    gold: Mapping[Unit, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every member's figures, trend and flags from judgments in time order (`tally`, then `figures`)."""
    counts = tally(judged, fast_seconds=fast_seconds, gold=gold)
    return figures(counts, members, fast_seconds=fast_seconds)

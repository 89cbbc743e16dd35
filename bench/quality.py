"""Flag precision and recall on a simulated crowd (issue 10, "Proof").

    .venv/bin/python -m bench.quality [--seeds 20] [--items 600]

Each seed simulates the issue's scenario with bench/crowd.py (600 two-candidate items at overlap
3, gold_rate 0.1, 20 raters: 14 honest ones right 70-90% of the time, 3 random, 2 always-left,
1 instant) and runs the server's own statistics on it (server/quality/raters.py and
agreement.py, the functions the quality page uses). A flagged rater is one with any flag; the
careless raters are the random, always-left and instant ones. Precision and recall are pooled
over the seeds, with Wilson 95% intervals. With the suspension rule on, a rater is suspended by
its gold part (`suspended`, applied after each gold judgment) or by its agreement part: a rater
flagged on agreement in the figures is suspended at their next gold judgment (server/quality/
rules.py); here, the agreement flag of the figures over the whole run.
"""

import argparse
import statistics
from dataclasses import dataclass
from typing import Any

from bench.crowd import Crowd, simulate
from server.quality import aggregate
from server.quality import raters as rater_tests
from server.quality.agreement import Unit, agreement, pair_values
from server.quality.gold import wilson
from server.quality.raters import Judged, Rater, rater_figures
from server.quality.rules import MIN_COMPARED_TO_SUSPEND, breach

FAST_SECONDS = 3.0  # the project's threshold in the simulation (the setting's default)
# The gold suspension rule as a project would set it for this crowd (about 10 gold judgments each):
# suspend when fewer than 60% of the last 8 scored gold answers matched.
SUSPENSION_WINDOW = 8
SUSPENSION_THRESHOLD = 0.6


def suspended(crowd: Crowd, *, window: int = SUSPENSION_WINDOW, threshold: float = SUSPENSION_THRESHOLD) -> set[int]:
    """The raters the gold suspension rule (server/quality/rules.py `breach`) suspends, applied after
    each of their gold judgments in the order they were sent, as the submit does."""
    out = set()
    scored: dict[int, list[float]] = {}
    for v in sorted(crowd.votes, key=lambda v: (v.rater, v.order)):
        if not v.gold or v.rater in out:
            continue
        scored.setdefault(v.rater, []).append(float(v.choice == crowd.truth[v.item]))
        if breach(scored[v.rater], window=window, threshold=threshold) is not None:
            out.add(v.rater)
    return out


# The live replay's figures are recomputed after this many stored votes (the server recomputes them in
# the background after gold verdicts, at most once a minute: here, every 5% of the run's 1,980 votes).
LIVE_EVERY = 100


def _suspends_on_agreement(figures: dict[str, dict[str, Any]]) -> set[int]:
    """The raters the rule's agreement part suspends at their next gold verdict (rules.agreement_flag)."""
    return {
        int(r)
        for r, f in figures.items()
        if any(x["kind"] == "agreement" for x in f["flags"]) and f["compared"] >= MIN_COMPARED_TO_SUSPEND
    }


def live(
    crowd: Crowd,
    *,
    every: int = LIVE_EVERY,
    window: int = SUSPENSION_WINDOW,
    threshold: float = SUSPENSION_THRESHOLD,
) -> set[int]:
    """The raters the suspension rule suspends when it is on while the project runs, as the server
    applies it (server/quality/rules.py): votes in time order; the quality figures recomputed after
    every `every` stored votes from the votes stored so far; at each gold vote, the gold part on the
    rater's scored gold answers, then the agreement part on the last computed figures. A suspended
    rater's later votes are never sent (their items get fewer votes; the server would give them to
    other raters)."""
    gold = gold_units(crowd)
    members = [Rater(str(r.index)) for r in crowd.raters]
    votes = sorted(crowd.votes, key=lambda v: (v.order, v.rater))  # the order judged() uses
    out: set[int] = set()
    scored: dict[int, list[float]] = {}
    kept: list[Judged] = []
    on_agreement: set[int] = set()
    for v, row in zip(votes, judged(crowd), strict=True):
        if v.rater in out:
            continue
        kept.append(row)
        if len(kept) % every == 0:
            on_agreement = _suspends_on_agreement(rater_figures(kept, members, fast_seconds=FAST_SECONDS, gold=gold))
        if v.gold:
            scored.setdefault(v.rater, []).append(float(v.choice == crowd.truth[v.item]))
            if breach(scored[v.rater], window=window, threshold=threshold) is not None or v.rater in on_agreement:
                out.add(v.rater)
    return out


def gold_units(crowd: Crowd) -> dict[Unit, int]:
    """The gold items' answers as the rater model takes them (unit -> class), as the server reads them
    from `items.gold` (aggregate.gold_labels)."""
    return {(item, 0, 1): aggregate.A if crowd.truth[item] == 0 else aggregate.B for item in crowd.gold_items}


def judged(crowd: Crowd) -> list[Judged]:
    """The crowd's votes as the server's statistics take them, in time order."""
    rows = []
    for v in sorted(crowd.votes, key=lambda v: (v.order, v.rater)):
        gold_score = float(v.choice == crowd.truth[v.item]) if v.gold else None
        values = {(v.item, a, b): value for (a, b), value in pair_values(2, choice=v.choice, ranking=None,
                  strength=None, tie=False, both_bad=False).items()}  # fmt: skip
        rows.append(
            Judged(
                rater=str(v.rater),
                values=values,
                left=v.choice == v.shown_first,
                seconds=v.seconds,
                tie=False,
                both_bad=False,
                revised=False,
                at=float(v.order),
                gold_score=gold_score,
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class SeedResult:
    seed: int
    flagged: frozenset[int]
    careless: frozenset[int]
    alpha: float | None
    pairwise: float | None
    kinds: dict[int, str]  # rater -> kind
    suspended: frozenset[int]  # by the gold suspension rule
    agreement_flagged: frozenset[int]  # what the rule's agreement part suspends, on the figures of the whole run
    agreement: dict[int, float]  # rater -> agreement with the label left one out
    live_agreement: frozenset[int]  # suspended by the rule replayed live, its gold part off (threshold 0)
    live_both: frozenset[int]  # suspended by the rule replayed live, both parts on

    @property
    def true_positives(self) -> int:
        return len(self.flagged & self.careless)


def run_seed(seed: int, *, items: int = 600, honest_only: bool = False) -> SeedResult:
    crowd = (
        simulate(seed, items=items, honest=20, random_raters=0, left=0, instant=0)
        if honest_only
        else simulate(seed, items=items)
    )
    rows = judged(crowd)
    members = [Rater(str(r.index)) for r in crowd.raters]
    figures = rater_figures(rows, members, fast_seconds=FAST_SECONDS, gold=gold_units(crowd))
    flagged = frozenset(int(r) for r, f in figures.items() if f["flags"])
    units: dict[object, list[int]] = {}
    for j in rows:
        for unit, value in j.values.items():
            units.setdefault(unit, []).append(value)
    agreed = agreement(units.values(), level="nominal", bootstrap=200)
    kinds = {r.index: r.kind for r in crowd.raters}
    by_agreement = frozenset(_suspends_on_agreement(figures))
    gold_rule = frozenset(suspended(crowd))
    shares = {int(r): f["agreement"] for r, f in figures.items() if f["agreement"] is not None}
    return SeedResult(
        seed,
        flagged,
        crowd.careless,
        agreed.alpha,
        agreed.pairwise,
        kinds,
        gold_rule,
        by_agreement,
        shares,
        frozenset(live(crowd, threshold=0.0)),
        frozenset(live(crowd)),
    )


@dataclass(frozen=True, slots=True)
class Summary:
    seeds: int
    flagged: int
    careless: int
    true_positives: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.flagged if self.flagged else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.careless if self.careless else 1.0

    @property
    def precision_ci(self) -> tuple[float, float]:
        return wilson(self.true_positives, self.flagged)

    @property
    def recall_ci(self) -> tuple[float, float]:
        return wilson(self.true_positives, self.careless)


def summarize(results: list[SeedResult]) -> Summary:
    return Summary(
        seeds=len(results),
        flagged=sum(len(r.flagged) for r in results),
        careless=sum(len(r.careless) for r in results),
        true_positives=sum(r.true_positives for r in results),
    )


def _holm_over_every_test(families: list[list[float]], q: float) -> list[list[bool]]:
    """The correction the flags used before 2026-12-01: Holm at a family-wise 5% over every test."""
    flat = rater_tests.holm([p for family in families for p in family], 0.05)
    out, start = [], 0
    for family in families:
        out.append(flat[start : start + len(family)])
        start += len(family)
    return out


def oracle_bound(answers: tuple[int, ...] = (100, 200, 300), cuts: tuple[float, ...] = (0.58, 0.60, 0.62)) -> None:
    """An estimate, not a simulation: the best a suspension rule could do if it knew every true label.
    It judges a rater on `n` answers, suspending below `cut` right; a random rater gets Binomial(n,
    0.5) right, the weakest honest one Binomial(n, 0.7). Prints the random raters it would miss, the
    chance it catches all 60 of the issue's 20 seeds (3 random raters each), and the 70% raters it
    would suspend."""
    from scipy.stats import binom

    for n in answers:
        for cut in cuts:
            k = round(cut * n)  # suspended with fewer than k right
            missed = float(binom.sf(k - 1, n, 0.5))
            suspended = float(binom.cdf(k - 1, n, 0.7))
            print(
                f"{n} answers, suspend below {cut:.0%}: random raters missed {missed:.3f}, "
                f"all 60 caught with probability {(1 - missed) ** 60:.2f}, 70% raters suspended {suspended:.3f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--oracle-bound",
        action="store_true",
        help="print the estimate of what a rule that knew every true label could do (binomial), and stop",
    )
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument(
        "--fdr",
        type=float,
        default=rater_tests.FLAG_FDR,
        help="the flags' false discovery rate over raters (server/quality/raters.py FLAG_FDR), to draw the trade-off",
    )
    parser.add_argument(
        "--chance-z",
        type=float,
        default=rater_tests.CHANCE_Z,
        help="the agreement flag's coin condition (standard errors above a coin's), to draw the trade-off",
    )
    parser.add_argument(
        "--holm",
        action="store_true",
        help="correct every rater's tests together by Holm at 5%%, as the flags did before 2026-12-01 (to compare)",
    )
    parser.add_argument(
        "--honest-only",
        action="store_true",
        help="20 honest raters and no careless one: every flag is wrong (how often does a project show one?)",
    )
    args = parser.parse_args()
    if args.oracle_bound:
        oracle_bound()
        return
    if args.holm:
        rater_tests.corrected = _holm_over_every_test
    rater_tests.CHANCE_Z = args.chance_z
    rater_tests.FLAG_FDR = args.fdr
    results = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        r = run_seed(seed, items=args.items, honest_only=args.honest_only)
        results.append(r)
        missed = sorted(r.careless - r.flagged)
        wrong = sorted(r.flagged - r.careless)
        print(f"seed {seed:2}: flagged {len(r.flagged):2}, careless caught {r.true_positives}/{len(r.careless)}, "
              f"missed {missed}, honest flagged {wrong}, alpha {r.alpha:.3f}, pairwise {r.pairwise:.3f}")  # fmt: skip
    s = summarize(results)
    medians = [statistics.median(r.agreement.values()) for r in results]
    print(f"median rater's agreement per seed: mean {statistics.mean(medians):.3f}, "
          f"SD {statistics.stdev(medians) if len(medians) > 1 else 0.0:.3f}")  # fmt: skip
    for kind in ("random", "left", "instant", "honest"):
        raters = [(r, i) for r in results for i, k in r.kinds.items() if k == kind]
        if not raters:
            continue
        caught = sum(i in r.flagged for r, i in raters)
        low, high = wilson(caught, len(raters))
        share = caught / len(raters)
        print(f"{kind:8} raters flagged: {caught}/{len(raters)} ({share:.0%}, 95% CI {low:.0%}-{high:.0%})")
        agree = [r.agreement[i] for r, i in raters if i in r.agreement]
        spread = statistics.stdev(agree) if len(agree) > 1 else 0.0
        print(f"{kind:8} raters' agreement: mean {statistics.mean(agree):.3f}, SD {spread:.3f}, "
              f"range {min(agree):.3f}-{max(agree):.3f}")  # fmt: skip
        out = sum(i in r.suspended for r, i in raters)
        low, high = wilson(out, len(raters))
        print(
            f"{kind:8} raters suspended by the gold rule (last {SUSPENSION_WINDOW}, below "
            f"{SUSPENSION_THRESHOLD:.0%}): {out}/{len(raters)} ({out / len(raters):.0%}, 95% CI {low:.0%}-{high:.0%})"
        )
        for label, which in (
            ("by the rule's agreement part on the whole run's figures", "agreement_flagged"),
            ("by the rule replayed live, gold part off", "live_agreement"),
            (f"by the rule replayed live, gold part on (last {SUSPENSION_WINDOW}, below 60%)", "live_both"),
        ):
            out = sum(i in getattr(r, which) for r, i in raters)
            low, high = wilson(out, len(raters))
            print(
                f"{kind:8} raters suspended {label}: {out}/{len(raters)} "
                f"({out / len(raters):.0%}, 95% CI {low:.0%}-{high:.0%})"
            )
    shown = sum(1 for r in results if r.flagged - r.careless)
    low, high = wilson(shown, len(results))
    share = shown / len(results)
    print(f"projects showing an honest rater a flag: {shown}/{len(results)} ({share:.1%}, 95% CI {low:.1%}-{high:.1%})")
    print(
        f"{s.seeds} seeds: precision {s.precision:.3f} (95% CI {s.precision_ci[0]:.3f}-{s.precision_ci[1]:.3f}, "
        f"{s.true_positives}/{s.flagged}), recall {s.recall:.3f} (95% CI {s.recall_ci[0]:.3f}-{s.recall_ci[1]:.3f}, "
        f"{s.true_positives}/{s.careless})"
    )


if __name__ == "__main__":
    main()

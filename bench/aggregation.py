"""`python -m bench.aggregation`: weighted (Dawid-Skene) labels against majority (issue 10, "Proof").

1. Recovery (`recovery`): the issue's crowd (bench/crowd.py: 600 items, overlap 3, gold_rate 0.1,
   20 raters: 14 honest at 70-90%, 3 random, 2 always-left, 1 instant) over 20 seeds. Per seed,
   the share of work items whose true label each aggregation recovers: majority of the three
   votes, and the posterior label of server/quality/aggregate.py (gold clamped). Reported: each
   mean with a 95% t-interval over seeds, and the paired difference with its interval.
2. Training (`training`): the trainer's own model (server/trainer/model.py: `fit`, hashed n-grams,
   Bradley-Terry) on the shared HH-RLHF harmless-base sample with the same simulated crowd judging
   it. Per seed, a fifth of the opening prompts is held out (its pairs keep the dataset's labels
   for scoring); the crowd judges the rest (a crowd item's "truly better" candidate is the dataset's
   chosen reply, so an honest rater agrees with the dataset at their accuracy); gold items are the
   crowd's gold share of those rows (their dataset label is the gold answer) and, as in exports,
   are left out of training. Three label sources train one model each:
   - judgments: every judgment as its own pair (the worker's `--labels judgments` without combining),
   - majority: one pair per item, the majority of its three votes (`--labels majority`),
   - weighted: one pair per item, its Dawid-Skene label (`--labels weighted`);
   plus the dataset's own labels as the reference. Held-out accuracy against the dataset's labels,
   mean and 95% t-interval over seeds, and paired differences. Skipped with the reason when the
   sample is absent.
   Beside it, what `assay worker --labels weighted` would report on the same crowd-labelled items
   (`model.compare_labels`: its own 20% split of them, each model against its own labels, no
   dataset labels), to see whether that comparison points the same way as the one against truth.
"""

import argparse
import hashlib
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from scipy import stats

from bench.crowd import Crowd, simulate
from server.quality import aggregate as ag
from server.trainer.model import HashedNgrams, Pair, compare_labels, fit, opening_prompt

console = Console(stderr=True)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


def t_interval(values: Sequence[float]) -> Interval:
    """Mean and 95% Student-t interval of per-seed values."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean, mean, mean, n)
    half = float(stats.t.ppf(0.975, n - 1)) * statistics.stdev(values) / n**0.5
    return Interval(mean, mean - half, mean + half, n)


def observations(crowd: Crowd) -> tuple[list[ag.Observation], dict[int, int]]:
    """Votes as Dawid-Skene observations (candidates in upload order 0, 1) and the gold classes."""
    obs = [ag.Observation(unit=v.item, rater=v.rater, label=ag.A if v.choice == 0 else ag.B) for v in crowd.votes]
    gold = {g: ag.A if crowd.truth[g] == 0 else ag.B for g in crowd.gold_items}
    return obs, gold


@dataclass(frozen=True)
class Labels:
    majority: dict[int, int]  # work item -> class (A or B); overlap 3 of two candidates never splits
    weighted: dict[int, int]
    confidence: dict[int, float]


def labels(crowd: Crowd) -> Labels:
    obs, gold = observations(crowd)
    fitted = ag.fit(obs, gold=gold)
    votes: dict[int, list[int]] = {}
    for o in obs:
        if o.unit not in gold:
            votes.setdefault(int(o.unit), []).append(o.label)
    majority = {u: m for u, v in votes.items() if (m := ag.majority(v)) is not None}
    weighted, confidence = {}, {}
    for u in votes:
        weighted[u], confidence[u] = ag.label(fitted.posteriors[u])
    return Labels(majority=majority, weighted=weighted, confidence=confidence)


def recovery(seeds: Iterable[int], **crowd_options: Any) -> dict[str, Any]:
    """Share of true labels recovered per seed by majority and by weighted labels, with intervals."""
    per_seed = []
    for seed in seeds:
        crowd = simulate(seed, **crowd_options)
        found = labels(crowd)
        truth = {u: ag.A if crowd.truth[u] == 0 else ag.B for u in found.weighted}
        n = len(truth)
        per_seed.append(
            {
                "seed": seed,
                "items": n,
                "majority": sum(found.majority.get(u) == t for u, t in truth.items()) / n,
                "weighted": sum(found.weighted[u] == t for u, t in truth.items()) / n,
            }
        )
    majority = [s["majority"] for s in per_seed]
    weighted = [s["weighted"] for s in per_seed]
    return {
        "per_seed": per_seed,
        "majority": t_interval(majority),
        "weighted": t_interval(weighted),
        "difference": t_interval([w - m for w, m in zip(weighted, majority, strict=True)]),
        "weighted_better_seeds": sum(w > m for w, m in zip(weighted, majority, strict=True)),
    }


# --- part 2: the trainer on HH-RLHF with the simulated crowd -----------------------------------


def _held_out(prompt: Any, seed: int) -> bool:
    digest = hashlib.sha256(f"aggregation:{seed}:{opening_prompt(prompt)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 5 == 0


def _pair(prompt: Any, better: str, worse: str) -> Pair:
    a, b = sorted((better, worse))
    return Pair(prompt=prompt, a=a, b=b, wins_a=int(a == better), wins_b=int(b == better))


def _as_pair(pool: Sequence[Any], item: int, says_truth: bool) -> Pair:
    """Pool row `item` as a pair labelled by a vote (or label) that sides with the dataset or not."""
    row = pool[item]
    better, worse = (row.chosen, row.rejected) if says_truth else (row.rejected, row.chosen)
    return _pair(row.item.prompt, better, worse)


def _accuracy(weights: Any, pairs: list[Pair]) -> float:
    featurizer = HashedNgrams()
    diff = featurizer.transform([p.a for p in pairs]) - featurizer.transform([p.b for p in pairs])
    predicted = (diff @ weights).ravel() > 0
    return float(sum(bool(p) == (q.label == 1) for p, q in zip(predicted, pairs, strict=True)) / len(pairs))


def _gold_count(items: int, overlap: int = 3, raters: int = 20, gold_rate: float = 0.1) -> int:
    """How many gold items bench/crowd.py makes for this many work items (its own formula)."""
    return max(1, round(items * overlap / raters * gold_rate / (1 - gold_rate) * 2))


def training(seeds: Iterable[int]) -> dict[str, Any] | str:
    """Held-out accuracy of the trainer's model per label source; a reason string when no data."""
    from bench.rewardmodel import DATA, read_rows

    if not DATA.exists():
        return f"skipped: the HH-RLHF sample is not at {DATA} (read /work/shared/data/hh-rlhf/harmless-base/README.md)"
    rows = [r for r in read_rows() if r.chosen != r.rejected]
    results: dict[str, list[float]] = {"dataset": [], "judgments": [], "majority": [], "weighted": []}
    reported: dict[str, list[float]] = {"weighted": [], "majority": [], "labels_agree": []}
    per_seed = []
    for seed in seeds:
        started = time.perf_counter()
        test = [r.pair for r in rows if _held_out(r.item.prompt, seed)]
        pool = [r for r in rows if not _held_out(r.item.prompt, seed)]
        items = len(pool)
        while items + _gold_count(items) > len(pool):
            items -= 1
        crowd = simulate(seed, items=items)
        # Crowd item k is pool row k (gold items come last); its "truly better" candidate is the
        # dataset's chosen reply, so a vote for the crowd's truth is a vote for `chosen`.
        assert len(crowd.truth) <= len(pool), (len(crowd.truth), len(pool))
        found = labels(crowd)

        truth_class = {u: ag.A if crowd.truth[u] == 0 else ag.B for u in crowd.truth}
        sources = {
            "dataset": [pool[u].pair for u in found.weighted],
            "judgments": [_as_pair(pool, v.item, v.choice == crowd.truth[v.item]) for v in crowd.work_votes()],
            "majority": [_as_pair(pool, u, c == truth_class[u]) for u, c in found.majority.items()],
            "weighted": [_as_pair(pool, u, c == truth_class[u]) for u, c in found.weighted.items()],
        }
        scores = {}
        for name, pairs in sources.items():
            weights, _ = fit(HashedNgrams(), pairs)
            scores[name] = _accuracy(weights, test)
            results[name].append(scores[name])
        # What the worker reports (metrics.compare): no dataset labels, each model against its own.
        compared = compare_labels(HashedNgrams(), {"weighted": sources["weighted"], "majority": sources["majority"]})
        for name in ("weighted", "majority"):
            reported[name].append(compared[name]["accuracy"])
        reported["labels_agree"].append(compared["labels_agree"])
        per_seed.append(
            {"seed": seed, "train_items": len(found.weighted), "test_pairs": len(test), **scores, "compare": compared}
        )
        console.log(f"seed {seed}: {scores}, worker's compare {compared} ({time.perf_counter() - started:.1f} s)")
    return {
        "per_seed": per_seed,
        **{name: t_interval(values) for name, values in results.items()},
        "weighted_minus_majority": t_interval(
            [w - m for w, m in zip(results["weighted"], results["majority"], strict=True)]
        ),
        "weighted_minus_judgments": t_interval(
            [w - j for w, j in zip(results["weighted"], results["judgments"], strict=True)]
        ),
        "reported": {name: t_interval(values) for name, values in reported.items()},
        "reported_weighted_minus_majority": t_interval(
            [w - m for w, m in zip(reported["weighted"], reported["majority"], strict=True)]
        ),
    }


def scale(items: int = 333_000, overlap: int = 3, raters: int = 200, gold: int = 1_000) -> dict[str, Any]:
    """What the once-per-data-version fit costs at about a million judgments (synthetic raters
    right 50-90% of the time, each vote to a random rater)."""
    import numpy as np

    rng = np.random.default_rng(0)
    accuracy = rng.uniform(0.5, 0.9, raters)
    truth = rng.integers(0, 2, items)
    unit = np.repeat(np.arange(items), overlap)
    rater = rng.integers(0, raters, len(unit))
    label = np.where(rng.random(len(unit)) < accuracy[rater], truth[unit], 1 - truth[unit])
    started = time.perf_counter()
    obs = [ag.Observation(unit=int(u), rater=int(r), label=int(v)) for u, r, v in zip(unit, rater, label, strict=True)]
    built = time.perf_counter()
    fitted = ag.fit(obs, gold={i: int(truth[i]) for i in range(gold)})
    done = time.perf_counter()
    return {
        "observations": len(obs),
        "build_seconds": round(built - started, 1),
        "fit_seconds": round(done - built, 1),
        "iterations": fitted.iterations,
        "converged": fitted.converged,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="crowd seeds for the recovery part")
    parser.add_argument("--training-seeds", type=int, default=6, help="crowd seeds (and held-out splits) for training")
    parser.add_argument("--scale", action="store_true", help="only time the fit at about a million judgments")
    parser.add_argument("--training-only", action="store_true", help="skip the recovery part")
    parser.add_argument("--data", type=Path, help="the HH-RLHF sample, if not where bench/rewardmodel.py looks")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.scale:
        print(scale())
        return
    if args.data:
        import bench.rewardmodel

        bench.rewardmodel.DATA = args.data
    if not args.training_only:
        part1 = recovery(range(args.seeds))
        print(f"## Recovery of true labels: bench/crowd.py scenario, {args.seeds} seeds")
        print(f"majority  {part1['majority']}")
        print(f"weighted  {part1['weighted']}")
        print(f"weighted - majority (paired)  {part1['difference']}")
        print(f"seeds where weighted recovers more: {part1['weighted_better_seeds']} of {args.seeds}")
    part2 = training(range(args.training_seeds))
    print(f"\n## Trainer held-out accuracy on HH-RLHF harmless-base, {args.training_seeds} seeds")
    if isinstance(part2, str):
        print(part2)
    else:
        for name in ("dataset", "judgments", "majority", "weighted"):
            print(f"{name:<10}{part2[name]}")
        print(f"weighted - majority (paired)   {part2['weighted_minus_majority']}")
        print(f"weighted - judgments (paired)  {part2['weighted_minus_judgments']}")
        print("the worker's own comparison (metrics.compare: each model against its own labels)")
        for name, interval in part2["reported"].items():
            print(f"  {name:<13}{interval}")
        print(f"  weighted - majority (paired)  {part2['reported_weighted_minus_majority']}")
        for seed in part2["per_seed"]:
            truth, compared = seed["weighted"] - seed["majority"], seed["compare"]
            reported = compared["weighted"]["accuracy"] - compared["majority"]["accuracy"]
            print(
                f"  seed {seed['seed']}: weighted - majority {truth:+.3f} against the dataset, {reported:+.3f} as "
                f"reported ({compared['n_validation']} held-out pairs, labels agree {compared['labels_agree']:.3f})"
            )
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

"""A simulated crowd of raters with known accuracy and known faults, for the quality figures.

The issue's scenario (issue 10, "Proof"): 600 two-candidate items at overlap 3, gold_rate 0.1,
20 raters — 14 honest ones right 70 to 90% of the time, 3 answering at random, 2 always choosing
the response shown on the left, 1 answering instantly (and carelessly). The shown order is drawn
at random per vote, as the server does per assignment, so an honest rater's left-share sits near
0.5. Everything is in memory and depends only on the seed: the benchmark (bench/quality.py) runs
20 seeds, the tests a small version.
"""

import random
from dataclasses import dataclass, field
from typing import Literal

RaterKind = Literal["honest", "random", "left", "instant"]
BAD_KINDS: frozenset[str] = frozenset({"random", "left", "instant"})


@dataclass(frozen=True, slots=True)
class SimRater:
    index: int
    kind: RaterKind
    accuracy: float  # chance of preferring the truly better candidate (honest raters)
    median_seconds: float

    @property
    def careless(self) -> bool:
        return self.kind in BAD_KINDS


@dataclass(frozen=True, slots=True)
class Vote:
    item: int  # items 0..items-1 are work, items..items+gold_items-1 are gold
    rater: int
    choice: int  # the preferred candidate, in upload order (0 or 1)
    shown_first: int  # the candidate shown on the left, in upload order
    seconds: float
    gold: bool
    order: int  # the rater's own sequence number (0 = first vote)


@dataclass(slots=True)
class Crowd:
    raters: list[SimRater]
    truth: dict[int, int]  # item -> the truly better candidate (0 or 1)
    gold_items: frozenset[int]
    votes: list[Vote] = field(default_factory=list)

    @property
    def careless(self) -> frozenset[int]:
        return frozenset(r.index for r in self.raters if r.careless)

    def work_votes(self) -> list[Vote]:
        return [v for v in self.votes if not v.gold]


def _raters(rng: random.Random, honest: int, random_raters: int, left: int, instant: int) -> list[SimRater]:
    kinds: list[RaterKind] = ["honest"] * honest + ["random"] * random_raters + ["left"] * left + ["instant"] * instant
    rng.shuffle(kinds)
    raters = []
    for index, kind in enumerate(kinds):
        accuracy = rng.uniform(0.7, 0.9) if kind == "honest" else 0.5
        seconds = 1.0 if kind == "instant" else rng.uniform(8.0, 25.0)
        raters.append(SimRater(index=index, kind=kind, accuracy=accuracy, median_seconds=seconds))
    return raters


def _vote(rng: random.Random, rater: SimRater, item: int, truth: int, gold: bool, order: int) -> Vote:
    shown_first = rng.randrange(2)
    if rater.kind == "left":
        choice = shown_first
    elif rater.kind in ("random", "instant"):
        choice = rng.randrange(2)
    else:
        choice = truth if rng.random() < rater.accuracy else 1 - truth
    # Times spread log-normally around the rater's median (a factor of about 1.5 either way).
    seconds = rater.median_seconds * rng.lognormvariate(0.0, 0.4)
    return Vote(
        item=item, rater=rater.index, choice=choice, shown_first=shown_first, seconds=seconds, gold=gold, order=order
    )


def simulate(
    seed: int,
    *,
    items: int = 600,
    overlap: int = 3,
    gold_rate: float = 0.1,
    honest: int = 14,
    random_raters: int = 3,
    left: int = 2,
    instant: int = 1,
) -> Crowd:
    """One crowd: every work item gets `overlap` votes from distinct raters, spread evenly; each
    rater's stream has a share `gold_rate` of gold items, each gold item at most once per rater."""
    rng = random.Random(seed)
    raters = _raters(rng, honest, random_raters, left, instant)
    per_rater = items * overlap / len(raters)
    gold_items = max(1, round(per_rater * gold_rate / (1 - gold_rate) * 2))  # enough that none runs dry
    truth = {item: rng.randrange(2) for item in range(items + gold_items)}
    gold = frozenset(range(items, items + gold_items))
    crowd = Crowd(raters=raters, truth=truth, gold_items=gold)

    # Work: each item to `overlap` distinct raters with the fewest votes so far (random tie-break).
    streams: dict[int, list[int]] = {r.index: [] for r in raters}
    for item in range(items):
        chosen = sorted(raters, key=lambda r: (len(streams[r.index]), rng.random()))[:overlap]
        for rater in chosen:
            streams[rater.index].append(item)
    # Interleave gold at the rate: before each work item, a gold one with odds gold_rate/(1-gold_rate).
    gold_odds = gold_rate / (1 - gold_rate) if gold_rate < 1 else 1.0
    for rater in raters:
        unseen_gold = sorted(gold)
        rng.shuffle(unseen_gold)
        order = 0
        for item in streams[rater.index]:
            if unseen_gold and rng.random() < gold_odds:
                g = unseen_gold.pop()
                crowd.votes.append(_vote(rng, rater, g, truth[g], True, order))
                order += 1
            crowd.votes.append(_vote(rng, rater, item, truth[item], False, order))
            order += 1
    return crowd

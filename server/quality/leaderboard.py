"""The model leaderboard: Bradley-Terry ratings from battles between candidates' models (pure).

A battle is one comparison of two candidates with different `model` labels: a pair judgment is
one battle, a ranking of n candidates gives one battle for each of its n·(n-1)/2 pairs, a tie
gives each side half a win. Both-bad verdicts, unlabelled candidates and a model against itself
are left out before battles reach this module (server/leaderboard/service.py).

The battles arrive counted: `(model_a, model_b, score, count)` where `score` is model_a's share
of the win (1, 0.5 or 0). Counting loses nothing: the fit only needs the win matrix, and
resampling battles with replacement is a multinomial draw over the counted outcomes.

Fit: `choix.ilsr_pairwise_dense` (maximum likelihood of the Bradley-Terry model,
P(i beats j) = 1 / (1 + exp(t_j - t_i))) on the win matrix W, where W[i, j] is i's wins over j
(ties as half wins) plus `PSEUDO_WINS` virtual wins for every ordered pair of models. That
pseudo-count is the regularisation: it keeps ratings finite when a model won (or lost) every
battle and ties models that never met to the rest, and with hundreds of battles it moves a
rating by a fraction of a point. The likelihood maximised is

    sum over i != j of W[i, j] · log sigmoid(t_i - t_j),

which tests/quality/test_leaderboard.py maximises independently with scipy to check the fit.

Scale: rating = 1000 + 400 · log10(e) · (t - mean t), the Elo scale: 400 points apart means
10 : 1 odds; the mean rating over the listed models is 1000.

Intervals: 95% percentile bootstrap over battles (`BOOTSTRAP` resamples, fixed seed, so the same
data give the same page); each resample is refitted and anchored at mean 1000 like the point
estimate. Battles from one ranking are resampled one by one, so for rankings the intervals are
somewhat narrower than a resample by judgment would give.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

PSEUDO_WINS = 0.1  # virtual wins of every model over every other (regularisation)
BOOTSTRAP = 200  # resamples for the intervals
SEED = 20261201  # the bootstrap's fixed seed
LEVEL = 0.95
ELO = 400 / math.log(10)  # rating points per unit of θ (natural log odds)
CENTRE = 1000.0
MAX_ITER = 10_000
TOL = 1e-10


@dataclass(frozen=True, slots=True)
class Battles:
    """Battles counted by outcome: `count[k]` battles of models[a[k]] vs models[b[k]] scored `score[k]` for a."""

    models: tuple[str, ...]
    a: NDArray[np.intp]
    b: NDArray[np.intp]
    score: NDArray[np.float64]
    count: NDArray[np.int64]

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, float, int]]) -> "Battles":
        """From `(model_a, model_b, score for a, count)` rows; a model against itself and empty rows are left out."""
        kept = [(a, b, float(s), int(n)) for a, b, s, n in rows if a != b and n > 0]
        for _, _, s, _ in kept:
            if s not in (0.0, 0.5, 1.0):
                raise ValueError(f"a battle scores 0, 0.5 or 1 for its first model, not {s}")
        models = tuple(sorted({m for a, b, _, _ in kept for m in (a, b)}))
        index = {m: i for i, m in enumerate(models)}
        return cls(
            models=models,
            a=np.array([index[a] for a, _, _, _ in kept], dtype=np.intp),
            b=np.array([index[b] for _, b, _, _ in kept], dtype=np.intp),
            score=np.array([s for _, _, s, _ in kept], dtype=np.float64),
            count=np.array([n for _, _, _, n in kept], dtype=np.int64),
        )

    @property
    def total(self) -> int:
        return int(self.count.sum())


def win_matrix(battles: Battles, counts: NDArray[np.int64] | NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """W[i, j] = i's wins over j, ties counted as half a win each (`counts` overrides the battle counts)."""
    n = len(battles.models)
    weights = battles.count if counts is None else counts
    wins = np.zeros((n, n))
    np.add.at(wins, (battles.a, battles.b), weights * battles.score)
    np.add.at(wins, (battles.b, battles.a), weights * (1.0 - battles.score))
    return wins


def fit(
    wins: NDArray[np.float64], *, pseudo: float = PSEUDO_WINS, initial: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    """Bradley-Terry strengths t (natural log scale, mean 0).

    They maximise the sum over i != j of (W[i, j] + pseudo) * log sigmoid(t_i - t_j).
    """
    n = wins.shape[0]
    if n == 1:
        return np.zeros(1)
    import choix  # imported on first use: it pulls in scipy, which the rater loop never needs

    regularised = wins + pseudo * (1.0 - np.eye(n))
    theta = np.asarray(
        choix.ilsr_pairwise_dense(regularised, alpha=0.0, initial_params=initial, max_iter=MAX_ITER, tol=TOL),
        dtype=np.float64,
    )
    return theta - float(theta.mean())


def to_rating(theta: NDArray[np.float64]) -> NDArray[np.float64]:
    """Strengths on the Elo scale, the mean at 1000."""
    return CENTRE + ELO * (theta - float(theta.mean()))


@dataclass(frozen=True, slots=True)
class ModelRating:
    model: str
    rating: float
    ci_low: float
    ci_high: float
    battles: int
    win_rate: float  # (wins + ties / 2) / battles


@dataclass(frozen=True, slots=True)
class Leaderboard:
    ratings: tuple[ModelRating, ...]  # best first
    models: tuple[str, ...]  # the matrices' order: as `ratings`
    win_rate: tuple[
        tuple[float | None, ...], ...
    ]  # [i][j]: row model's share of wins over column model; None: never met
    battles: tuple[tuple[int, ...], ...]  # [i][j]: battles between them
    total_battles: int
    bootstrap: int
    pseudo_wins: float


def bootstrap_ratings(
    battles: Battles, theta: NDArray[np.float64], *, resamples: int, seed: int, pseudo: float
) -> NDArray[np.float64]:
    """Ratings of `resamples` fits, each on battles drawn with replacement (a multinomial over the counted outcomes)."""
    rng = np.random.default_rng(seed)
    total = battles.total
    p = battles.count / total
    out = np.empty((resamples, len(battles.models)))
    for r in range(resamples):
        draw = rng.multinomial(total, p)
        out[r] = to_rating(fit(win_matrix(battles, draw), pseudo=pseudo, initial=theta))
    return out


def leaderboard(
    battles: Battles, *, resamples: int = BOOTSTRAP, seed: int = SEED, pseudo: float = PSEUDO_WINS
) -> Leaderboard:
    """Ratings with 95% bootstrap intervals, battles and win rates, best first; empty without battles."""
    if battles.total == 0:
        return Leaderboard((), (), (), (), 0, resamples, pseudo)
    n = len(battles.models)
    wins = win_matrix(battles)
    played = wins + wins.T  # battles between i and j
    theta = fit(wins, pseudo=pseudo)
    rating = to_rating(theta)
    samples = bootstrap_ratings(battles, theta, resamples=resamples, seed=seed, pseudo=pseudo)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    order = sorted(range(n), key=lambda i: (-rating[i], battles.models[i]))
    ratings = tuple(
        ModelRating(
            model=battles.models[i],
            rating=float(rating[i]),
            ci_low=float(low[i]),
            ci_high=float(high[i]),
            battles=round(float(played[i].sum())),
            win_rate=float(wins[i].sum() / played[i].sum()),
        )
        for i in order
    )
    return Leaderboard(
        ratings=ratings,
        models=tuple(battles.models[i] for i in order),
        win_rate=tuple(
            tuple(float(wins[i, j] / played[i, j]) if played[i, j] > 0 else None for j in order) for i in order
        ),
        battles=tuple(tuple(round(float(played[i, j])) for j in order) for i in order),
        total_battles=battles.total,
        bootstrap=resamples,
        pseudo_wins=pseudo,
    )

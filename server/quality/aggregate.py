"""Per-item labels weighted by rater reliability: Dawid-Skene for pairwise and ranked judgments.

Pure (numpy only, no database): `fit` estimates each rater's reliability from all judgments by
EM, `posterior` labels one unit with fitted parameters (the E-step is per unit, so an export
computes labels while it streams, from parameters fitted once per data version).

The model
- The unit is (item, candidate pair in upload order): `(a, b)` with a before b as imported. Its
  true class z is one of A (a is better), B (b is better) or TIE, with a prior π shared by the
  project's units.
- A judgment gives one observed label l per pair it speaks to: a choice of c says c beats each
  other candidate (pairs without c are not observed); a ranking orders every pair; a tie says TIE
  for every pair of the item; a both-bad verdict without a choice says nothing (missing).
- Each rater r has a confusion matrix θ_r[z, l] = P(rater says l | truth z), over the upload
  order (the order shown to the rater is random per assignment, so a rater who always picks the
  left response looks random here, which is what their labels are worth).
- Given z, a rater's labels are independent of other raters' and of other units (the classic
  Dawid-Skene assumption; pairs of one ranking are treated as independent observations too,
  which overcounts a ranking's evidence a little).
- Priors: θ_r rows have a Dirichlet prior with `PRIOR_DIAGONAL` pseudo-counts on the diagonal and
  `PRIOR_OFF` elsewhere (a new or rarely seen rater starts as "better than chance", so a rater
  with three judgments cannot outweigh the crowd); π has `PRIOR_CLASS` pseudo-counts per class.
  EM maximises the posterior (MAP), so every θ and π is strictly inside (0, 1).
- Gold: a unit whose item has a gold answer that orders its pair (or says tie) is clamped to that
  class in every E-step; gold units anchor the raters' confusion (and which way round A and B
  are) but do not enter π, since gold items are chosen, not sampled.

The posterior label of a unit is its most probable class; its confidence is that probability.
A rater's `accuracy` is Σ_z π_z θ_r[z, z]: the chance their label is right on a typical unit.
"""

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

A, B, TIE = 0, 1, 2
CLASSES = ("a", "b", "tie")
K = 3
PRIOR_DIAGONAL = 4.0
PRIOR_OFF = 1.0
PRIOR_CLASS = 1.0
MAX_ITERATIONS = 200
TOLERANCE = 1e-4  # largest change of any posterior between iterations at convergence


@dataclass(frozen=True, slots=True)
class Observation:
    """One rater's label for one unit (item, (a, b) in upload order)."""

    unit: Hashable
    rater: Hashable
    label: int  # A, B or TIE


def prior_confusion() -> NDArray[np.float64]:
    """The confusion matrix of a rater without judgments: the Dirichlet prior's mean."""
    counts = np.full((K, K), PRIOR_OFF) + np.eye(K) * (PRIOR_DIAGONAL - PRIOR_OFF)
    return np.asarray(counts / counts.sum(axis=1, keepdims=True), dtype=np.float64)


def pair_labels(
    n_candidates: int, *, choice: int | None, ranking: Sequence[int] | None, tie: bool, both_bad: bool
) -> list[tuple[tuple[int, int], int]]:
    """The ((a, b), label) observations one verdict gives, candidates as upload-order indices."""
    if ranking:
        place = {c: i for i, c in enumerate(ranking)}
        return [
            ((a, b), A if place[a] < place[b] else B)
            for a in range(n_candidates)
            for b in range(a + 1, n_candidates)
            if a in place and b in place
        ]
    if choice is not None:
        return [((min(choice, c), max(choice, c)), A if choice < c else B) for c in range(n_candidates) if c != choice]
    if tie and not both_bad:
        return [((a, b), TIE) for a in range(n_candidates) for b in range(a + 1, n_candidates)]
    return []


def gold_labels(n_candidates: int, gold: Mapping[str, Any]) -> dict[tuple[int, int], int]:
    """The class a gold answer fixes for each pair it speaks to (a `preferred` answer: the pairs
    with the preferred candidate; a ranking: every pair; a tie: every pair)."""
    if gold.get("tie"):
        return {(a, b): TIE for a in range(n_candidates) for b in range(a + 1, n_candidates)}
    ranking = gold.get("ranking")
    if ranking:
        return dict(pair_labels(n_candidates, choice=None, ranking=ranking, tie=False, both_bad=False))
    preferred = gold.get("preferred")
    if preferred is None:
        return {}
    return dict(pair_labels(n_candidates, choice=int(preferred), ranking=None, tie=False, both_bad=False))


@dataclass
class Fit:
    """Fitted parameters: the class prior and each rater's confusion matrix."""

    prior: NDArray[np.float64]  # (3,)
    confusion: dict[Hashable, NDArray[np.float64]]  # rater -> (3, 3), rows = truth, columns = label
    iterations: int = 0
    converged: bool = False
    log_likelihood: list[float] = field(default_factory=list)  # the MAP objective after each iteration
    posteriors: dict[Hashable, NDArray[np.float64]] = field(default_factory=dict)  # unit -> (3,)

    def accuracy(self, rater: Hashable) -> float:
        theta = self.confusion.get(rater, prior_confusion())
        return float(np.dot(self.prior, np.diag(theta)))

    def to_json(self) -> dict[str, Any]:
        """Parameters as JSON (rater keys as strings): what the per-data-version cache stores."""
        return {
            "prior": [float(p) for p in self.prior],
            "confusion": {str(r): [[float(x) for x in row] for row in m] for r, m in self.confusion.items()},
            "iterations": self.iterations,
            "converged": self.converged,
        }

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> "Fit":
        return cls(
            prior=np.asarray(payload["prior"], dtype=np.float64),
            confusion={r: np.asarray(m, dtype=np.float64) for r, m in payload["confusion"].items()},
            iterations=int(payload.get("iterations", 0)),
            converged=bool(payload.get("converged", False)),
        )


def posterior(fit: Fit, labels: Iterable[tuple[Hashable, int]], *, gold: int | None = None) -> NDArray[np.float64]:
    """P(z | these raters' labels) for one unit: the E-step. `labels` are (rater, label); a rater
    the fit has not seen gets the prior's confusion. A gold class returns that class for certain."""
    if gold is not None:
        return np.asarray(np.eye(K)[gold], dtype=np.float64)
    log_p = np.log(fit.prior).copy()
    default: NDArray[np.float64] | None = None
    for rater, label in labels:
        theta = fit.confusion.get(rater)
        if theta is None:
            default = prior_confusion() if default is None else default
            theta = default
        log_p += np.log(theta[:, label])
    log_p -= log_p.max()
    p = np.exp(log_p)
    return np.asarray(p / p.sum(), dtype=np.float64)


def fit(
    observations: Sequence[Observation],
    *,
    gold: Mapping[Hashable, int] | None = None,
    max_iterations: int = MAX_ITERATIONS,
    tolerance: float = TOLERANCE,
) -> Fit:
    """Estimate the class prior and every rater's confusion by EM, gold units clamped.

    Starts from the vote shares of each unit (soft majority), so with no gold the labels keep the
    orientation most raters give them. Stops when no posterior moves by more than `tolerance`.
    """
    gold = dict(gold or {})
    units = list(dict.fromkeys([o.unit for o in observations] + list(gold)))
    raters = list(dict.fromkeys(o.rater for o in observations))
    unit_index = {u: i for i, u in enumerate(units)}
    rater_index = {r: i for i, r in enumerate(raters)}
    n_units, n_raters = len(units), len(raters)
    u = np.array([unit_index[o.unit] for o in observations], dtype=np.int64)
    r = np.array([rater_index[o.rater] for o in observations], dtype=np.int64)
    lab = np.array([o.label for o in observations], dtype=np.int64)

    clamped = np.zeros(n_units, dtype=bool)
    clamp = np.zeros((n_units, K))
    for unit, cls in gold.items():
        clamped[unit_index[unit]] = True
        clamp[unit_index[unit], cls] = 1.0

    # Start 1: the soft majority (vote shares; a unit nobody labelled starts uniform).
    post = np.full((n_units, K), 1e-3)
    np.add.at(post, (u, lab), 1.0)
    post /= post.sum(axis=1, keepdims=True)
    post[clamped] = clamp[clamped]
    runs = [_em(post, u, r, lab, clamped, clamp, n_raters, max_iterations, tolerance)]
    if clamped.any():
        # Start 2: raters judged on gold alone (free units weigh nothing in the first M-step), so
        # a crowd whose majority is wrong can still be turned round by gold. The better optimum wins.
        from_gold = np.zeros((n_units, K))
        from_gold[clamped] = clamp[clamped]
        runs.append(_em(from_gold, u, r, lab, clamped, clamp, n_raters, max_iterations, tolerance))
    pi, theta, post, history, iterations, converged = max(runs, key=lambda run: run[3][-1] if run[3] else 0.0)
    return Fit(
        prior=np.asarray(pi, dtype=np.float64),
        confusion={rater: theta[i] for rater, i in rater_index.items()},
        iterations=iterations,
        converged=converged,
        log_likelihood=history,
        posteriors={unit: post[i] for unit, i in unit_index.items()},
    )


_Run = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], list[float], int, bool]


def _em(
    post: NDArray[np.float64],
    u: NDArray[np.int64],
    r: NDArray[np.int64],
    lab: NDArray[np.int64],
    clamped: NDArray[np.bool_],
    clamp: NDArray[np.float64],
    n_raters: int,
    max_iterations: int,
    tolerance: float,
) -> _Run:
    """EM from a first posterior: (π, θ, posteriors, objective per iteration, iterations, converged)."""
    n_units = len(post)
    prior_counts = np.full((K, K), PRIOR_OFF) + np.eye(K) * (PRIOR_DIAGONAL - PRIOR_OFF)
    pi = np.full(K, 1.0 / K)
    theta = np.tile(prior_confusion(), (n_raters, 1, 1))
    history: list[float] = []
    converged = False
    iterations = 0
    rater_label = r * K + lab  # np.bincount is many times faster than np.add.at at a million observations
    for iterations in range(1, max_iterations + 1):  # noqa: B007 (read after the loop)
        # M-step: θ_r[z, l] ∝ prior + Σ_obs post[u, z] [label = l]; π ∝ prior + Σ_free units post.
        counts = np.stack(
            [
                np.bincount(rater_label, weights=post[u, z], minlength=n_raters * K)
                .astype(np.float64)
                .reshape(n_raters, K)
                for z in range(K)
            ],
            axis=1,
        )
        counts += prior_counts
        theta = counts / counts.sum(axis=2, keepdims=True)
        pi_counts = post[~clamped].sum(axis=0) + PRIOR_CLASS
        pi = pi_counts / pi_counts.sum()
        # E-step: log post[u, z] = log π_z + Σ_obs log θ_r[z, l].
        log_theta = np.log(theta)
        log_post = np.stack(
            [
                np.log(pi[z]) + np.bincount(u, weights=log_theta[r, z, lab], minlength=n_units).astype(np.float64)
                for z in range(K)
            ],
            axis=1,
        )
        history.append(_objective(log_post, clamped, clamp, theta, pi, prior_counts))
        log_post -= log_post.max(axis=1, keepdims=True) if n_units else 0.0
        new = np.exp(log_post)
        new /= new.sum(axis=1, keepdims=True)
        new[clamped] = clamp[clamped]
        change = float(np.abs(new - post).max()) if n_units else 0.0
        post = new
        if change < tolerance:
            converged = True
            break
    return pi, theta, post, history, iterations, converged


def _objective(
    log_joint: NDArray[np.float64],
    clamped: NDArray[np.bool_],
    clamp: NDArray[np.float64],
    theta: NDArray[np.float64],
    pi: NDArray[np.float64],
    prior_counts: NDArray[np.float64],
) -> float:
    """The MAP objective EM climbs: log P(labels | θ, π) (gold units at their class) + log priors."""
    free = log_joint[~clamped]
    top = free.max(axis=1, keepdims=True) if len(free) else np.zeros((0, 1))
    marginal = float((top.ravel() + np.log(np.exp(free - top).sum(axis=1))).sum()) if len(free) else 0.0
    # Gold units are not drawn from π (they are chosen), so only their labels' likelihood counts.
    fixed = float(((log_joint[clamped] - np.log(pi)) * clamp[clamped]).sum())
    # Pseudo-counts c added in the M-step are the MAP of a Dirichlet(c + 1) prior: log density c·log p.
    log_prior = float((prior_counts * np.log(theta)).sum()) + float((PRIOR_CLASS * np.log(pi)).sum())
    return marginal + fixed + log_prior


def label(p: NDArray[np.float64]) -> tuple[int, float]:
    """The most probable class of a posterior and its probability (the confidence)."""
    best = int(np.argmax(p))
    return best, float(p[best])


def majority(labels: Sequence[int]) -> int | None:
    """The plain majority class of some labels, None on a tie between the top classes."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=K)
    top = counts.max()
    return None if (counts == top).sum() > 1 or top == 0 else int(np.argmax(counts))


TIE_TOLERANCE = 1e-9  # log-posteriors this close are level at the top


def leave_one_out(
    fit: Fit,
    observations: Sequence[Observation],
    *,
    counted: Sequence[bool] | None = None,
    gold: Mapping[Hashable, int] | None = None,
    soft: bool = False,
) -> NDArray[np.float64]:
    """Each observation scored against its unit's label *left one out*: 1 when its label is the class
    the other observations make most probable under the fitted rater model, 0 when not, 1/k when k
    classes are level at the top and its own is one of them; NaN when nothing else speaks to the unit.
    With `soft`, the score is instead the probability the others give its label (the posterior, not
    its top class): a unit the others split on scores near a half whatever was answered, so it adds
    little noise to a rater's mean, where the top class would score it 0 or 1 on a near coin flip.
    A rater answering at random still averages a coin's share; the rater tests use it (raters.py).

    The label of a unit is the E-step (`posterior`) over the other observations of the unit that are
    `counted` (default: all; an observation not counted is scored but never makes anyone's label, as a
    model judge compared with the humans), each weighted by its rater's fitted confusion (a rater the
    fit has not seen gets the prior's). A unit with a `gold` class has that label for every
    observation, with or without others. The parameters are fitted on every observation: one is left
    out of its unit's label, not out of the fit (a rater's confusion is estimated over many units).
    Vectorised: one pass of numpy over the observations, whatever their number.
    """
    n = len(observations)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    gold = gold or {}
    units = list(dict.fromkeys(o.unit for o in observations))
    unit_index = {u: i for i, u in enumerate(units)}
    raters = list(dict.fromkeys(o.rater for o in observations))
    log_theta = np.log(np.stack([fit.confusion.get(r, prior_confusion()) for r in raters]))  # (raters, K, K)
    rater_index = {r: i for i, r in enumerate(raters)}
    u = np.fromiter((unit_index[o.unit] for o in observations), dtype=np.int64, count=n)
    r = np.fromiter((rater_index[o.rater] for o in observations), dtype=np.int64, count=n)
    lab = np.fromiter((o.label for o in observations), dtype=np.int64, count=n)
    weight = np.ones(n) if counted is None else np.asarray(counted, dtype=np.float64)
    own = log_theta[r, :, lab] * weight[:, None]  # (n, K): each counted observation's evidence
    total = np.stack([np.bincount(u, weights=own[:, z], minlength=len(units)) for z in range(K)], axis=1)
    voices = np.bincount(u, weights=weight, minlength=len(units))
    others = np.log(fit.prior)[None, :] + total[u] - own
    top = others.max(axis=1, keepdims=True)
    if soft:
        posterior = np.exp(others - top)
        score = posterior[np.arange(n), lab] / posterior.sum(axis=1)
    else:
        level = others >= top - TIE_TOLERANCE
        score = np.where(level[np.arange(n), lab], 1.0 / level.sum(axis=1), 0.0)
    score[voices[u] - weight <= 0] = np.nan
    gold_class = np.full(len(units), -1, dtype=np.int64)
    for unit, cls in gold.items():
        if unit in unit_index:
            gold_class[unit_index[unit]] = cls
    known = gold_class[u] >= 0
    score[known] = (lab[known] == gold_class[u][known]).astype(np.float64)
    return np.asarray(score, dtype=np.float64)

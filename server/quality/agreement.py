"""Agreement between raters: pairwise agreement and Krippendorff's alpha, with bootstrap intervals (pure).

The unit is (item, candidate pair in upload order). A judgment gives each candidate pair of its
item a value: on a strength scale the signed strength (+s when the earlier candidate in the file
is preferred, -s when the later one is, 0 for a tie), compared at the ordinal level; on the
binary scale +1 / -1 / 0 (A, B, tie), compared as nominal categories. A both-bad verdict is
missing (no value). A ranking gives a value for each candidate pair, with the verdict's strength
applied to every pair it orders (as the exports do: server/exports/formats.py).

- `pairwise`: the share of agreeing pairs among all pairs of judgments on the same unit. On a
  strength scale two judgments agree when they pick the same direction (or both tie); the exact
  strengths enter alpha, not this share. With a `tolerance` (ratings), two values agree when they
  lie within it of each other.

Task trees' subtasks have units of their own, one per subtask item, each kind its own figure
(server/quality/reliability.py): a check's yes / no (1 / 0) at the nominal level, unsure missing;
a rating's answer as a share of its scale's width ((answer - min) / (max - min)) at the interval
level, agreeing pairwise within a tenth of the scale.
- `alpha`: Krippendorff's alpha from the `krippendorff` package (ordinal or nominal).
- `ci`, `pairwise_ci`: 95% percentile intervals from a bootstrap over units with a fixed seed, so
  the same data always gives the same interval. Units with the same values are one pattern, so
  a bootstrap draw is a multinomial over patterns and costs the same at a million judgments as
  at a thousand; alpha on a draw comes from its coincidence matrix (`_alpha_from_coincidences`,
  checked against the package in tests).
"""

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np
import numpy.typing as npt

Level = Literal["nominal", "ordinal", "interval"]
BOOTSTRAP = 1000
SEED = 20261201  # fixed: the same data gives the same interval every time

Unit = tuple[Hashable, int, int]  # (item, earlier candidate position, later candidate position)


def pair_values(
    candidates: int,
    *,
    choice: int | None,
    ranking: Sequence[int] | None,
    strength: int | None,
    tie: bool,
    both_bad: bool,
) -> dict[tuple[int, int], int]:
    """One judgment's value for each candidate pair (a, b), a < b by upload position.

    Candidates are given by upload position. Positive: `a` preferred; negative: `b`; 0: a tie.
    The magnitude is the strength (1 on the binary scale). A both-bad verdict has no values.
    """
    if both_bad:
        return {}
    pairs = list(combinations(range(candidates), 2))
    if tie:
        return dict.fromkeys(pairs, 0)
    size = strength or 1
    if ranking:
        place = {c: i for i, c in enumerate(ranking)}
        return {(a, b): size if place[a] < place[b] else -size for a, b in pairs if a in place and b in place}
    if choice is None:
        return {}
    return {(a, b): size if choice == a else -size for a, b in pairs if choice in (a, b)}


@dataclass(frozen=True, slots=True)
class Agreement:
    units: int  # units with at least two values
    values: int  # values in those units
    pairwise: float | None
    pairwise_ci: tuple[float, float] | None
    alpha: float | None  # None when alpha is undefined (one value only, say)
    ci: tuple[float, float] | None

    def as_dict(self) -> dict[str, object]:
        return {
            "units": self.units,
            "values": self.values,
            "pairwise": self.pairwise,
            "pairwise_ci": list(self.pairwise_ci) if self.pairwise_ci else None,
            "alpha": self.alpha,
            "ci": list(self.ci) if self.ci else None,
        }


EMPTY = Agreement(units=0, values=0, pairwise=None, pairwise_ci=None, alpha=None, ci=None)


Patterns = Mapping[tuple[float, ...], int]  # a unit's values (sorted) -> how many units have exactly these


def patterns_of(units: Iterable[Sequence[float]]) -> Counter[tuple[float, ...]]:
    """Units counted by their values; units with fewer than two values are left out."""
    return Counter(tuple(sorted(u)) for u in units if len(u) >= 2)


def _matrix(counted: Patterns, domain: list[float]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Value-count rows (patterns by domain values) and how many units have each."""
    index = {v: i for i, v in enumerate(domain)}
    rows = np.zeros((len(counted), len(domain)), dtype=np.int64)
    for r, values in enumerate(counted):
        for v in values:
            rows[r, index[v]] += 1
    return rows, np.array(list(counted.values()), dtype=np.int64)


def _coincidences(patterns: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Each pattern's coincidence matrix, flattened: (n n^T - diag n) / (m - 1)."""
    n = patterns.astype(np.float64)
    m = n.sum(axis=1)
    outer = n[:, :, None] * n[:, None, :]
    idx = np.arange(n.shape[1])
    outer[:, idx, idx] -= n
    return np.asarray((outer / (m - 1)[:, None, None]).reshape(len(n), -1), dtype=np.float64)


def _distances(
    marginals: npt.NDArray[np.float64], level: Level, domain: Sequence[float] = ()
) -> npt.NDArray[np.float64]:
    """Squared distances between domain values (rows: draws), nominal, ordinal or interval (Krippendorff 2011)."""
    v = marginals.shape[-1]
    if level == "nominal":
        return np.broadcast_to(1.0 - np.eye(v), (*marginals.shape[:-1], v, v))
    if level == "interval":
        values = np.asarray(domain, dtype=np.float64)
        return np.broadcast_to((values[:, None] - values[None, :]) ** 2, (*marginals.shape[:-1], v, v))
    cum = np.cumsum(marginals, axis=-1)
    lo = np.minimum.outer(np.arange(v), np.arange(v))
    hi = np.maximum.outer(np.arange(v), np.arange(v))
    # sum of n_g for g from c to k, minus half of n_c and n_k
    start = np.where(lo > 0, np.take(cum, lo - 1, axis=-1), 0.0)
    between = np.take(cum, hi, axis=-1) - start
    half = (marginals[..., :, None] + marginals[..., None, :]) / 2
    return np.asarray((between - half) ** 2)


def _alpha_from_coincidences(
    o: npt.NDArray[np.float64], level: Level, domain: Sequence[float] = ()
) -> npt.NDArray[np.float64]:
    """Alpha for each coincidence matrix in `o` (draws, V, V); NaN where it is undefined."""
    marginals = o.sum(axis=-1)
    total = marginals.sum(axis=-1)
    d = _distances(marginals, level, domain)
    expected = marginals[..., :, None] * marginals[..., None, :]
    v = o.shape[-1]
    expected = expected - np.eye(v) * marginals[..., :, None]
    expected = expected / np.maximum(total - 1, 1)[..., None, None]
    disagree = (expected * d).sum(axis=(-2, -1))
    observed = (o * d).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(disagree > 0, 1 - observed / disagree, np.nan))


def _percentile_ci(draws: npt.NDArray[np.float64]) -> tuple[float, float] | None:
    finite = draws[np.isfinite(draws)]
    if len(finite) < len(draws) * 0.9:
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def agreement(
    units: Iterable[Sequence[float]],
    *,
    level: Level,
    direction: bool = False,
    tolerance: float | None = None,
    bootstrap: int = BOOTSTRAP,
    seed: int = SEED,
) -> Agreement:
    """Pairwise agreement and alpha over `units` (each the values its judgments gave), with 95% intervals."""
    return agreement_of(
        patterns_of(units), level=level, direction=direction, tolerance=tolerance, bootstrap=bootstrap, seed=seed
    )


def agreement_of(
    counted: Patterns,
    *,
    level: Level,
    direction: bool = False,
    tolerance: float | None = None,
    bootstrap: int = BOOTSTRAP,
    seed: int = SEED,
) -> Agreement:
    """Pairwise agreement and alpha over units counted by their values (`patterns_of`), with 95% intervals.

    Units with fewer than two values carry no information about agreement and are left out.
    Pairwise agreement compares values, or only their signs with `direction` (strength scales), or
    within `tolerance` of each other (ratings); alpha compares the values at `level`.
    """
    counted = {values: n for values, n in counted.items() if len(values) >= 2 and n > 0}
    if not counted:
        return EMPTY
    domain = sorted({v for values in counted for v in values})
    patterns, counts = _matrix(counted, domain)
    keys = np.sign(np.array(domain)) if direction else np.array(domain)
    if tolerance is None:
        same = (keys[:, None] == keys[None, :]).astype(np.float64)
    else:
        same = (np.abs(keys[:, None] - keys[None, :]) <= tolerance + 1e-9).astype(np.float64)
    n = patterns.astype(np.float64)
    m = n.sum(axis=1)
    agreeing = (np.einsum("pi,ij,pj->p", n, same, n) - m) / 2  # pairs of judgments that agree
    pairs = m * (m - 1) / 2
    pairwise = float((counts * agreeing).sum() / (counts * pairs).sum())

    alpha: float | None = None
    if len(domain) > 1:
        import krippendorff  # imported on first use (the rater loop never needs it)

        value = krippendorff.alpha(
            value_counts=np.repeat(patterns, counts, axis=0), value_domain=domain, level_of_measurement=level
        )
        alpha = float(value) if np.isfinite(value) else None

    rng = np.random.default_rng(seed)
    draws = rng.multinomial(int(counts.sum()), counts / counts.sum(), size=bootstrap).astype(np.float64)
    pairwise_draws = (draws @ agreeing) / (draws @ pairs)
    ci: tuple[float, float] | None = None
    if alpha is not None:
        o = (draws @ _coincidences(patterns)).reshape(bootstrap, len(domain), len(domain))
        ci = _percentile_ci(_alpha_from_coincidences(o, level, domain))
    return Agreement(
        units=int(counts.sum()),
        values=int(m @ counts),
        pairwise=pairwise,
        pairwise_ci=_percentile_ci(pairwise_draws),
        alpha=alpha,
        ci=ci,
    )


def alpha_of(units: Iterable[Sequence[float]], *, level: Level) -> float | None:
    """Alpha from this module's own coincidence arithmetic (the bootstrap's), for checking it."""
    counted = patterns_of(units)
    domain = sorted({v for values in counted for v in values})
    if len(domain) < 2:
        return None
    patterns, counts = _matrix(counted, domain)
    o = (counts.astype(np.float64) @ _coincidences(patterns)).reshape(1, len(domain), len(domain))
    value = float(_alpha_from_coincidences(o, level, domain)[0])
    return value if np.isfinite(value) else None

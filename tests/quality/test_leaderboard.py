"""The leaderboard's math (pure): the fit against an independent maximum-likelihood fit, the order and
the intervals' coverage on battles simulated from known strengths, ties, and what is left out."""

import logging
import math
import re

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from server.quality.leaderboard import CENTRE, ELO, PSEUDO_WINS, Battles, leaderboard, win_matrix

Row = tuple[str, str, float, int]
log = logging.getLogger(__name__)


def simulate(strengths: dict[str, float], battles: int, rng: np.random.Generator) -> list[Row]:
    """Battles between random pairs of models, won with the Bradley-Terry odds of their strengths (Elo points)."""
    names = list(strengths)
    counts: dict[tuple[str, str, float], int] = {}
    for _ in range(battles):
        i, j = rng.choice(len(names), 2, replace=False)
        a, b = names[i], names[j]
        p = expit((strengths[a] - strengths[b]) / ELO)
        key = (a, b, 1.0 if rng.random() < p else 0.0)
        counts[key] = counts.get(key, 0) + 1
    return [(a, b, s, n) for (a, b, s), n in counts.items()]


def reference_ratings(battles: Battles, pseudo: float) -> dict[str, float]:
    """Bradley-Terry by direct maximum likelihood with scipy: ties as half wins, the same pseudo-wins.

    Independent of choix: the negative log-likelihood, its gradient and Hessian are written out
    here and minimised with a trust-region Newton method, then put on the Elo scale.
    """
    n = len(battles.models)
    wins = np.zeros((n, n))
    for a, b, s, c in zip(battles.a, battles.b, battles.score, battles.count, strict=True):
        wins[a, b] += c * s
        wins[b, a] += c * (1 - s)
    wins += pseudo * (1 - np.eye(n))

    def nll(t: NDArray[np.float64]) -> float:
        diff = t[:, None] - t[None, :]
        return float(-(wins * log_expit(diff)).sum())

    def grad(t: NDArray[np.float64]) -> NDArray[np.float64]:
        p = expit(t[:, None] - t[None, :])  # P(i beats j)
        # d/dt_i of -sum W[i,j] log p_ij - sum W[j,i] log p_ji
        return np.asarray(-((wins * (1 - p)).sum(axis=1) - (wins.T * p).sum(axis=1)), dtype=np.float64)

    def hess(t: NDArray[np.float64]) -> NDArray[np.float64]:
        p = expit(t[:, None] - t[None, :])
        w = (wins + wins.T) * p * (1 - p)
        h = -w
        np.fill_diagonal(h, w.sum(axis=1) - np.diag(w))
        return np.asarray(h, dtype=np.float64)

    result = minimize(nll, np.zeros(n), jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-12})
    t = result.x - result.x.mean()
    return {m: CENTRE + ELO * float(t[i]) for i, m in enumerate(battles.models)}


class TestFit:
    def test_matches_an_independent_maximum_likelihood_fit(self) -> None:
        rng = np.random.default_rng(7)
        rows = simulate({"a": 150.0, "b": 60.0, "c": 0.0, "d": -40.0, "e": -170.0}, 3000, rng)
        rows += [("a", "c", 0.5, 41), ("d", "e", 0.5, 17), ("b", "d", 0.5, 5)]  # ties
        rows += [("f", "e", 1.0, 9)]  # a model that won every battle, and met only one other
        battles = Battles.from_rows(rows)
        board = leaderboard(battles, resamples=10)
        expected = reference_ratings(battles, PSEUDO_WINS)
        assert {r.model: r.rating for r in board.ratings} == pytest.approx(expected, abs=1e-3)

    def test_matches_with_a_stronger_regularisation(self) -> None:
        rows: list[Row] = [("x", "y", 1.0, 3), ("y", "z", 1.0, 2), ("x", "z", 0.5, 1)]
        battles = Battles.from_rows(rows)
        board = leaderboard(battles, resamples=10, pseudo=2.0)
        expected = reference_ratings(battles, 2.0)
        assert {r.model: r.rating for r in board.ratings} == pytest.approx(expected, abs=1e-3)

    def test_mean_rating_is_the_centre(self) -> None:
        battles = Battles.from_rows(simulate({"a": 300.0, "b": 0.0, "c": -100.0}, 500, np.random.default_rng(1)))
        ratings = [r.rating for r in leaderboard(battles, resamples=10).ratings]
        assert sum(ratings) / len(ratings) == pytest.approx(CENTRE)

    def test_four_hundred_points_are_ten_to_one_odds(self) -> None:
        board = leaderboard(Battles.from_rows([("a", "b", 1.0, 10_000), ("a", "b", 0.0, 1000)]), resamples=10)
        top, bottom = board.ratings
        assert top.rating - bottom.rating == pytest.approx(400, abs=0.5)  # the pseudo-wins move it a little


STRENGTHS = {"m1": 240.0, "m2": 150.0, "m3": 60.0, "m4": 0.0, "m5": -90.0, "m6": -200.0}


class TestSimulated:
    def test_the_order_is_right(self) -> None:
        battles = Battles.from_rows(simulate(STRENGTHS, 6000, np.random.default_rng(11)))
        board = leaderboard(battles)
        assert [r.model for r in board.ratings] == list(STRENGTHS)

    def test_true_ratings_fall_inside_the_intervals_at_about_the_nominal_rate(self) -> None:
        """100 leaderboards of 1,500 battles: 600 intervals, of which about 95% should cover (it is logged).

        Correlated within a leaderboard, the share's standard error is about 0.015; 0.88 to 0.99 is
        beyond four of them from 0.95 both ways, while intervals of half or twice the right width
        would cover about 68% or 99.99%.
        """
        rng = np.random.default_rng(2026)
        names = list(STRENGTHS)
        mean = sum(STRENGTHS.values()) / len(names)
        truth = {m: CENTRE + s - mean for m, s in STRENGTHS.items()}
        covered = {0.5: 0, 1.0: 0, 2.0: 0}  # intervals scaled about their centre: the real ones, half, twice
        total = 0
        for _ in range(100):
            board = leaderboard(
                Battles.from_rows(simulate(STRENGTHS, 1500, rng)), resamples=200, seed=int(rng.integers(1 << 31))
            )
            for r in board.ratings:
                total += 1
                centre, half_width = (r.ci_low + r.ci_high) / 2, (r.ci_high - r.ci_low) / 2
                for scale in covered:
                    covered[scale] += abs(truth[r.model] - centre) <= scale * half_width
        share = {scale: n / total for scale, n in covered.items()}
        log.info("coverage of 600 intervals: %.3f (half as wide %.3f, twice %.3f)", share[1.0], share[0.5], share[2.0])
        assert total == 600
        assert 0.88 <= share[1.0] <= 0.99
        assert not 0.88 <= share[0.5] <= 0.99  # the bounds tell wrong widths apart
        assert not 0.88 <= share[2.0] <= 0.99


class TestBattles:
    def test_ties_count_as_half_wins(self) -> None:
        battles = Battles.from_rows([("a", "b", 0.5, 10), ("a", "b", 1.0, 2), ("b", "a", 1.0, 2)])
        assert win_matrix(battles).tolist() == [[0.0, 7.0], [7.0, 0.0]]
        board = leaderboard(battles, resamples=20)
        assert [r.rating for r in board.ratings] == pytest.approx([CENTRE, CENTRE])
        assert [r.win_rate for r in board.ratings] == [0.5, 0.5]

    def test_battles_win_rates_and_matrix(self) -> None:
        rows: list[Row] = [("a", "b", 1.0, 3), ("b", "a", 1.0, 1), ("a", "c", 0.5, 2), ("c", "b", 1.0, 4)]
        board = leaderboard(Battles.from_rows(rows), resamples=20)
        by_model = {r.model: r for r in board.ratings}
        assert {m: r.battles for m, r in by_model.items()} == {"a": 6, "b": 8, "c": 6}
        assert by_model["a"].win_rate == pytest.approx(4 / 6)
        assert by_model["b"].win_rate == pytest.approx(1 / 8)
        assert by_model["c"].win_rate == pytest.approx(5 / 6)
        i = {m: k for k, m in enumerate(board.models)}
        assert board.win_rate[i["a"]][i["b"]] == pytest.approx(0.75)
        assert board.win_rate[i["b"]][i["a"]] == pytest.approx(0.25)
        assert board.win_rate[i["a"]][i["a"]] is None
        assert board.battles[i["b"]][i["c"]] == 4
        assert board.total_battles == 10

    def test_a_model_against_itself_is_left_out(self) -> None:
        battles = Battles.from_rows([("a", "a", 1.0, 50), ("a", "b", 1.0, 1)])
        assert battles.total == 1
        assert battles.models == ("a", "b")

    def test_no_battles_no_leaderboard(self) -> None:
        board = leaderboard(Battles.from_rows([("a", "a", 0.5, 3)]))
        assert board.ratings == ()
        assert board.total_battles == 0

    def test_a_score_other_than_win_tie_or_loss_is_refused(self) -> None:
        with pytest.raises(ValueError, match=re.escape("a battle scores 0, 0.5 or 1 for its first model, not 0.7")):
            Battles.from_rows([("a", "b", 0.7, 1)])

    def test_the_same_data_give_the_same_intervals(self) -> None:
        battles = Battles.from_rows(simulate({"a": 50.0, "b": 0.0, "c": -50.0}, 400, np.random.default_rng(3)))
        assert leaderboard(battles) == leaderboard(battles)

    def test_intervals_narrow_with_more_battles(self) -> None:
        strengths = {"a": 100.0, "b": 0.0, "c": -100.0}
        few = leaderboard(Battles.from_rows(simulate(strengths, 300, np.random.default_rng(5))))
        many = leaderboard(Battles.from_rows(simulate(strengths, 30_000, np.random.default_rng(5))))
        width = {r.model: r.ci_high - r.ci_low for r in few.ratings}
        narrow = {r.model: r.ci_high - r.ci_low for r in many.ratings}
        assert all(narrow[m] < width[m] / 5 for m in strengths)
        assert all(math.isfinite(w) and w > 0 for w in width.values())

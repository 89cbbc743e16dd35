"""The hand-off threshold's estimate and suggestion (server/handoff/threshold.py), on small synthetic data."""

import math

import numpy as np
import pytest

from server.handoff import threshold
from server.handoff.threshold import Evidence, Point, curve, human_pairs, human_share, majority_accuracy, suggest

A, B = ("a",), ("b",)


def simulated(
    rng: np.random.Generator, n: int, *, running: float = 0.8, s: float = 0.1, q: float = 0.8, skew: float = 0.0
) -> Evidence:
    """n items routed at `running`: a model right with probability c - skew, three humans each right with q."""
    c = rng.uniform(0.5, 1.0, n)
    model_right = rng.random(n) < c - skew
    right = rng.binomial(3, q, n)
    draw = rng.random(n)
    seen = (c < running) | (draw < s)
    humans_label_right = right >= 2
    agree = np.where(model_right, humans_label_right, ~humans_label_right)
    pairs = np.array([human_pairs([A] * r + [B] * (3 - r)) for r in range(4)], dtype=float)
    return Evidence(
        confidence=c[seen],
        agreement=agree[seen].astype(float),
        spot_check=(c >= running)[seen],
        humans=np.full(int(seen.sum()), 3),
        pairs_agreeing=pairs[right[seen], 0],
        pairs=pairs[right[seen], 1],
        routed=c,
        spot_check_rate=s,
    )


def true_cost(t: float, *, s: float = 0.1, h: float = 0.896, skew: float = 0.0) -> float:
    """(1 - s) E[(c >= t)(h - a(c))] for c uniform on [0.5, 1] and a(c) = c - skew."""
    return 2 * (1 - t) * (1 - s) * (h - (1 + t) / 2 + skew)


class TestPieces:
    def test_human_pairs(self) -> None:
        assert human_pairs([A, A, B]) == (1, 3)
        assert human_pairs([A, A, A]) == (3, 3)
        assert human_pairs([A]) == (0, 0)

    def test_majority_accuracy_counts_a_level_vote_as_a_half(self) -> None:
        got = majority_accuracy(0.8, np.array([1, 2, 3]))
        assert got == pytest.approx([0.8, 0.8, 0.896])

    def test_human_share_is_exact(self) -> None:
        routed = np.array([0.0, 0.6, 0.7, 0.9, 0.95])  # 0: models that disagreed always go to humans
        assert human_share(routed, 0.8, 0.1) == pytest.approx(0.6 + 0.1 * 0.4)
        assert human_share(routed, 0.5, 0.0) == pytest.approx(0.2)

    def test_spot_checks_weigh_one_over_the_rate(self) -> None:
        e = simulated(np.random.default_rng(1), 200)
        assert set(np.unique(e.weight)) == {1.0, 10.0}
        assert (e.weight[e.spot_check] == 10.0).all()


class TestCurve:
    @pytest.mark.parametrize("method", ["logistic", "binned"])
    def test_the_intervals_cover_the_true_cost(self, method: threshold.Method) -> None:
        e = simulated(np.random.default_rng(7), 20_000)
        estimated = curve(e, method=method)
        assert estimated.humans_accuracy == pytest.approx(0.896, abs=0.01)
        by_t = {p.threshold: p for p in estimated.points}
        for t in (0.6, 0.7, 0.75, 0.8, 0.9):
            p = by_t[t]
            assert p.low <= true_cost(t) <= p.high, (t, p)
            assert p.human_share == pytest.approx(human_share(e.routed, t, 0.1))
        assert (by_t[1.0].cost, by_t[1.0].high) == (0, 0)  # nothing resolved above every confidence

    def test_a_fit_pools_the_checks_below_the_threshold(self) -> None:
        """Above the running threshold only spot checks are seen: a fitted curve borrows from the checks below
        it (logit-only, two parameters, most; the default's third term, against overconfidence, costs some)."""
        e = simulated(np.random.default_rng(3), 20_000)
        width = {m: {p.threshold: p.high - p.low for p in curve(e, method=m).points} for m in ("logit-only", "binned")}
        assert width["logit-only"][0.77] < 0.7 * width["binned"][0.77]

    def test_few_checks(self) -> None:
        e = simulated(np.random.default_rng(2), 40)  # about 26 checked
        estimated = curve(e)
        n = len(e.confidence)
        assert n < threshold.MIN_VERDICTS
        assert estimated.points == []
        assert estimated.problem == f"Only {n} model verdicts have been checked by humans; 30 are needed."

    def test_no_human_pairs(self) -> None:
        e = simulated(np.random.default_rng(2), 100)
        alone = Evidence(
            e.confidence, e.agreement, e.spot_check, e.humans, e.pairs_agreeing * 0, e.pairs * 0, e.routed, 0.1
        )
        problem = "No checked item has two human judgments, so the humans' own accuracy is unknown."
        assert curve(alone).problem == problem


def points(*rows: tuple[float, float, float, float]) -> list[Point]:
    """(threshold, human share, cost, half-width of its interval)."""
    return [Point(t, share, cost, cost - half, cost + half) for t, share, cost, half in rows]


CURVE = points(
    (0.70, 0.46, 0.025, 0.004),
    (0.75, 0.55, 0.010, 0.004),
    (0.77, 0.575, 0.005, 0.004),
    (0.78, 0.60, 0.004, 0.004),
    (0.80, 0.64, 0.000, 0.003),
    (0.90, 0.82, -0.009, 0.003),
    (1.00, 1.00, 0.000, 0.000),
)


class TestSuggest:
    def test_the_highest_threshold_meeting_both_goals_with_a_margin(self) -> None:
        got = suggest(CURVE, savings=0.4, budget=0.01)
        # 0.78 keeps exactly 40%: no margin; 0.77 keeps 42.5%, the highest with the two-point margin.
        assert (got.threshold, got.meets_savings, got.meets_budget) == (0.77, True, True)
        assert got.reason == (
            "Threshold 0.77 keeps 43% of items from humans at an estimated cost of 0.5 points of accuracy "
            "(95% interval 0.1 to 0.9 points)."
        )
        assert got.as_dict()["estimated_cost"] == {
            "estimate": 0.005,
            "ci": [pytest.approx(0.001), pytest.approx(0.009)],
        }

    def test_the_savings_goal_cannot_be_met(self) -> None:
        got = suggest(CURVE, savings=0.5, budget=0.01)
        assert (got.threshold, got.meets_savings, got.meets_budget) == (0.75, False, True)
        assert got.reason == (
            "No threshold keeps 50% of items from humans within 1 point of accuracy by the estimate; threshold "
            "0.75 keeps the most within the budget, 45%, at an estimated cost of 1 point of accuracy (95% "
            "interval 0.6 to 1.4 points)."
        )

    def test_the_upper_bound_is_more_cautious(self) -> None:
        got = suggest(CURVE, savings=0.4, budget=0.008, bound="upper")
        assert (got.threshold, got.meets_savings) == (0.78, False)  # 0.77's interval reaches 0.9 points
        assert "at the top of its 95% interval" in got.reason

    def test_no_threshold_within_the_budget(self) -> None:
        got = suggest(points((0.9, 0.8, 0.02, 0.01), (1.0, 0.95, 0.015, 0.01)), savings=0.4, budget=0.01)
        assert (got.threshold, got.meets_savings, got.meets_budget) == (None, False, False)
        assert got.reason == (
            "No threshold costs at most 1 point of accuracy by the estimate; keep sending every item to humans."
        )

    def test_a_problem_is_the_reason(self) -> None:
        got = suggest([], savings=0.4, budget=0.01, problem="Only 3 model verdicts have been checked by humans.")
        assert (got.threshold, got.reason) == (None, "Only 3 model verdicts have been checked by humans.")

    def test_round_trip_through_the_cache(self) -> None:
        for p in [*CURVE, Point(0.5, 0.1, math.nan, -math.inf, math.inf)]:
            back = Point.of(p.as_dict())
            assert back == p or (math.isnan(back.cost) and back.threshold == p.threshold)


def test_on_a_large_calibration_the_suggestion_falls_in_the_window() -> None:
    """Analytically the claim holds for thresholds from 0.747 to 0.778 (docs/BENCHMARKS.md)."""
    got = suggest(curve(simulated(np.random.default_rng(5), 60_000)).points, savings=0.4, budget=0.01)
    assert (got.meets_savings, got.meets_budget) == (True, True)
    assert got.threshold is not None
    assert 0.747 <= got.threshold <= 0.778


def test_an_overconfident_model_cannot_meet_the_goal() -> None:
    """A model 10 points less right than it says: within the budget only high thresholds are left, and the
    estimate stays near the truth there (a fit in logit(c) alone would read the model as nearly always
    right near c = 1, where only spot checks are seen, and suggest a threshold costing twice the budget)."""
    e = simulated(np.random.default_rng(6), 60_000, skew=0.1)
    got = suggest(curve(e).points, savings=0.4, budget=0.01)
    assert (got.meets_savings, got.meets_budget) == (False, True)
    assert got.threshold is not None
    assert true_cost(got.threshold, skew=0.1) <= 0.014
    naive = suggest(curve(e, method="logit-only").points, savings=0.4, budget=0.01)
    assert naive.threshold is not None
    assert true_cost(naive.threshold, skew=0.1) > 0.016

"""The assistance experiment statistics (server/quality/experiment.py): hand computations, exact
distributions on tiny inputs, edge cases in words, and a small simulation (bench/assistance.py)."""

import math
from itertools import product

import numpy as np
import pytest
from scipy.stats import norm
from scipy.stats import t as t_dist

from bench.assistance import Design, as_independent, run
from server.quality import experiment, resampling
from server.quality.experiment import Difference, Judgment, compare, sentence

J = Judgment
# Two raters. A: two assisted judgments, one unassisted; B: one assisted, two unassisted.
FIXED = [
    J("A", True, gold=1, planted=2, caught=2, agreement=1, seconds=10, flaws=2),
    J("A", True, gold=0, planted=1, caught=0, agreement=1, seconds=30, flaws=0),
    J("A", False, gold=1, planted=2, caught=1, agreement=0, seconds=20, flaws=1),
    J("B", True, gold=1, planted=0, caught=0, agreement=1, seconds=40, flaws=1),
    J("B", False, gold=0, planted=1, caught=0, agreement=1, seconds=50, flaws=0),
    J("B", False, seconds=60),
]


class TestArms:
    def test_per_arm_figures_match_the_hand_computation(self) -> None:
        report = compare(FIXED, bootstrap=100, permutations=100)
        # assisted: gold (1+0+1)/3; flaws caught 2+0 of 2+1 planted (B's judgment had none);
        # agreement 3/3; median of 10, 30, 40; flaws marked (2+0+1)/3.
        assert report.arms["assisted"] == pytest.approx(
            {
                "judgments": 3,
                "raters": 2,
                "gold_accuracy": 2 / 3,
                "catch_rate": 2 / 3,
                "agreement": 1.0,
                "median_seconds": 30.0,
                "flaws_per_item": 1.0,
            }
        )
        # unassisted: gold (1+0)/2 (the last judgment has none); caught 1+0 of 2+1; agreement
        # (0+1)/2; median of 20, 50, 60; flaws (1+0)/2.
        assert report.arms["unassisted"] == pytest.approx(
            {
                "judgments": 3,
                "raters": 2,
                "gold_accuracy": 0.5,
                "catch_rate": 1 / 3,
                "agreement": 0.5,
                "median_seconds": 50.0,
                "flaws_per_item": 0.5,
            }
        )
        estimates = {m: d.estimate for m, d in report.differences.items()}
        assert estimates == pytest.approx(
            {
                "gold_accuracy": 1 / 6,
                "catch_rate": 1 / 3,
                "agreement": 0.5,
                "median_seconds": -20.0,
                "flaws_per_item": 0.5,
            }
        )
        assert report.differences["gold_accuracy"].judgments == 5
        assert report.differences["catch_rate"].judgments == 4

    def test_weighted_median_is_the_median_of_the_repeated_values(self) -> None:
        values = np.array([1.0, 2.0, 5.0, 9.0])
        weights = np.array([[1, 1, 1, 1], [2, 0, 1, 0], [0, 0, 0, 3], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=float)
        medians = resampling.weighted_median(values, weights)
        assert medians[:4].tolist() == [3.5, 1.0, 9.0, 1.0]  # (2+5)/2; median(1, 1, 5); 9; 1
        assert math.isnan(medians[4])


class TestPermutation:
    """On FIXED the within-rater arrangements are few, so the p-value is the exact share."""

    def test_agreement_p_is_the_exact_share_of_arrangements(self) -> None:
        # With agreement: A's values 1, 1 (assisted) and 0; B's 1 (assisted) and 1. A has C(3, 2) = 3
        # ways to place its two assisted labels, B 2 ways: 6 arrangements. B's values are equal, so
        # assisted = A's pair + 1 of 3, unassisted = A's single + 1 of 2:
        #   A assisted {1, 1}: 3/3 - 1/2 = 0.5 (x2);  {1, 0}: 2/3 - 2/2 = -1/3 (x4).
        # |T*| >= |0.5| in 2 of 6.
        assert compare(FIXED, metrics=["agreement"]).differences["agreement"].p == pytest.approx(1 / 3)

    def test_median_p_is_the_exact_share_of_arrangements(self) -> None:
        # Seconds: A 10, 30 assisted and 20; B 40 assisted and 50, 60: 3 x 3 = 9 arrangements.
        # Differences of medians, A's assisted pair x B's assisted one (40 / 50 / 60):
        #   {10, 30}: -20, -10, -10;  {10, 20}: -30, -20, -20;  {20, 30}: -20, -10, -10.
        # |T*| >= 20 in 5 of 9.
        assert compare(FIXED, metrics=["median_seconds"]).differences["median_seconds"].p == pytest.approx(5 / 9)

    def test_enumeration_keeps_each_raters_arm_sizes(self) -> None:
        d = experiment._select(FIXED, "median_seconds")
        blocks, exact = resampling.relabelings(d, 100, seed=1)
        labels = np.concatenate(list(blocks))
        assert exact
        assert len({tuple(row) for row in labels}) == 9
        assert (labels[:, :3].sum(axis=1) == 2).all()
        assert (labels[:, 3:].sum(axis=1) == 1).all()

    def test_random_relabelings_permute_within_raters(self) -> None:
        records = [J(f"r{r}", i < 3, gold=float(i)) for r in range(4) for i in range(7)]
        d = experiment._select(records, "gold_accuracy")
        blocks, exact = resampling.relabelings(d, 500, seed=2)
        labels = np.concatenate(list(blocks))
        assert not exact  # 35^4 arrangements
        assert (labels.reshape(500, 4, 7).sum(axis=2) == 3).all()
        # Every position is assisted in about 3/7 of the relabelings.
        assert np.abs(labels.mean(axis=0) - 3 / 7).max() < 0.08

    def test_drawing_by_value_matches_relabeling_by_judgment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # 0/1 outcomes take the multivariate-hypergeometric path; MAX_KINDS = 0 forces the judgment
        # by judgment one. Two Monte Carlo estimates of one p: equal within sampling error.
        records = _sim(5, Design(raters=6, per_rater=20, aided=0.5))
        fast = compare(records, metrics=["catch_rate"], permutations=20_000).differences["catch_rate"].p
        monkeypatch.setattr(resampling, "MAX_KINDS", 0)
        slow = compare(records, metrics=["catch_rate"], permutations=20_000).differences["catch_rate"].p
        assert fast is not None
        assert slow is not None
        assert 0.02 < slow < 0.5
        assert abs(fast - slow) < 4 * math.sqrt(slow * (1 - slow) / 20_000) * math.sqrt(2)

    def test_identical_arms_give_p_one(self) -> None:
        records = [J(f"r{r}", i % 2 == 0, gold=float(r % 2)) for r in range(6) for i in range(40)]
        assert compare(records, metrics=["gold_accuracy"]).differences["gold_accuracy"].p == 1.0


class TestBootstrap:
    def test_a_resample_counts_each_drawn_raters_judgments(self) -> None:
        d = experiment._select(FIXED, "catch_rate")
        counts = np.array([[2, 0], [1, 1], [0, 2]])
        # A alone twice: 4/6 - 2/4; A and B: 2/3 - (1+0)/(2+1); B alone has no assisted planted flaw.
        diffs = resampling.resampled(d, "catch_rate", counts)
        assert diffs[:2] == pytest.approx([1 / 6, 1 / 3])
        assert math.isnan(diffs[2])

    def test_interval_is_the_widened_percentile_interval(self) -> None:
        diffs = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
        stretch = math.sqrt(5 / 4) * t_dist.ppf(0.975, 4) / norm.ppf(0.975)
        widened = 0.2 + (diffs - 0.2) * stretch
        # numpy's linear percentile of 5 sorted values: rank 0.1 and 3.9.
        low = widened[0] + 0.1 * (widened[1] - widened[0])
        high = widened[3] + 0.9 * (widened[4] - widened[3])
        assert resampling.interval(diffs, raters=5) == pytest.approx((low, high))

    def test_constant_difference_gives_that_constant(self) -> None:
        records = [J(f"r{r}", i % 2 == 0, agreement=float(i % 2 == 0)) for r in range(5) for i in range(6)]
        diff = compare(records, metrics=["agreement"]).differences["agreement"]
        assert diff.estimate == 1.0
        assert diff.ci == pytest.approx((1.0, 1.0))
        assert diff.significant

    def test_resamples_draw_raters_not_judgments(self) -> None:
        # Each rater's difference is fixed: +1 for r0, 0 for the others. Every resample's difference is
        # then a mix of whole raters: a value k / n for k copies of r0 among n draws of equal size.
        records = [J(f"r{r}", i % 2 == 0, gold=float(r == 0 and i % 2 == 0)) for r in range(4) for i in range(10)]
        d = experiment._select(records, "gold_accuracy")
        diffs = resampling.bootstrap(d, "gold_accuracy", 400, seed=3)
        assert set(np.round(diffs * 4, 9)) <= {0.0, 1.0, 2.0, 3.0, 4.0}

    def test_judgments_needed_follow_the_formula(self) -> None:
        records = Design(raters=10, per_rater=20)
        diff = compare(_sim(1, records), metrics=["catch_rate"]).differences["catch_rate"]
        d = experiment._select(_sim(1, records), "catch_rate")
        diffs = resampling.bootstrap(d, "catch_rate", experiment.BOOTSTRAP, experiment.SEED)
        se = np.std(diffs, ddof=1) * math.sqrt(10 / 9)
        z = norm.ppf(0.975) + norm.ppf(0.8)
        assert diff.needed is not None
        assert diff.needed["judgments_total"] == math.ceil(200 * (z * se / 0.10) ** 2)
        assert diff.needed["judgments_more"] == diff.needed["judgments_total"] - 200
        bigger = compare(_sim(1, records), metrics=["catch_rate"], effect=0.2).differences["catch_rate"].needed
        assert bigger is not None
        assert bigger["judgments_total"] == math.ceil(200 * (z * se / 0.20) ** 2)

    def test_design_effect_is_against_the_naive_variance(self) -> None:
        # Gold, independent judgments: assisted 1, 0, 1 -> 3/2 * (1/9 + 4/9 + 1/9) / 9 = 1/9;
        # unassisted 1, 0 -> 2 * (1/4 + 1/4) / 4 = 1/4.
        d = experiment._select(FIXED, "gold_accuracy")
        assert resampling.naive_variance(d, "gold_accuracy") == pytest.approx(1 / 9 + 1 / 4)


def _sim(seed: int, design: Design) -> list[Judgment]:
    from bench.assistance import simulate

    return simulate(seed, design)


class TestSentences:
    def test_the_issues_example(self) -> None:
        diff = Difference("catch_rate", estimate=0.21, ci=(0.09, 0.33), p=0.002, significant=True)
        diff.judgments, diff.raters = 412, 9
        assert sentence("catch_rate", 0.62, 0.41, diff, "critiques") == (
            "With critiques, raters caught 62% of planted flaws vs 41% without "
            "(difference 21 points, 95% CI 9\u201333, p = 0.002; 412 judgments by 9 raters)."
        )

    def test_not_significant_says_so(self) -> None:
        diff = Difference("gold_accuracy", estimate=0.03, ci=(-0.04, 0.1), p=0.4, significant=False)
        diff.judgments, diff.raters = 80, 4
        assert sentence("gold_accuracy", 0.73, 0.7, diff, "critiques") == (
            "With critiques, raters matched gold on 73% of judgments vs 70% without "
            "(difference 3 points, 95% CI -4 to 10, p = 0.40; 80 judgments by 4 raters). "
            "Not significant: the 95% interval includes 0."
        )

    def test_small_negative_differences_do_not_read_minus_zero(self) -> None:
        diff = Difference("median_seconds", estimate=-0.3, ci=(-0.4, 2.0), p=0.9, significant=False)
        diff.judgments, diff.raters = 10, 2
        assert "(difference 0 s, 95% CI 0 to 2, p = 0.90;" in sentence("median_seconds", 12.2, 12.5, diff, "critiques")

    def test_compare_writes_the_sentence(self) -> None:
        records = [J(f"r{r}", i % 2 == 0, agreement=float(i % 2 == 0)) for r in range(5) for i in range(6)]
        assert compare(records, metrics=["agreement"]).differences["agreement"].sentence == (
            "With critiques, raters agreed with the aggregated label on 100% of judgments vs 0% without "
            "(difference 100 points, 95% CI 100\u2013100, p < 0.001; 30 judgments by 5 raters)."
        )


class TestEdgeCases:
    def test_no_judgments(self) -> None:
        report = compare([])
        assert report.statement == "No judgments yet: nothing to compare."
        assert report.arms["assisted"] == {"judgments": 0, "raters": 0, **dict.fromkeys(experiment.METRICS)}
        assert all(d.sentence == report.statement and d.estimate is None for d in report.differences.values())

    @pytest.mark.parametrize(
        ("arm", "statement"),
        [
            (True, "No unassisted judgments yet (6 assisted): nothing to compare."),
            (False, "No assisted judgments yet (6 unassisted): nothing to compare."),
        ],
    )
    def test_one_arm_empty(self, arm: bool, statement: str) -> None:
        records = [J(r.rater, arm, gold=r.gold, seconds=r.seconds) for r in FIXED]
        report = compare(records)
        assert report.statement == statement
        assert report.differences["gold_accuracy"].sentence == statement
        assert report.differences["gold_accuracy"].ci is None

    def test_one_rater(self) -> None:
        records = [J("solo", i % 2 == 0, gold=float(i % 3 == 0)) for i in range(12)]
        diff = compare(records, metrics=["gold_accuracy"]).differences["gold_accuracy"]
        assert diff.ci is None
        assert diff.significant is None
        assert diff.p is not None  # relabeling within the one rater still tests something
        assert diff.sentence.endswith(
            "12 judgments by 1 rater). No interval: it resamples raters, and at least two are needed."
        )

    def test_no_planted_flaws(self) -> None:
        records = [J(r.rater, r.assisted, gold=r.gold, planted=0, caught=0) for r in FIXED]
        report = compare(records)
        assert report.arms["assisted"]["catch_rate"] is None
        assert report.differences["catch_rate"].sentence == "No planted flaws among these judgments."
        assert report.differences["catch_rate"].estimate is None
        assert report.differences["gold_accuracy"].estimate == pytest.approx(1 / 6)

    def test_metric_missing_in_one_arm(self) -> None:
        records = [*FIXED, J("C", True, gold=1)]
        records = [J(r.rater, r.assisted, gold=r.gold, seconds=r.seconds if r.assisted else None) for r in records]
        report = compare(records)
        assert report.differences["median_seconds"].sentence == (
            "Median time: only 3 judgments, all assisted, carry it: nothing to compare."
        )
        assert report.differences["agreement"].sentence == "No aggregated labels to agree with among these judgments."
        assert report.arms["unassisted"]["median_seconds"] is None

    def test_most_resamples_without_one_arm(self) -> None:
        # Each arm's gold comes from one rater: half the resamples draw one of them twice.
        records = [J("r0", True, gold=1), J("r0", True, gold=1), J("r1", False, gold=0), J("r2", False)]
        diff = compare(records, metrics=["gold_accuracy"]).differences["gold_accuracy"]
        assert diff.ci is None
        assert diff.note == "No interval: most resamples of the raters left one arm without this figure."

    def test_report_is_plain_json(self) -> None:
        import json

        text = json.dumps(compare(FIXED, bootstrap=200).as_dict(), allow_nan=False)
        assert '"catch_rate"' in text


class TestSimulation:
    """A small version of bench/assistance.py (the full one: `python -m bench.assistance`)."""

    def test_detects_the_planted_effect(self) -> None:
        design = Design(raters=20, per_rater=30)
        out = run(range(20), design, bootstrap=500, permutations=200)
        assert out.excludes_zero >= 18
        assert 0.15 < out.mean_estimate < 0.25

    def test_false_positives_under_the_null_on_average(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Critiques help some raters and hurt others (benefit ±0.3 per rater, mean 0): the interval
        # must account for raters. Resampling judgments instead excludes 0 far too often: 42 of 200
        # with every judgment its own rater, 35 with resampling.bootstrap drawing judgments.
        design = Design(raters=20, per_rater=40, aided=0.4, benefit=0.3)
        seeds = range(200)
        by_rater = run(seeds, design, bootstrap=500, permutations=0)
        assert 4 <= by_rater.excludes_zero <= 18  # 2% to 9% of 200
        by_judgment = run(seeds, design, independent=True, bootstrap=200, permutations=0)
        assert by_judgment.excludes_zero > 18

        def judgments_bootstrap(d: resampling.Data, metric: str, resamples: int, seed: int) -> np.ndarray:
            """The mistake this test guards against: drawing judgments, not raters."""
            n = d.rater.size
            counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples)
            return resampling.difference(d, metric, d.assisted.astype(float)[None, :], counts.astype(float))

        monkeypatch.setattr(resampling, "bootstrap", judgments_bootstrap)
        assert run(seeds, design, bootstrap=500, permutations=0).excludes_zero > 18

    def test_permutation_p_under_the_sharp_null(self) -> None:
        design = Design(raters=20, per_rater=30, aided=0.4, benefit=0.0)
        out = run(range(200), design, bootstrap=200, permutations=200)
        assert 4 <= out.p_below <= 18
        assert 4 <= out.excludes_zero <= 18

    def test_independent_view_gives_each_judgment_its_own_rater(self) -> None:
        records = as_independent(_sim(0, Design(raters=3, per_rater=4)))
        assert len({r.rater for r in records}) == 12


def test_catch_rate_caps_caught_at_planted() -> None:
    d = experiment._select([J("a", True, planted=1, caught=3)], "catch_rate")
    assert d.num.tolist() == [1.0]


def test_grid_of_small_inputs_never_raises() -> None:
    for arms, golds in product(product([True, False], repeat=3), product([None, 0.0, 1.0], repeat=3)):
        records = [
            J(f"r{i % 2}", a, gold=g, planted=1 if g else None, caught=0)
            for i, (a, g) in enumerate(zip(arms, golds, strict=True))
        ]
        report = compare(records, bootstrap=50, permutations=50)
        assert all(d.sentence for d in report.differences.values())


class TestMedianByCounts:
    """The median's resamples work on counts per distinct value (or per bin), not per judgment."""

    @staticmethod
    def _data(n: int, raters: int, seed: int, *, rounded: bool) -> resampling.Data:
        rng = np.random.default_rng(seed)
        seconds = rng.lognormal(2.5, 0.8, n)
        records = [
            J(f"r{i % raters}", bool(rng.random() < 0.5), seconds=float(round(s, 1) if rounded else s))
            for i, s in enumerate(seconds)
        ]
        return experiment._select(records, "median_seconds")

    def test_a_resample_by_counts_equals_one_by_judgments(self) -> None:
        d = self._data(3_000, 12, seed=1, rounded=True)  # at most a few hundred distinct values: exact
        assert len(np.unique(d.num)) <= resampling.MAX_BINS
        counts = np.random.default_rng(2).multinomial(12, np.full(12, 1 / 12), size=50)
        by_judgment = resampling.difference(
            d, "median_seconds", d.assisted.astype(np.float64)[None, :], counts[:, d.rater].astype(np.float64)
        )
        assert np.allclose(resampling.resampled(d, "median_seconds", counts), by_judgment, equal_nan=True)

    def test_many_distinct_values_are_binned_close_to_the_exact_median(self) -> None:
        d = self._data(20_000, 10, seed=3, rounded=False)
        b = resampling.binned(d)
        assert len(b.values) == resampling.MAX_BINS
        exact = np.median(d.num)
        assert abs(
            float(resampling.weighted_median(b.values, np.bincount(b.index)[None, :].astype(float))[0]) - exact
        ) < (0.005 * exact)

    def test_the_permutation_p_by_counts_matches_relabeling_by_judgment(self) -> None:
        d = self._data(180, 6, seed=7, rounded=False)
        observed = float(
            resampling.difference(
                d, "median_seconds", d.assisted.astype(np.float64)[None, :], np.ones((1, d.rater.size))
            )[0]
        )
        fast = resampling.permutation_p(d, "median_seconds", observed, 20_000, seed=4)
        # The judgment-by-judgment relabelings, as before counts: the same p within sampling error.
        blocks, exact = resampling.relabelings(d, 20_000, seed=4)
        assert not exact
        extreme = total = 0
        for block in blocks:
            diffs = resampling.difference(d, "median_seconds", block.astype(np.float64), np.ones(block.shape))
            extreme += int((np.abs(diffs) >= abs(observed) - 1e-9).sum())
            total += len(block)
        slow = (1 + extreme) / (1 + total)
        assert abs(fast - slow) < 4 * math.sqrt(slow * (1 - slow) / 20_000) * math.sqrt(2) + 1e-4


def test_a_small_p_with_an_interval_over_zero_says_which_decides() -> None:
    diff = Difference("median_seconds", estimate=21.0, ci=(-1.0, 34.0), p=0.0005, significant=False)
    diff.judgments, diff.raters = 80, 8
    assert sentence("median_seconds", 66.0, 45.0, diff, "critiques") == (
        "With critiques, the median judgment took 66 s vs 45 s without (difference 21 s, 95% CI -1 to 34, "
        "p < 0.001; 80 judgments by 8 raters). Not significant: the 95% interval includes 0 (the permutation "
        "test alone would call it, but it does not allow for which raters took part)."
    )


def test_an_interval_off_zero_with_a_large_p_is_not_called() -> None:
    """Both must call it (the demo's novice split showed an interval of -0.20 to -0.00 beside p = 0.45)."""
    diff = Difference("flaws_per_item", estimate=-0.1, ci=(-0.2, -0.004), p=0.45, significant=False)
    diff.judgments, diff.raters = 40, 6
    assert sentence("flaws_per_item", 0.1, 0.2, diff, "critiques").endswith(
        "40 judgments by 6 raters). Not significant: the 95% interval excludes 0 but the permutation test does not "
        "(p = 0.45); with few raters the two can disagree."
    )


def test_significant_needs_the_interval_and_the_permutation_test() -> None:
    records = [
        Judgment(rater=f"r{r}", assisted=j % 2 == 0, planted=1, caught=int(j % 2 == 0 or j % 5 == 1))
        for r in range(6)
        for j in range(10)
    ]
    diff = compare(records, metrics=("catch_rate",), bootstrap=200, permutations=200).differences["catch_rate"]
    assert diff.ci is not None
    assert diff.ci[0] > 0
    assert diff.p is not None
    assert diff.p < 0.05
    assert diff.significant

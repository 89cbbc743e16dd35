"""Agreement and alpha (server/quality/agreement.py) against Krippendorff's published examples."""

import math
from itertools import combinations

import krippendorff
import numpy as np
import pytest

from server.quality.agreement import agreement, alpha_of, pair_values

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: nominal data, four
# observers, 12 units, missing values. Published: alpha nominal .743, ordinal .815, interval .849,
# ratio .797 (the krippendorff package's doctests check .743, .815 and .797 on the same data).
NAN = math.nan
EXAMPLE_C = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]
UNITS_C = [[int(row[u]) for row in EXAMPLE_C if not math.isnan(row[u])] for u in range(12)]


class TestAlpha:
    def test_nominal_matches_the_published_value(self) -> None:
        assert round(agreement(UNITS_C, level="nominal").alpha or 0, 3) == 0.743

    def test_ordinal_matches_the_published_value(self) -> None:
        assert round(agreement(UNITS_C, level="ordinal").alpha or 0, 3) == 0.815

    def test_interval_example_from_the_package_agrees(self) -> None:
        assert round(float(krippendorff.alpha(EXAMPLE_C, level_of_measurement="interval")), 3) == 0.849

    def test_interval_matches_the_published_value(self) -> None:
        """Ratings of task trees are compared at the interval level (a share of the scale: any scaling)."""
        assert round(agreement(UNITS_C, level="interval").alpha or 0, 3) == 0.849
        scaled = [[(v - 1) / 4 for v in unit] for unit in UNITS_C]  # a 1-5 scale as shares of its width
        assert round(agreement(scaled, level="interval").alpha or 0, 3) == 0.849
        assert alpha_of(scaled, level="interval") == pytest.approx(0.849, abs=5e-4)

    @pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
    def test_bootstrap_arithmetic_equals_the_package(self, level: str) -> None:
        rng = np.random.default_rng(3)
        domain = [0.0, 0.125, 0.5, 0.625, 1.0] if level == "interval" else [-2, -1, 0, 1, 2]
        units = [list(rng.choice(domain, size=rng.integers(1, 5))) for _ in range(300)]
        assert alpha_of(units, level=level) == pytest.approx(agreement(units, level=level).alpha, abs=1e-12)  # type: ignore[arg-type]

    def test_units_with_one_value_are_left_out(self) -> None:
        assert agreement([[1], [2]], level="nominal").units == 0

    def test_interval_contains_the_estimate_and_is_reproducible(self) -> None:
        first = agreement(UNITS_C, level="nominal")
        assert first.ci is not None
        assert first.ci[0] <= (first.alpha or 0) <= first.ci[1]
        assert agreement(UNITS_C, level="nominal").ci == first.ci


class TestPairwise:
    def test_share_of_agreeing_pairs(self) -> None:
        agreeing = pairs = 0
        for unit in UNITS_C:
            for a, b in combinations(unit, 2):
                pairs += 1
                agreeing += a == b
        result = agreement(UNITS_C, level="nominal")
        assert result.pairwise == pytest.approx(agreeing / pairs)

    def test_direction_ignores_strength(self) -> None:
        assert agreement([[1, 2], [-1, -3], [0, 0]], level="ordinal", direction=True).pairwise == 1.0

    def test_exact_values_by_default(self) -> None:
        assert agreement([[1, 2], [-1, -1]], level="ordinal").pairwise == 0.5

    def test_tolerance_counts_close_values_as_agreeing(self) -> None:
        """Ratings as shares of the scale agree within a tenth of it (ends included)."""
        units = [[0.5, 0.6], [0.5, 0.61], [0.0, 0.0, 1.0]]  # agree, disagree; 1 of 3 pairs
        assert agreement(units, level="interval", tolerance=0.1).pairwise == pytest.approx(2 / 5)
        assert agreement(units, level="interval").pairwise == pytest.approx(1 / 5)


class TestPairValues:
    def test_choice_is_signed_by_upload_order(self) -> None:
        assert pair_values(2, choice=1, ranking=None, strength=3, tie=False, both_bad=False) == {(0, 1): -3}

    def test_tie_is_zero_for_every_pair(self) -> None:
        assert pair_values(3, choice=None, ranking=None, strength=None, tie=True, both_bad=False) == {
            (0, 1): 0,
            (0, 2): 0,
            (1, 2): 0,
        }

    def test_ranking_gives_every_pair(self) -> None:
        values = pair_values(3, choice=None, ranking=[2, 0, 1], strength=None, tie=False, both_bad=False)
        assert values == {(0, 1): 1, (0, 2): -1, (1, 2): -1}

    def test_both_bad_is_missing(self) -> None:
        assert pair_values(2, choice=0, ranking=None, strength=None, tie=False, both_bad=True) == {}

"""The hand-off simulation's threshold choices (bench/handoff.py) recover the right threshold from
enough spot-check data: the estimated cost in accuracy crosses half a point where the true one does."""

import numpy as np
import pytest

from bench.handoff import DEFAULT_THRESHOLD, Items, choose_threshold, evidence, next_threshold, routed


def true_threshold(target: float = 0.005, s: float = 0.1, h: float = 0.896) -> float:
    """Where 2 (1 - t) (1 - s) (h - (1 + t) / 2), the cost above t, first falls to `target`."""
    for t in np.arange(0.5, 1.0, 0.001):
        if 2 * (1 - t) * (1 - s) * (h - (1 + t) / 2) <= target:
            return float(t)
    return 1.0


@pytest.mark.parametrize("estimator", ["binned", "linear"])
def test_the_threshold_from_a_large_calibration_is_near_the_true_one(estimator: str) -> None:
    items = Items.draw(np.random.default_rng(11), 60_000)
    chosen, h = choose_threshold(items, routed(items, DEFAULT_THRESHOLD), estimator)
    assert abs(h - 0.896) < 0.01
    assert abs(chosen - true_threshold()) < 0.03


def test_the_platform_rule_on_the_bench_evidence_picks_a_threshold_in_the_window() -> None:
    """bench.handoff.evidence hands the checked items to server.handoff.threshold as the service does; on a
    large calibration the suggestion meets both goals inside the window where the claim holds (0.747-0.778)."""
    items = Items.draw(np.random.default_rng(12), 60_000)
    t, h = next_threshold(items, routed(items, DEFAULT_THRESHOLD), "platform (logistic)", DEFAULT_THRESHOLD)
    assert abs(h - 0.896) < 0.01
    assert 0.747 <= t <= 0.778
    assert evidence(items, routed(items, DEFAULT_THRESHOLD)).weight.max() == 1 / 0.1

"""Dawid-Skene aggregation (server/quality/aggregate.py): known answers on simulated crowds."""

import numpy as np
import pytest

from bench.crowd import simulate
from server.quality import aggregate as ag


def crowd_observations(seed: int) -> tuple[list[ag.Observation], dict[int, int], dict[int, int]]:
    """A bench/crowd.py crowd as observations, its gold classes and every item's true class."""
    crowd = simulate(seed)
    observations = [
        ag.Observation(unit=v.item, rater=v.rater, label=ag.A if v.choice == 0 else ag.B) for v in crowd.votes
    ]
    truth = {item: ag.A if better == 0 else ag.B for item, better in crowd.truth.items()}
    return observations, {g: truth[g] for g in crowd.gold_items}, truth


def recovered(observations: list[ag.Observation], gold: dict[int, int], truth: dict[int, int]) -> tuple[int, int]:
    """True labels recovered on work items: (weighted, majority)."""
    fitted = ag.fit(observations, gold=gold)
    votes: dict[int, list[int]] = {}
    for o in observations:
        if o.unit not in gold:
            votes.setdefault(o.unit, []).append(o.label)
    weighted = sum(ag.label(fitted.posteriors[u])[0] == truth[u] for u in votes)
    majority = sum(ag.majority(labels) == truth[u] for u, labels in votes.items())
    return weighted, majority


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_weighted_recovers_more_true_labels_than_majority(seed: int) -> None:
    weighted, majority = recovered(*crowd_observations(seed))
    assert weighted > majority


def test_em_converges_and_climbs() -> None:
    observations, gold, _ = crowd_observations(0)
    fitted = ag.fit(observations, gold=gold)
    assert fitted.converged
    steps = np.diff(fitted.log_likelihood)
    assert (steps >= -1e-9).all()


def test_careless_raters_get_lower_accuracy_than_honest_ones() -> None:
    crowd = simulate(1)
    observations, gold, _ = crowd_observations(1)
    fitted = ag.fit(observations, gold=gold)
    honest = [fitted.accuracy(r.index) for r in crowd.raters if not r.careless]
    careless = [fitted.accuracy(r.index) for r in crowd.raters if r.careless]
    assert max(careless) < min(honest)


def test_gold_is_clamped_even_against_every_rater() -> None:
    observations = [ag.Observation(unit="g", rater=r, label=ag.B) for r in range(3)]
    fitted = ag.fit(observations, gold={"g": ag.A})
    assert fitted.posteriors["g"].tolist() == [1.0, 0.0, 0.0]


def test_gold_turns_labels_of_raters_who_are_always_wrong() -> None:
    """Raters who always answer against the truth: majority is always wrong; gold shows it."""
    truth = {u: u % 2 for u in range(40)}
    observations = [ag.Observation(unit=u, rater=r, label=1 - t) for u, t in truth.items() for r in range(3)]
    gold = {u: t for u, t in truth.items() if u < 10}
    fitted = ag.fit(observations, gold=gold)
    assert all(ag.label(fitted.posteriors[u])[0] == t for u, t in truth.items())


def test_one_rater_gives_their_labels_with_less_than_certainty() -> None:
    observations = [ag.Observation(unit=u, rater="only", label=u % 2) for u in range(20)]
    fitted = ag.fit(observations)
    assert fitted.converged
    for u in range(20):
        best, confidence = ag.label(fitted.posteriors[u])
        assert best == u % 2
        assert 0.5 < confidence < 1.0


def test_all_agree_gives_high_confidence() -> None:
    observations = [ag.Observation(unit=u, rater=r, label=ag.A) for u in range(10) for r in range(5)]
    fitted = ag.fit(observations)
    assert all(ag.label(fitted.posteriors[u]) >= (ag.A, 0.99) for u in range(10))
    assert all(ag.label(fitted.posteriors[u])[0] == ag.A for u in range(10))


def test_no_observations_is_the_prior() -> None:
    fitted = ag.fit([])
    assert fitted.converged
    assert fitted.posteriors == {}
    assert np.allclose(fitted.prior, 1 / 3)


def test_posterior_reproduces_the_fit_and_survives_json() -> None:
    """The per-unit E-step with cached parameters gives the fit's own posterior."""
    observations, gold, _ = crowd_observations(2)
    fitted = ag.fit(observations, gold=gold)
    cached = ag.Fit.from_json(fitted.to_json())
    unit = next(u for u in fitted.posteriors if u not in gold)
    labels = [(str(o.rater), o.label) for o in observations if o.unit == unit]
    assert np.allclose(ag.posterior(cached, labels), fitted.posteriors[unit], atol=1e-5)


def test_an_unknown_rater_counts_with_the_prior_confusion() -> None:
    fitted = ag.fit([ag.Observation(unit=0, rater="x", label=ag.A)])
    p = ag.posterior(fitted, [("never seen", ag.B)])
    assert ag.label(p)[0] == ag.B


def test_rankings_give_every_pair_and_choices_the_pairs_with_the_chosen() -> None:
    assert ag.pair_labels(3, choice=None, ranking=[2, 0, 1], tie=False, both_bad=False) == [
        ((0, 1), ag.A),
        ((0, 2), ag.B),
        ((1, 2), ag.B),
    ]
    assert ag.pair_labels(3, choice=1, ranking=None, tie=False, both_bad=False) == [((0, 1), ag.B), ((1, 2), ag.A)]
    assert ag.pair_labels(2, choice=None, ranking=None, tie=True, both_bad=False) == [((0, 1), ag.TIE)]
    assert ag.pair_labels(2, choice=None, ranking=None, tie=False, both_bad=True) == []


def test_gold_labels_of_each_shape() -> None:
    assert ag.gold_labels(2, {"preferred": 1}) == {(0, 1): ag.B}
    assert ag.gold_labels(3, {"ranking": [1, 2, 0]}) == {(0, 1): ag.B, (0, 2): ag.B, (1, 2): ag.A}
    assert ag.gold_labels(2, {"tie": True}) == {(0, 1): ag.TIE}


def test_ties_are_learnt_as_a_class() -> None:
    observations = [
        ag.Observation(unit=u, rater=r, label=ag.TIE if u < 5 else ag.A) for u in range(10) for r in range(3)
    ]
    fitted = ag.fit(observations)
    assert ag.label(fitted.posteriors[0])[0] == ag.TIE
    assert ag.label(fitted.posteriors[9])[0] == ag.A


def test_the_benchmark_in_small() -> None:
    """bench/aggregation.py's first part on three seeds: weighted recovers more on every one."""
    from bench.aggregation import recovery

    result = recovery(range(3))
    assert result["weighted_better_seeds"] == 3
    assert result["difference"].mean > 0
    assert result["weighted"].mean > result["majority"].mean

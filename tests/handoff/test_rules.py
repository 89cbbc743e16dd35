"""The hand-off rule as pure functions (server/handoff/rules.py)."""

import uuid

import pytest

from server.handoff.rules import MODELS_DISAGREE, NO_CONFIDENCE, SPOT_CHECK, ModelVerdict, Route, Rule, route

A, B = ("a",), ("b",)


def v(key: tuple[str, ...], confidence: float | None) -> ModelVerdict:
    return ModelVerdict(key=key, confidence=confidence)


class TestRoute:
    rule = Rule(min_confidence=0.8, min_judges=2, spot_check_rate=0.1)

    def test_agreeing_sure_models_resolve(self) -> None:
        assert route([v(A, 0.9), v(A, 0.85)], self.rule, draw=0.5) == Route(resolved=True)

    def test_disagreeing_models_go_to_humans(self) -> None:
        assert route([v(A, 0.99), v(B, 0.99)], self.rule, draw=0.5) == Route(resolved=False, reason=MODELS_DISAGREE)

    def test_an_unsure_model_goes_to_humans_with_its_probability(self) -> None:
        decided = route([v(A, 0.9), v(A, 0.543)], self.rule, draw=0.5)
        assert decided == Route(resolved=False, reason="p=0.54 < 0.8")

    def test_a_missing_confidence_is_not_sure(self) -> None:
        assert route([v(A, None)], self.rule, draw=0.5).reason == NO_CONFIDENCE

    def test_exactly_the_threshold_is_sure(self) -> None:
        assert route([v(A, 0.8)], self.rule, draw=0.5).resolved

    def test_a_draw_under_the_rate_is_a_spot_check(self) -> None:
        assert route([v(A, 0.9)], self.rule, draw=0.05) == Route(resolved=False, spot_check=True, reason=SPOT_CHECK)

    def test_unsure_items_are_never_counted_as_spot_checks(self) -> None:
        assert not route([v(A, 0.5)], self.rule, draw=0.0).spot_check

    def test_no_verdict_is_a_programming_error(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            route([], self.rule, draw=0.5)


class TestSpotCheckSampling:
    def test_the_share_of_spot_checks_follows_the_rate(self) -> None:
        import random

        rng = random.Random(7)
        rule = Rule(min_confidence=0.8, min_judges=1, spot_check_rate=0.1)
        routes = [route([v(A, 0.95)], rule, draw=rng.random()) for _ in range(20_000)]
        share = sum(r.spot_check for r in routes) / len(routes)
        assert 0.09 < share < 0.11
        assert all(r.resolved != r.spot_check for r in routes)


class TestRuleOf:
    def test_absent_is_no_rule(self) -> None:
        assert Rule.of(None) is None

    def test_defaults_fill_the_gaps(self) -> None:
        assert Rule.of({"min_confidence": 0.9}) == Rule(min_confidence=0.9, min_judges=1, spot_check_rate=0.1)


def test_verdict_keys_ignore_strength_but_not_the_choice() -> None:
    from server.handoff.rules import verdict_key

    x, y = uuid.uuid4(), uuid.uuid4()
    assert verdict_key(choice=x, ranking=None, tie=False, both_bad=False) == verdict_key(
        choice=x, ranking=None, tie=False, both_bad=False
    )
    assert verdict_key(choice=x, ranking=None, tie=False, both_bad=False) != verdict_key(
        choice=y, ranking=None, tie=False, both_bad=False
    )

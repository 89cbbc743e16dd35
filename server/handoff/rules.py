"""The hand-off rule, as pure functions: what the model phase of an item decides.

An item in a project with a `handoff` rule is offered to model judges first. When `min_judges`
model judgments are in, `route` decides: the item is resolved by the models when they agree and
every one is sure (confidence at least `min_confidence`), except a random `spot_check_rate` share
of those, which go to humans anyway; otherwise it goes to humans with the reason in words. The
labeling service calls `route` under the item's lock; bench/handoff.py calls it directly.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MODELS_DISAGREE = "models disagree"
NO_CONFIDENCE = "no confidence given"
SPOT_CHECK = "spot check"


@dataclass(frozen=True, slots=True)
class Rule:
    min_confidence: float = 0.8
    min_judges: int = 1
    spot_check_rate: float = 0.1

    @classmethod
    def of(cls, setting: dict[str, Any] | None) -> "Rule | None":
        """The project's stored `handoff` setting as a rule; None when it has none."""
        if not setting:
            return None
        return cls(
            min_confidence=float(setting.get("min_confidence", 0.8)),
            min_judges=int(setting.get("min_judges", 1)),
            spot_check_rate=float(setting.get("spot_check_rate", 0.1)),
        )


@dataclass(frozen=True, slots=True)
class ModelVerdict:
    """What routing needs of one model judgment: its verdict as a comparable key, and its confidence."""

    key: tuple[Any, ...]
    confidence: float | None


@dataclass(frozen=True, slots=True)
class Route:
    resolved: bool  # the models' label stands (label source 'model')
    spot_check: bool = False  # the models would have resolved it; humans judge it anyway
    reason: str | None = None  # why it went to humans

    @property
    def to_humans(self) -> bool:
        return not self.resolved


def verdict_key(
    *, choice: uuid.UUID | None, ranking: Sequence[uuid.UUID] | None, tie: bool, both_bad: bool
) -> tuple[Any, ...]:
    """Two verdicts agree when they pick the same candidate (or ranking), tie, or both-bad; strength aside."""
    return (choice, tuple(ranking) if ranking else None, tie, both_bad)


def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if x != int(x) else f"{x:.1f}"


def unsure_reason(verdicts: Sequence[ModelVerdict], rule: Rule) -> str | None:
    """Why the models' verdicts are not enough to resolve the item; None when they are."""
    if len({v.key for v in verdicts}) > 1:
        return MODELS_DISAGREE
    if any(v.confidence is None for v in verdicts):
        return NO_CONFIDENCE
    lowest = min(float(v.confidence or 0.0) for v in verdicts)
    if lowest < rule.min_confidence:
        return f"p={lowest:.2f} < {_fmt(rule.min_confidence)}"
    return None


def route(verdicts: Sequence[ModelVerdict], rule: Rule, *, draw: float) -> Route:
    """Decide an item once `rule.min_judges` model verdicts are in; `draw` is uniform on [0, 1).

    The spot check is drawn only for items the models would resolve, so its share is exactly
    `spot_check_rate` of those, and what the spot checks measure is the resolved labels' accuracy.
    """
    if not verdicts:
        raise ValueError("route needs at least one model verdict")
    reason = unsure_reason(verdicts, rule)
    if reason is not None:
        return Route(resolved=False, reason=reason)
    if draw < rule.spot_check_rate:
        return Route(resolved=False, spot_check=True, reason=SPOT_CHECK)
    return Route(resolved=True)

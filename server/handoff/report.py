"""The hand-off report, pure: how often the model judges are right, measured against humans.

Items the humans labelled after the model phase (handed over as unsure, or spot-checked) give,
for every model verdict on them, whether it matches the humans' label (their plurality; 1/k when
k verdicts are level at the top and the model's is one of them). Spot checks are a random share
of what the models resolved, so their agreement estimates the accuracy of model-resolved labels;
the bins by confidence show whether the threshold is calibrated (a reliability diagram). Intervals
are Wilson's (95%).
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from server.quality.gold import wilson

BIN_EDGES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True, slots=True)
class Checked:
    """One item humans labelled after its model phase."""

    spot_check: bool
    models: Sequence[tuple[tuple[Any, ...], float | None]]  # each model verdict's key and confidence
    humans: Sequence[tuple[Any, ...]]  # the humans' verdict keys (counted judgments)


def agreement(key: tuple[Any, ...], humans: Sequence[tuple[Any, ...]]) -> float | None:
    """1 when `key` is the humans' plurality verdict, 1/k when level with k-1 others, 0 otherwise; None: no human."""
    if not humans:
        return None
    counts = Counter(humans)
    top = max(counts.values())
    leaders = [k for k, n in counts.items() if n == top]
    return 1.0 / len(leaders) if key in leaders else 0.0


def _bin(confidence: float) -> int:
    for i in range(len(BIN_EDGES) - 1):
        if confidence < BIN_EDGES[i + 1]:
            return i
    return len(BIN_EDGES) - 2  # 1.0 belongs to the last bin


def _rate(successes: float, n: int) -> dict[str, Any]:
    return {"estimate": None if n == 0 else successes / n, "ci": list(wilson(successes, n))}


def build(
    checked: Sequence[Checked],
    *,
    model_resolved: int,
    human_judgments_saved: int,
    human_resolved: int,
    spot_checked: int,
) -> dict[str, Any]:
    """The report's figures from the items humans checked and the counts of the hand-off's outcomes."""
    spot_total, spot_n = 0.0, 0
    bins: list[list[float]] = [[0.0, 0] for _ in BIN_EDGES[:-1]]
    for item in checked:
        for key, confidence in item.models:
            agreed = agreement(key, item.humans)
            if agreed is None:
                continue
            if item.spot_check:
                spot_total, spot_n = spot_total + agreed, spot_n + 1
            if confidence is not None:
                b = bins[_bin(confidence)]
                b[0], b[1] = b[0] + agreed, b[1] + 1
    return {
        "model_resolved": model_resolved,
        "human_resolved": human_resolved,
        "spot_checked": spot_checked,
        "human_judgments_saved": human_judgments_saved,
        "spot_check_agreement": _rate(spot_total, spot_n),
        "bins": [
            {
                "confidence_low": BIN_EDGES[i],
                "confidence_high": BIN_EDGES[i + 1],
                "judgments": int(n),
                "agreement": None if n == 0 else total / n,
                "ci": list(wilson(total, int(n))),
            }
            for i, (total, n) in enumerate(bins)
        ],
    }

"""Geometry of the reward-model chart: held-out accuracy of each version against the pairs it was pulled.

Pure, like `server/web/charts.py`: the template only draws the points and ticks computed here.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from server.models import RewardModel
from server.rewards.schemas import MIN_HELD_OUT_PAIRS, StoredMetrics
from server.web.charts import Frame, Tick, format_number, value_ticks


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    label: str  # the version and its numbers in words, for the point's tooltip


@dataclass(frozen=True, slots=True)
class LineChart(Frame):
    points: tuple[Point, ...]
    x_caption: str
    # Versions with too little held-out data to judge, in words ("v2 (10 held-out pairs)"): not drawn.
    left_out: tuple[str, ...] = ()

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.2f},{p.y:.2f}" for p in self.points)


def accuracy_chart(models: Sequence[RewardModel], *, width: int = 880, height: int = 260) -> LineChart:
    """Accuracy (0.4 to 1 on the axis) of each version with a held-out accuracy, by pairs pulled
    (the worker's `n_judgments` metric counts the trl rows it pulled: pairs, not judgments). A version
    scored on too few held-out pairs is left out of the line and named in `left_out`."""
    left, top, right, bottom = 48.0, 18.0, width - 32.0, height - 44.0
    # Stored metrics are read defensively: a row of any shape draws or is left out, never fails.
    read = [(m.version, StoredMetrics.read(m.metrics)) for m in models]
    measured = [
        (version, metrics.accuracy, metrics.n_judgments or 0)
        for version, metrics in read
        if metrics.accuracy is not None and not metrics.too_little_data
    ]
    left_out = tuple(
        f"v{version} ({metrics.n_validation} held-out pair{'s' if metrics.n_validation != 1 else ''})"
        for version, metrics in read
        if metrics.too_little_data
    )
    most = max((n for _, _, n in measured), default=0)
    x_top = value_ticks(max(most, 1))[-1]
    low = 0.4  # below chance is rare and above it is what matters: keep the differences readable

    def x_of(n: float) -> float:
        return left + (right - left) * n / x_top

    def y_of(accuracy: float) -> float:
        return bottom - (bottom - top) * (min(max(accuracy, low), 1.0) - low) / (1 - low)

    points = tuple(
        Point(
            x=x_of(n),
            y=y_of(accuracy),
            label=f"v{version}: accuracy {accuracy:.3f} after {format_number(n)} pairs",
        )
        for version, accuracy, n in measured
    )
    if measured:
        version, accuracy, n = measured[-1]
        desc = (
            f"{len(measured)} model versions. Latest, v{version}: held-out accuracy "
            f"{accuracy:.3f} after {format_number(n)} pairs."
        )
    else:
        desc = "No model with a held-out accuracy yet."
    if left_out:
        desc += (
            f" Left out, too little data to judge (under {MIN_HELD_OUT_PAIRS} held-out pairs): {', '.join(left_out)}."
        )
    return LineChart(
        id="reward-accuracy",
        title="Held-out accuracy by pairs trained on",
        desc=desc,
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        points=points,
        value_ticks=tuple(Tick(position=y_of(v), label=f"{v:.1f}") for v in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)),
        label_ticks=tuple(Tick(position=x_of(v), label=format_number(v)) for v in value_ticks(max(most, 1))),
        x_caption="pairs",
        left_out=left_out,
    )

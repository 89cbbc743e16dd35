"""Chart geometry for server-rendered SVG: pure functions from numbers to shapes.

The templates (`templates/macros/charts.html`) only draw what these return, so every number,
position and accessible text is computed and tested here. Charts never rely on colour alone:
each bar carries its value as text (on the bar when there is room, always in its `<title>`),
and the axes carry numbers.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.projects.schemas import HourlyCount, RaterStats


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # what the bar is (an hour, a rater)
    value_text: str  # the value in words, for the bar's tooltip
    mark: str  # the value drawn beside the bar ("" when there is no room)


@dataclass(frozen=True, slots=True)
class Frame:
    """What every chart has: its frame, plot area, axis ticks and the texts a screen reader gets."""

    id: str
    title: str
    desc: str
    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    value_ticks: tuple[Tick, ...]
    label_ticks: tuple[Tick, ...]


@dataclass(frozen=True, slots=True)
class Chart(Frame):
    """A bar chart."""

    bars: tuple[Bar, ...]
    empty: bool


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is ≥ value (1 for nothing), so axis ticks are round."""
    if value <= 1:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    raise AssertionError("unreachable: ten times the magnitude always covers value")


def value_ticks(top: float, count: int = 4) -> list[float]:
    """Evenly spaced round values from 0 to `top` (a nice ceiling), at most `count` + 1 of them."""
    step = nice_ceiling(top / count)
    n = max(1, math.ceil(round(top / step, 9)))
    return [step * i for i in range(n + 1)]


def format_number(value: float) -> str:
    """12 → "12", 1500 → "1,500", 2.5 → "2.5"."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def format_duration(ms: float | None) -> str:
    """Active time in words a person reads at a glance: "850 ms", "4.2 s", "3 min 05 s"."""
    if ms is None:
        return "no time recorded"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


LABEL_STEPS = (1, 2, 3, 4, 6, 12, 24, 48, 72, 96, 168)


def label_every(n_hours: int, most: int = 8) -> int:
    """Hours between axis labels: a step that divides the day (or whole days), for at most `most` labels."""
    return next((step for step in LABEL_STEPS if n_hours / step <= most), LABEL_STEPS[-1])


def _hour_label(hour: datetime) -> str:
    return f"{hour:%b} {hour.day} {hour:%H}:00" if hour.hour == 0 else f"{hour:%H}:00"


def throughput_chart(hours: Sequence[HourlyCount], *, width: int = 880, height: int = 250) -> Chart:
    """Columns of judgments per hour (UTC), oldest left; values on the columns when they fit."""
    left, top, right, bottom = 48.0, 22.0, width - 8.0, height - 44.0
    peak = max((h.judgments for h in hours), default=0)
    axis_top = value_ticks(peak)[-1]
    slot = (right - left) / max(len(hours), 1)
    gap = min(2.0, slot * 0.2)
    roomy = slot >= 22  # wide enough to write a number above every column
    bars = []
    for i, h in enumerate(hours):
        bar_height = (bottom - top) * h.judgments / axis_top
        noun = "judgment" if h.judgments == 1 else "judgments"
        bars.append(
            Bar(
                x=left + i * slot + gap / 2,
                y=bottom - bar_height,
                width=slot - gap,
                height=bar_height,
                label=f"{h.hour:%b} {h.hour.day}, {h.hour:%H}:00 to {(h.hour.hour + 1) % 24:02d}:00 UTC",
                value_text=f"{format_number(h.judgments)} {noun}",
                mark=format_number(h.judgments) if h.judgments > 0 and (roomy or h.judgments == peak) else "",
            )
        )
    every = label_every(len(hours))
    label_ticks = [
        Tick(position=left + (i + 0.5) * slot, label=_hour_label(h.hour))
        for i, h in enumerate(hours)
        if int(h.hour.timestamp()) // 3600 % every == 0
    ]
    total = sum(h.judgments for h in hours)
    if hours:
        busiest = max(hours, key=lambda h: h.judgments)
        span = f"{hours[0].hour:%b} {hours[0].hour.day} {hours[0].hour:%H}:00 to {hours[-1].hour:%H}:59 UTC"
        desc = f"{format_number(total)} judgments in the last {len(hours)} hours ({span})."
        if total:
            desc += f" Busiest hour: {busiest.hour:%H}:00 UTC with {format_number(busiest.judgments)}."
    else:
        desc = "No hours to show."
    return Chart(
        id="throughput",
        title="Judgments per hour",
        desc=desc,
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        bars=tuple(bars),
        value_ticks=tuple(
            Tick(position=bottom - (bottom - top) * v / axis_top, label=format_number(v)) for v in value_ticks(peak)
        ),
        label_ticks=tuple(label_ticks),
        empty=total == 0,
    )


def _rater_name(stats: RaterStats) -> str:
    name = stats.name or stats.email
    return name if len(name) <= 40 else name[:39] + "…"


def _row_chart(
    id: str, title: str, rows: Sequence[tuple[str, float, str]], *, desc: str, width: int, row_height: int = 46
) -> Chart:
    """Horizontal bars, one row each: the name above its bar, the value as text at the bar's end.

    Names sit above the bars rather than beside them so the chart stays readable when narrow.
    """
    left, right, top = 2.0, width - 110.0, 4.0
    bottom = top + row_height * len(rows)
    axis_top = max((value for _, value, _ in rows), default=0.0) or 1.0  # no axis drawn: the longest bar fills
    bars = tuple(
        Bar(
            x=left,
            y=top + i * row_height + 22,
            width=(right - left) * value / axis_top,
            height=16,
            label=label,
            value_text=value_text,
            mark=value_text,
        )
        for i, (label, value, value_text) in enumerate(rows)
    )
    return Chart(
        id=id,
        title=title,
        desc=desc,
        width=width,
        height=int(bottom + 4),
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        bars=bars,
        value_ticks=(),
        label_ticks=tuple(Tick(position=top + i * row_height + 16, label=r[0]) for i, r in enumerate(rows)),
        empty=not rows,
    )


def rater_count_chart(stats: Sequence[RaterStats], *, width: int = 380) -> Chart:
    """Judgments per rater, busiest first."""
    rows = [
        (_rater_name(s), float(s.judgments), f"{format_number(s.judgments)} judgment{'s' if s.judgments != 1 else ''}")
        for s in stats
    ]
    desc = "; ".join(f"{name}: {text}" for name, _, text in rows) or "No judgments in this window."
    return _row_chart("rater-counts", "Judgments per rater", rows, desc=desc, width=width)


def rater_time_chart(stats: Sequence[RaterStats], *, width: int = 380) -> Chart:
    """Median active time per judgment, per rater (raters who sent no times are left out)."""
    timed = [s for s in stats if s.median_active_ms is not None]
    rows = [(_rater_name(s), float(s.median_active_ms or 0), format_duration(s.median_active_ms)) for s in timed]
    desc = "; ".join(f"{name}: {text}" for name, _, text in rows) or "No active times recorded in this window."
    return _row_chart("rater-times", "Median active time per judgment", rows, desc=desc, width=width)


@dataclass(frozen=True, slots=True)
class Interval:
    """One row of an interval chart: an estimate (a dot) and its interval (a bar), in plot coordinates."""

    label: str
    y: float  # the row's centre line
    low_x: float
    high_x: float
    value_x: float
    value_text: str  # the estimate and its interval in words, for the tooltip
    mark: str  # the estimate, drawn at the row's end


@dataclass(frozen=True, slots=True)
class IntervalChart(Frame):
    """Estimates with intervals on one shared horizontal axis (a forest plot), a row each."""

    intervals: tuple[Interval, ...]
    reference_x: float | None  # a vertical reference line (e.g. the mean), if it is in range
    reference_label: str
    empty: bool


def range_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values spanning [low, high]: a 1, 2 or 5 step, from a multiple of it at or below `low`."""
    if high <= low:
        low, high = low - 1, high + 1
    step = nice_ceiling((high - low) / count) if high - low > count else 1.0
    start = math.floor(low / step) * step
    n = math.ceil(round((high - start) / step, 9))
    return [start + step * i for i in range(n + 1)]


def _short(name: str, most: int = 30) -> str:
    return name if len(name) <= most else name[: most - 1] + "…"


def interval_chart(
    rows: Sequence[tuple[str, float, float, float]],
    *,
    id: str,
    title: str,
    reference: tuple[float, str] | None = None,
    width: int = 720,
    row_height: int = 30,
) -> IntervalChart:
    """One row per `(label, estimate, low, high)`, in the order given; the axis spans every interval."""
    left, right, top = 250.0, width - 64.0, 8.0
    bottom = top + row_height * len(rows)
    spread = [v for _, value, low, high in rows for v in (value, low, high)]
    ticks = range_ticks(min(spread), max(spread)) if rows else [0.0, 1.0]
    axis_low, axis_high = ticks[0], ticks[-1]

    def x(value: float) -> float:
        return left + (right - left) * (value - axis_low) / (axis_high - axis_low)

    intervals = tuple(
        Interval(
            label=_short(label),
            y=top + row_height * (i + 0.5),
            low_x=x(low),
            high_x=x(high),
            value_x=x(value),
            value_text=f"{format_number(round(value))} (95% interval {format_number(round(low))} to "
            f"{format_number(round(high))})",
            mark=format_number(round(value)),
        )
        for i, (label, value, low, high) in enumerate(rows)
    )
    desc = "; ".join(f"{label}: {iv.value_text}" for (label, *_), iv in zip(rows, intervals, strict=True))
    reference_x = x(reference[0]) if reference and rows and axis_low <= reference[0] <= axis_high else None
    return IntervalChart(
        id=id,
        title=title,
        desc=desc or "Nothing to show.",
        width=width,
        height=int(bottom + 30),
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        value_ticks=tuple(Tick(position=x(v), label=format_number(v)) for v in ticks),
        label_ticks=(),
        intervals=intervals,
        reference_x=reference_x,
        reference_label=reference[1] if reference else "",
        empty=not rows,
    )


def heat_style(share: float | None) -> str:
    """A heat-table cell's inline style for a share from 0 to 1: orange below one half, blue above,
    stronger further from it; the share is always written in the cell as well."""
    if share is None:
        return ""
    distance = min(abs(share - 0.5) * 2, 1.0)
    hue = 212 if share >= 0.5 else 28
    lightness = 97 - 35 * distance  # never darker than 62%: dark text stays readable
    return f"background-color: hsl({hue} 75% {lightness:.0f}%); color: #111;"


@dataclass(frozen=True, slots=True)
class CalibrationPoint:
    """One confidence bin of a reliability diagram: observed agreement (a dot) with its interval (a whisker)."""

    x: float  # drawn at the middle of the bin
    y: float
    low_y: float
    high_y: float
    label: str  # the bin, e.g. "0.8 to 0.9"
    value_text: str  # in words, for the tooltip and the description


@dataclass(frozen=True, slots=True)
class ReliabilityChart(Frame):
    """Observed agreement against stated confidence; the diagonal is perfect calibration."""

    points: tuple[CalibrationPoint, ...]
    diagonal: tuple[float, float, float, float]  # x1, y1, x2, y2: confidence = agreement
    empty: bool


def reliability_chart(
    bins: Sequence[dict[str, Any]], *, id: str = "calibration", width: int = 720, height: int = 340
) -> ReliabilityChart:
    """A reliability diagram from the hand-off report's bins (those with judgments), both axes 0.5 to 1."""
    left, right, top, bottom = 56.0, width - 16.0, 12.0, height - 44.0
    low = 0.5

    def x(value: float) -> float:
        return left + (right - left) * (max(value, low) - low) / (1 - low)

    def y(value: float) -> float:
        return bottom - (bottom - top) * (max(value, low) - low) / (1 - low)

    points = []
    for b in bins:
        if not b["judgments"] or b["agreement"] is None:
            continue
        middle = (b["confidence_low"] + b["confidence_high"]) / 2
        label = f"{b['confidence_low']:.1f} to {b['confidence_high']:.1f}"
        ci_low, ci_high = b["ci"]
        text = (
            f"{b['agreement']:.0%} agreement (95% interval {ci_low:.0%} to {ci_high:.0%}) "
            f"over {b['judgments']} model verdicts"
        )
        points.append(
            CalibrationPoint(
                x=x(middle), y=y(b["agreement"]), low_y=y(ci_low), high_y=y(ci_high), label=label, value_text=text
            )
        )
    ticks = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    desc = "; ".join(f"confidence {p.label}: {p.value_text}" for p in points)
    return ReliabilityChart(
        id=id,
        title="Model judges' agreement with humans by confidence",
        desc=desc or "No model verdict has been checked by humans yet.",
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        value_ticks=tuple(Tick(position=y(v), label=f"{v:.0%}") for v in ticks),
        label_ticks=tuple(Tick(position=x(v), label=f"{v:.1f}") for v in ticks),
        points=tuple(points),
        diagonal=(x(low), y(low), x(1.0), y(1.0)),
        empty=not points,
    )

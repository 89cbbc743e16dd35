"""Chart geometry: round axes, bars in proportion, values as text, words for screen readers."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from server.projects.schemas import HourlyCount, RaterStats
from server.web import charts

START = datetime(2026, 11, 23, 0, tzinfo=UTC)


def _hours(*counts: int, start: datetime = START) -> list[HourlyCount]:
    return [HourlyCount(hour=start + timedelta(hours=i), judgments=n) for i, n in enumerate(counts)]


def _rater(email: str, judgments: int, median_ms: float | None, name: str = "") -> RaterStats:
    return RaterStats(
        user_id=uuid.uuid4(),
        email=email,
        name=name,
        judgments=judgments,
        median_active_ms=median_ms,
        last_judged_at=START,
    )


class TestNumbers:
    @pytest.mark.parametrize(
        ("value", "expected"), [(0, 1), (1, 1), (3, 5), (7, 10), (10, 10), (11, 20), (140, 200), (0.3, 1)]
    )
    def test_nice_ceiling(self, value: float, expected: float) -> None:
        assert charts.nice_ceiling(value) == expected

    @pytest.mark.parametrize(
        ("top", "expected"),
        [(0, [0, 1]), (4, [0, 1, 2, 3, 4]), (9, [0, 5, 10]), (37, [0, 10, 20, 30, 40]), (130, [0, 50, 100, 150])],
    )
    def test_value_ticks_reach_past_the_top(self, top: float, expected: list[float]) -> None:
        assert charts.value_ticks(top) == expected

    @pytest.mark.parametrize(
        ("ms", "text"),
        [(None, "no time recorded"), (850, "850 ms"), (4200, "4.2 s"), (59_949, "59.9 s"), (185_000, "3 min 05 s")],
    )
    def test_format_duration(self, ms: float | None, text: str) -> None:
        assert charts.format_duration(ms) == text

    @pytest.mark.parametrize(("hours", "every"), [(24, 3), (48, 6), (168, 24), (720, 96)])
    def test_label_every_divides_the_day(self, hours: int, every: int) -> None:
        assert charts.label_every(hours) == every


class TestThroughputChart:
    def test_bars_are_proportional_to_counts(self) -> None:
        chart = charts.throughput_chart(_hours(0, 5, 10, 2))
        plot_height = chart.bottom - chart.top
        assert [round(b.height / plot_height, 3) for b in chart.bars] == [0.0, 0.5, 1.0, 0.2]
        assert all(b.y + b.height == pytest.approx(chart.bottom) for b in chart.bars)
        assert [t.label for t in chart.value_ticks] == ["0", "5", "10"]

    def test_every_value_drawn_when_columns_are_wide(self) -> None:
        chart = charts.throughput_chart(_hours(0, 5, 10, 2))
        assert [b.mark for b in chart.bars] == ["", "5", "10", "2"]
        assert chart.bars[1].label == "Nov 23, 01:00 to 02:00 UTC"
        assert chart.bars[1].value_text == "5 judgments"

    def test_narrow_columns_mark_only_the_peak(self) -> None:
        counts = [1] * 47 + [9]
        chart = charts.throughput_chart(_hours(*counts))
        assert [b.mark for b in chart.bars if b.mark] == ["9"]
        assert [t.label for t in chart.label_ticks] == [
            "Nov 23 00:00", "06:00", "12:00", "18:00", "Nov 24 00:00", "06:00", "12:00", "18:00",
        ]  # fmt: skip

    def test_description_says_total_and_busiest_hour(self) -> None:
        chart = charts.throughput_chart(_hours(1, 1, 12, 0, start=START + timedelta(hours=13)))
        assert chart.title == "Judgments per hour"
        assert chart.desc == (
            "14 judgments in the last 4 hours (Nov 23 13:00 to 16:59 UTC). Busiest hour: 15:00 UTC with 12."
        )
        assert not chart.empty

    def test_no_judgments_is_empty_with_flat_axis(self) -> None:
        chart = charts.throughput_chart(_hours(0, 0, 0))
        assert chart.empty
        assert chart.desc == "0 judgments in the last 3 hours (Nov 23 00:00 to 02:59 UTC)."
        assert [b.height for b in chart.bars] == [0, 0, 0]
        assert [t.label for t in chart.value_ticks] == ["0", "1"]


class TestRaterCharts:
    def test_counts_with_text_values(self) -> None:
        stats = [_rater("ana@example.com", 30, 4000, name="Ana"), _rater("bo@example.com", 1, None)]
        chart = charts.rater_count_chart(stats)
        assert [(t.label) for t in chart.label_ticks] == ["Ana", "bo@example.com"]
        assert [b.mark for b in chart.bars] == ["30 judgments", "1 judgment"]
        assert [b.width for b in chart.bars] == pytest.approx(
            [chart.right - chart.left, (chart.right - chart.left) / 30]
        )
        assert chart.desc == "Ana: 30 judgments; bo@example.com: 1 judgment"
        assert chart.height == int(chart.bottom + 4)
        assert [t.position for t in chart.label_ticks] == [b.y - 6 for b in chart.bars]  # each name above its bar

    def test_times_leave_out_raters_without_times(self) -> None:
        stats = [_rater("ana@example.com", 30, 4000), _rater("bo@example.com", 1, None)]
        chart = charts.rater_time_chart(stats)
        assert [(b.label, b.mark) for b in chart.bars] == [("ana@example.com", "4.0 s")]
        assert chart.title == "Median active time per judgment"

    def test_long_names_are_shortened(self) -> None:
        chart = charts.rater_count_chart([_rater("a-very-long-address-for-a-rater@example.com", 2, None)])
        assert chart.bars[0].label == "a-very-long-address-for-a-rater@example…"

    def test_nobody_is_empty(self) -> None:
        chart = charts.rater_time_chart([])
        assert chart.empty
        assert chart.desc == "No active times recorded in this window."

"""meters.readings and meters.charts: freshness, scheduling, history buckets, chart geometry."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.state import Phases
from meters.charts import chart_window, history_chart, history_table, nice_axis, time_ticks
from meters.readings import (
    ChartPoint,
    HistoryAccumulator,
    MeterReading,
    MeterStatus,
    bucket_start,
    downsample,
    is_due,
    merge_summaries,
)

AT = datetime(2026, 11, 25, 12, 0, 3, tzinfo=UTC)


def reading(at: datetime = AT, l1: float | None = 10.0, phases: int = 3) -> MeterReading:
    return MeterReading(measured_at=at, phases=phases, current_a=Phases(l1, 5.0, 6.0), total_power_w=3000.0)


def test_a_reading_names_its_values_and_totals_missing_power():
    built = MeterReading.from_values(AT, {"current_a.l1": 1.0, "power_w.l1": 230.0, "power_w.l2": 460.0, "power_w.l3": 0.0})
    assert built.total_power_w == 690.0
    assert built.value("current_a.l1") == 1.0 and built.value("current_a.l2") is None
    assert built.as_dict()["power_w.l2"] == 460.0 and len(built.as_dict()) == 13
    # A total the meter could not give is not made up from the phases.
    assert MeterReading.from_values(AT, {"power_w.l1": 1.0, "power_w.l2": 1.0, "power_w.l3": 1.0}, missing=("total_power_w",)).total_power_w is None


def test_balancing_needs_every_measured_phase_current():
    assert reading().has_phase_currents
    assert not reading(l1=None).has_phase_currents
    assert MeterReading(AT, phases=1, current_a=Phases(7.0, None, None)).has_phase_currents


def test_a_status_hands_out_its_reading_only_while_fresh():
    status = MeterStatus(1, "grid", 5.0).after_success(reading(), AT, 0.01, 1)
    assert status.fresh_reading(AT + timedelta(seconds=5)) is status.reading
    assert status.fresh_reading(AT + timedelta(seconds=5.01)) is None
    assert status.fresh_reading(AT - timedelta(seconds=6)) is None  # from the future: clocks disagree
    assert MeterStatus(1, "grid", 5.0).fresh_reading(AT) is None


def test_failures_count_up_keep_the_last_reading_and_reset_on_success():
    status = MeterStatus(1, "grid", 5.0).after_success(reading(), AT, 0.01, 1)
    failed = status.after_failure("no answer", AT + timedelta(seconds=1), 1.0).after_failure("no answer", AT + timedelta(seconds=2), 1.0)
    assert (failed.error, failed.consecutive_failures, failed.reading) == ("no answer", 2, status.reading)
    assert failed.last_poll_at == AT + timedelta(seconds=2)
    recovered = failed.after_success(reading(AT + timedelta(seconds=3)), AT + timedelta(seconds=3), 0.01, 1)
    assert (recovered.error, recovered.consecutive_failures) == ("", 0)


def test_a_meter_is_due_once_its_interval_has_nearly_passed():
    assert is_due(None, 1.0, AT)
    assert not is_due(AT, 1.0, AT + timedelta(seconds=0.5))
    assert is_due(AT, 1.0, AT + timedelta(seconds=0.85))  # a beat a little early still polls
    assert not is_due(AT, 10.0, AT + timedelta(seconds=5))


def test_buckets_align_to_the_clock():
    assert bucket_start(AT, 10) == datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    assert bucket_start(AT + timedelta(seconds=7), 10) == datetime(2026, 11, 25, 12, 0, 10, tzinfo=UTC)


def test_the_accumulator_closes_a_bucket_when_the_next_begins():
    accumulator = HistoryAccumulator(10)
    assert accumulator.add(reading(AT, 10.0)) is None
    assert accumulator.add(reading(AT + timedelta(seconds=1), 14.0)) is None
    assert accumulator.add(reading(AT + timedelta(seconds=2), None)) is None
    closed = accumulator.add(reading(AT + timedelta(seconds=8), 20.0))
    assert closed is not None and closed.count == 3
    assert closed.summary()["current_a.l1"] == [12.0, 10.0, 14.0, 2]
    assert closed.summary()["current_a.l2"] == [5.0, 5.0, 5.0, 3]
    assert accumulator.take().summary()["current_a.l1"] == [20.0, 20.0, 20.0, 1]
    assert accumulator.take() is None


@given(st.lists(st.floats(-1000, 1000), min_size=1, max_size=30), st.integers(0, 29))
def test_merging_summaries_equals_summarising_everything(values, split):
    split = min(split, len(values) - 1)
    def summary(part):
        return {"x": [sum(part) / len(part), min(part), max(part), len(part)]} if part else {}
    merged = merge_summaries(summary(values[:split]), summary(values[split:]))
    average, minimum, maximum, samples = merged["x"]
    assert (minimum, maximum, samples) == (min(values), max(values), len(values))
    assert average == pytest.approx(sum(values) / len(values), abs=1e-6)


def test_downsampling_merges_buckets_into_steps():
    buckets = [(AT + timedelta(seconds=10 * i), {"current_a.l1": [float(i), float(i) - 1, float(i) + 1, 10]}) for i in range(60)]
    points = downsample(buckets, "current_a.l1", 300)
    assert [point.start_at.minute for point in points] == [0, 5]
    assert points[0].average == pytest.approx(14.5) and points[0].minimum == -1.0 and points[0].maximum == 30.0
    assert downsample(buckets, "voltage_v.l1", 300) == []


def test_the_chart_fits_its_box_and_breaks_at_gaps():
    start = AT - timedelta(hours=24)
    points = [ChartPoint(start + timedelta(minutes=5 * i), 10.0 + i % 3, 9.0, 13.0) for i in range(12)]
    points += [ChartPoint(start + timedelta(hours=5, minutes=5 * i), 20.0, 18.0, 25.0) for i in range(6)]
    chart = history_chart({"L1": points}, start, AT, 300, "A")
    assert not chart.empty and len(chart.series[0].lines) == 2  # the 4-hour hole is a gap
    coordinates = [tuple(map(float, pair.split(","))) for line in chart.series[0].lines for pair in line.split()]
    assert all(chart.plot_left <= x <= chart.width and 0 <= y <= chart.plot_bottom for x, y in coordinates)
    assert [label for _, label in chart.y_ticks] == ["0 A", "10 A", "20 A", "30 A"]
    assert len(chart.x_ticks) == 8 and all(label.endswith(("00:00", "3:00", "6:00", "9:00", "2:00", "5:00", "8:00", "1:00")) for _, label in chart.x_ticks)
    assert history_chart({"L1": []}, start, AT, 300, "A").empty


def test_the_history_table_is_hourly_newest_first():
    start = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    buckets = [(start + timedelta(minutes=30 * i), {"total_power_w": [1000.0 * i, 0.0, 2000.0 * i, 10], "current_a.l1": [1.0, 1.0, 1.0, 10]}) for i in range(4)]
    rows = history_table(buckets, ("l1",), 3600)
    assert [row.start_at.hour for row in rows] == [11, 10]
    assert rows[0].power.average == 2500.0 and rows[0].currents[0].average == 1.0


def test_the_power_axis_reads_in_kilowatts_without_exponents():
    start = AT - timedelta(hours=1)
    points = [ChartPoint(start + timedelta(minutes=5 * i), 9_970_000.0 * i / 11, 0.0, 9_970_000.0 * i / 11) for i in range(12)]
    chart = history_chart({"total": points}, start, AT, 300, "W")
    labels = [label for _, label in chart.y_ticks]
    assert labels == ["0 MW", "2.5 MW", "5 MW", "7.5 MW", "10 MW"]
    assert not any("e+" in label or "e-" in label for label in labels) and chart.unit == "MW"


def test_a_small_site_power_axis_reads_in_kilowatts():
    start = AT - timedelta(hours=1)
    points = [ChartPoint(start + timedelta(minutes=5 * i), 11_040.0, 0.0, 22_080.0) for i in range(12)]
    assert [label for _, label in history_chart({"total": points}, start, AT, 300, "W").y_ticks][-1] == "30 kW"


@given(st.floats(-1e9, 1e9), st.floats(-1e9, 1e9))
def test_nice_axes_hold_every_value_with_round_steps(a, b):
    low, high = min(a, b, 0.0), max(a, b, 0.0)
    axis_low, axis_high, step = nice_axis(low, high)
    assert axis_low <= low + step * 1e-6 and axis_high >= high - step * 1e-6  # within a millionth of a step
    assert 1 <= round((axis_high - axis_low) / step) <= 8
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(abs(mantissa - nice) < 1e-6 for nice in (1, 2, 2.5, 5))


def test_a_fresh_meters_chart_window_fits_its_data_not_a_whole_day():
    start, step_s = chart_window(AT - timedelta(minutes=40), AT)
    assert (AT - start, step_s) == (timedelta(minutes=40), 10)
    start, step_s = chart_window(AT - timedelta(minutes=2), AT)
    assert AT - start == timedelta(minutes=15)  # at least a quarter hour
    start, step_s = chart_window(AT - timedelta(days=3), AT)
    assert (AT - start, step_s) == (timedelta(hours=24), 300)
    assert chart_window(None, AT)[0] == AT - timedelta(hours=24)


def test_time_ticks_are_round_clock_times_suited_to_the_window():
    ticks = time_ticks(datetime(2026, 1, 1, 10, 3, tzinfo=UTC), datetime(2026, 1, 1, 10, 43, tzinfo=UTC))
    assert [f"{tick:%H:%M}" for tick in ticks] == ["10:05", "10:10", "10:15", "10:20", "10:25", "10:30", "10:35", "10:40"]

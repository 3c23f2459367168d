"""Geometry of the 24-hour history chart, drawn as inline SVG (the box has no internet: no
chart library from a CDN). Pure: points in, coordinates and labels out."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from meters.readings import ChartPoint, downsample

COLORS = ("#1d4ed8", "#b45309", "#047857", "#7c3aed")
_MARGIN_LEFT = 56
_MARGIN_BOTTOM = 22
_MARGIN_TOP = 8


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    color: str
    lines: tuple[str, ...]  # SVG polyline "x,y x,y ..." per run without gaps
    bands: tuple[str, ...]  # SVG polygon of min..max per run


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    series: tuple[Series, ...]
    y_ticks: tuple[tuple[float, str], ...]
    x_ticks: tuple[tuple[float, str], ...]
    unit: str
    empty: bool
    plot_left: int = _MARGIN_LEFT
    plot_bottom: float = 0.0


def history_chart(
    series: dict[str, list[ChartPoint]],
    start_at: datetime,
    end_at: datetime,
    step_s: int,
    unit: str,
    width: int = 900,
    height: int = 220,
) -> Chart:
    values = [value for points in series.values() for point in points for value in (point.minimum, point.maximum)]
    plot_bottom = height - _MARGIN_BOTTOM
    if not values:
        return Chart(width, height, (), (), (), unit, True, plot_bottom=plot_bottom)
    low, high, tick_step = nice_axis(min(0.0, *values), max(0.0, *values))
    span_s = max((end_at - start_at).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return round(_MARGIN_LEFT + (width - _MARGIN_LEFT - 4) * (at - start_at).total_seconds() / span_s, 1)

    def y(value: float) -> float:
        return round(plot_bottom - (plot_bottom - _MARGIN_TOP) * (value - low) / (high - low), 1)

    drawn = []
    for index, (name, points) in enumerate(series.items()):
        lines, bands = [], []
        for run in _runs(points, step_s):
            lines.append(" ".join(f"{x(p.start_at)},{y(p.average)}" for p in run))
            upper = [f"{x(p.start_at)},{y(p.maximum)}" for p in run]
            lower = [f"{x(p.start_at)},{y(p.minimum)}" for p in reversed(run)]
            bands.append(" ".join(upper + lower))
        drawn.append(Series(name, COLORS[index % len(COLORS)], tuple(lines), tuple(bands)))
    scale, prefix = si_scale(max(abs(low), abs(high)))
    tick_count = round((high - low) / tick_step)
    y_ticks = tuple(
        (y(low + tick_step * i), f"{_plain_number((low + tick_step * i) / scale)} {prefix}{unit}") for i in range(tick_count + 1)
    )
    x_ticks = tuple((x(at), f"{at:%H:%M}") for at in time_ticks(start_at, end_at))
    return Chart(width, height, tuple(drawn), y_ticks, x_ticks, f"{prefix}{unit}", False, plot_bottom=plot_bottom)


_NICE_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)
_SI_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"))
_TIME_TICK_STEPS_MIN = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360)


def nice_axis(low: float, high: float, ticks: int = 4) -> tuple[float, float, float]:
    """(low, high, step) widened to round numbers (1, 2, 2.5 or 5 times a power of ten), so
    the axis reads 0, 2.5, 5, 7.5, 10 rather than 0, 2.493, 4.986..."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return 0.0, 1.0, 0.25
    if high - low < 1e-9:
        high = low + 1.0
    raw = (high - low) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(nice * magnitude for nice in _NICE_STEPS if nice * magnitude >= raw * (1 - 1e-9))
    return math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step, step


def si_scale(largest: float) -> tuple[float, str]:
    """(divisor, prefix) so that the largest value reads with at most three digits: W -> kW -> MW."""
    for scale, prefix in _SI_PREFIXES:
        if largest >= scale:
            return scale, prefix
    return 1.0, ""


def _plain_number(value: float) -> str:
    """At most three decimals, no exponent, no trailing zeros: 2.5, 10, 0.125."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def time_ticks(start_at: datetime, end_at: datetime, most: int = 8) -> list[datetime]:
    """Round clock times across the window, at most `most` of them: every 5 min for a fresh
    meter's quarter hour, every 3 h for a full day."""
    span_min = max((end_at - start_at).total_seconds() / 60, 1.0)
    step_min = next((step for step in _TIME_TICK_STEPS_MIN if span_min / step <= most), _TIME_TICK_STEPS_MIN[-1])
    midnight = start_at.replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = math.ceil((start_at - midnight).total_seconds() / 60 / step_min) * step_min
    ticks = []
    at = midnight + timedelta(minutes=minutes)
    while at <= end_at:
        ticks.append(at)
        at += timedelta(minutes=step_min)
    return ticks


MIN_WINDOW_S = 15 * 60
_CHART_STEPS_S = (10, 30, 60, 120, 300)


def chart_window(first_at: datetime | None, now: datetime, max_span_s: int = 86400, points: int = 300) -> tuple[datetime, int]:
    """(start of the chart, seconds per point): the window fits the data (a meter added ten
    minutes ago fills the chart instead of a sliver of a day), at least 15 minutes, at most
    `max_span_s`; the step keeps about `points` points across it."""
    span_s = max_span_s if first_at is None else (now - first_at).total_seconds()
    span_s = min(max(span_s, MIN_WINDOW_S), max_span_s)
    step_s = next((step for step in _CHART_STEPS_S if span_s / step <= points), _CHART_STEPS_S[-1])
    return now - timedelta(seconds=span_s), step_s


def _runs(points: list[ChartPoint], step_s: int) -> list[list[ChartPoint]]:
    """Split where more than two steps are missing, so a gap shows as a gap."""
    runs: list[list[ChartPoint]] = []
    for point in points:
        if runs and (point.start_at - runs[-1][-1].start_at).total_seconds() <= 2 * step_s:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


@dataclass(frozen=True, slots=True)
class HistoryRow:
    start_at: datetime
    power: ChartPoint | None
    currents: tuple[ChartPoint | None, ...]


def history_table(
    buckets: list[tuple[datetime, dict[str, list[float | int]]]], phases: tuple[str, ...], step_s: int
) -> list[HistoryRow]:
    """Total power and per-phase current per `step_s` (newest first), for the history table."""
    columns = {
        quantity: {point.start_at: point for point in downsample(buckets, quantity, step_s)}
        for quantity in ("total_power_w", *(f"current_a.{phase}" for phase in phases))
    }
    starts = sorted({start_at for points in columns.values() for start_at in points}, reverse=True)
    return [
        HistoryRow(
            start_at,
            columns["total_power_w"].get(start_at),
            tuple(columns[f"current_a.{phase}"].get(start_at) for phase in phases),
        )
        for start_at in starts
    ]


def meter_charts(
    buckets: list[tuple[datetime, dict[str, list[float | int]]]],
    phases: tuple[str, ...],
    start_at: datetime,
    end_at: datetime,
    step_s: int,
) -> tuple[Chart, Chart]:
    """(per-phase current chart, total power chart) over start_at..end_at."""
    currents = history_chart(
        {phase.upper(): downsample(buckets, f"current_a.{phase}", step_s) for phase in phases}, start_at, end_at, step_s, "A"
    )
    power = history_chart({"total": downsample(buckets, "total_power_w", step_s)}, start_at, end_at, step_s, "W")
    return currents, power

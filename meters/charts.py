"""Geometry of the 24-hour history chart, drawn as inline SVG (the box has no internet: no
chart library from a CDN). Pure: points in, coordinates and labels out."""

from __future__ import annotations

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
    low, high = min(0.0, *values), max(0.0, *values)
    if high - low < 1e-9:
        high = low + 1.0
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
    y_ticks = tuple((y(low + (high - low) * i / 4), f"{low + (high - low) * i / 4:.4g}") for i in range(5))
    first_hour = start_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    x_ticks = tuple(
        (x(first_hour + timedelta(hours=h)), f"{(first_hour + timedelta(hours=h)):%H:%M}")
        for h in range(0, int(span_s // 3600) + 1, 3)
        if first_hour + timedelta(hours=h) <= end_at
    )
    return Chart(width, height, tuple(drawn), y_ticks, x_ticks, unit, False, plot_bottom=plot_bottom)


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

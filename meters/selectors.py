"""Reads of meter data for balancing, pages and the poller.

Hot path (balancing, live partial): `grid_reading(now)`, `fresh_reading`, `meter_status` read
process memory (embedded) or the cache (scale-out), never the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from meters import live
from meters.catalog import catalog
from meters.models import Meter, MeterHistory
from meters.poller import MeterConfig
from meters.readings import PHASE_NAMES, MeterReading, MeterStatus


def meter_config(meter: Meter) -> MeterConfig:
    return MeterConfig(
        meter_id=meter.pk,
        name=meter.name,
        model_key=meter.model_key,
        role=meter.role,
        connection=meter.connection(),
        unit_id=meter.unit_id,
        poll_interval_s=meter.poll_interval_s,
        stale_after_s=meter.stale_after_s,
    )


def enabled_meter_configs() -> list[MeterConfig]:
    """Every enabled meter, as the poller needs it (one query)."""
    return [meter_config(meter) for meter in Meter.objects.filter(enabled=True)]


def meter_status(meter_id: int) -> MeterStatus | None:
    """The last known status: last good reading, last error, poll figures."""
    return live.get_status(meter_id)


def meter_statuses(meter_ids: list[int]) -> dict[int, MeterStatus]:
    return live.get_statuses(meter_ids)


def latest_reading(meter_id: int) -> MeterReading | None:
    """The last good reading however old; check `measured_at` or use fresh_reading."""
    status = live.get_status(meter_id)
    return status.reading if status else None


def fresh_reading(meter_id: int, now: datetime) -> MeterReading | None:
    """The last reading if younger than the meter's staleness limit, else None."""
    status = live.get_status(meter_id)
    return status.fresh_reading(now) if status else None


def grid_status() -> MeterStatus | None:
    meter_id = live.get_grid_meter_id()
    return live.get_status(meter_id) if meter_id is not None else None


def grid_reading(now: datetime) -> MeterReading | None:
    """What the grid connection point measures, for balancing; None means "do not trust it":
    no enabled grid meter, no reading yet, a reading older than the meter's staleness limit,
    or a reading without every phase's current. Balancing then applies its failsafe."""
    status = grid_status()
    reading = status.fresh_reading(now) if status else None
    if reading is None or not reading.has_phase_currents:
        return None
    return reading


def meter_history(meter_id: int, since: datetime) -> list[tuple[datetime, dict]]:
    """Stored buckets (oldest first): [(start_at, {quantity: [avg, min, max, samples]})]."""
    return list(
        MeterHistory.objects.filter(meter_id=meter_id, start_at__gte=since)
        .order_by("start_at")
        .values_list("start_at", "values")
    )


@dataclass(frozen=True, slots=True)
class MeterRow:
    """One meter as the pages show it."""

    meter: Meter
    status: MeterStatus | None
    state: str  # "ok", "retrying" (fresh reading, last poll failed), "stale", "error", "waiting", "disabled"
    reading: MeterReading | None
    age_s: float | None
    model_name: str


def meter_row(meter: Meter, status: MeterStatus | None, now: datetime) -> MeterRow:
    reading = status.reading if status else None
    if not meter.enabled:
        state = "disabled"
    elif status is None:
        state = "waiting"
    elif status.is_stale(now):
        state = "stale" if reading is not None else "error"
    elif status.error:
        state = "retrying"
    else:
        state = "ok"
    meter_map = catalog().get(meter.model_key)
    return MeterRow(
        meter=meter,
        status=status,
        state=state,
        reading=reading,
        age_s=reading.age_s(now) if reading else None,
        model_name=meter_map.name if meter_map else f"{meter.model_key} (map missing)",
    )


def meter_rows(now: datetime) -> list[MeterRow]:
    """Every meter with its live state (one query for the meters, none for readings)."""
    meters = list(Meter.objects.all())
    statuses = live.get_statuses([meter.pk for meter in meters])
    return [meter_row(meter, statuses.get(meter.pk), now) for meter in meters]


def meter_phases(meter: Meter) -> tuple[str, ...]:
    """The phases the meter's model measures ('l1',) or ('l1', 'l2', 'l3')."""
    meter_map = catalog().get(meter.model_key)
    return PHASE_NAMES[: meter_map.phases if meter_map else 3]

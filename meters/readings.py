"""What a meter measured, how fresh it is, and its downsampled history.

Pure: stdlib and linkray_site.electrical only; no Django, pymodbus, sockets, files or clock. Times are
arguments (`now`, `measured_at`), aware UTC datetimes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from linkray_site.electrical import Phases

PHASE_NAMES = ("l1", "l2", "l3")
PER_PHASE_QUANTITIES = ("voltage_v", "current_a", "power_w")
TOTAL_QUANTITIES = ("total_power_w", "import_energy_wh", "export_energy_wh", "frequency_hz")
# Every value a map can provide, named as in MeterReading ("current_a.l2" is one phase).
QUANTITIES = tuple(
    f"{quantity}.{phase}" for quantity in PER_PHASE_QUANTITIES for phase in PHASE_NAMES
) + TOTAL_QUANTITIES

# Values outside these bounds come from a wrong map, a wrong word order or a confused meter;
# they are dropped (listed in MeterReading.missing), never passed on.
PLAUSIBLE_RANGES = {
    "voltage_v": (0.0, 2_000.0),
    "current_a": (-10_000.0, 10_000.0),
    "power_w": (-10_000_000.0, 10_000_000.0),
    "total_power_w": (-30_000_000.0, 30_000_000.0),
    "import_energy_wh": (0.0, 1e15),
    "export_energy_wh": (0.0, 1e15),
    "frequency_hz": (0.0, 100.0),
}


def quantity_family(quantity: str) -> str:
    """'current_a.l2' -> 'current_a'."""
    return quantity.split(".", 1)[0]


def plausible(quantity: str, value: float) -> bool:
    low, high = PLAUSIBLE_RANGES[quantity_family(quantity)]
    return math.isfinite(value) and low <= value <= high


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One complete poll of one meter, in V, A, W, Wh and Hz.

    `None` means the meter did not give that value (not in its map, marked not available, or
    implausible); `missing` names those the map promised but this poll could not deliver.
    Power is as the meter reports it (most meters: positive = import; see docs/meters.md).
    """

    measured_at: datetime
    phases: int = 3
    voltage_v: Phases = field(default_factory=Phases)
    current_a: Phases = field(default_factory=Phases)
    power_w: Phases = field(default_factory=Phases)
    total_power_w: float | None = None
    import_energy_wh: float | None = None
    export_energy_wh: float | None = None
    frequency_hz: float | None = None
    missing: tuple[str, ...] = ()

    @classmethod
    def from_values(
        cls, measured_at: datetime, values: dict[str, float | None], *, phases: int = 3, missing: tuple[str, ...] = ()
    ) -> MeterReading:
        per_phase = {
            quantity: Phases(*(values.get(f"{quantity}.{phase}") for phase in PHASE_NAMES))
            for quantity in PER_PHASE_QUANTITIES
        }
        total_power_w = values.get("total_power_w")
        if total_power_w is None and "total_power_w" not in missing:
            # Meters without a total register (or single-phase ones) still get one.
            phase_powers = per_phase["power_w"].as_tuple()[:phases]
            if all(value is not None for value in phase_powers):
                total_power_w = float(sum(phase_powers))
        return cls(
            measured_at=measured_at,
            phases=phases,
            total_power_w=total_power_w,
            import_energy_wh=values.get("import_energy_wh"),
            export_energy_wh=values.get("export_energy_wh"),
            frequency_hz=values.get("frequency_hz"),
            missing=missing,
            **per_phase,
        )

    def value(self, quantity: str) -> float | None:
        family, _, phase = quantity.partition(".")
        value = getattr(self, family)
        return getattr(value, phase) if phase else value

    def as_dict(self) -> dict[str, float | None]:
        """Every quantity by name ('current_a.l1': 12.5, ...), for history and JSON."""
        return {quantity: self.value(quantity) for quantity in QUANTITIES}

    @property
    def has_phase_currents(self) -> bool:
        """True when every phase the meter measures has a current: what balancing needs."""
        return all(value is not None for value in self.current_a.as_tuple()[: self.phases])

    def age_s(self, now: datetime) -> float:
        return (now - self.measured_at).total_seconds()


@dataclass(frozen=True, slots=True)
class MeterStatus:
    """The latest known state of one meter: its last good reading and its last error.

    Kept in memory (embedded) or the cache (scale-out) so balancing and pages read it
    without touching the database.
    """

    meter_id: int
    role: str
    stale_after_s: float
    reading: MeterReading | None = None
    error: str = ""
    error_at: datetime | None = None
    consecutive_failures: int = 0
    last_poll_at: datetime | None = None
    poll_duration_s: float | None = None
    requests_per_poll: int | None = None

    def fresh_reading(self, now: datetime) -> MeterReading | None:
        """The last reading if it is younger than the staleness limit, else None."""
        if self.reading is None:
            return None
        age_s = self.reading.age_s(now)
        # A reading from the future (clocks of two processes disagreeing) counts as fresh only
        # within the same limit.
        if abs(age_s) > self.stale_after_s:
            return None
        return self.reading

    def is_stale(self, now: datetime) -> bool:
        return self.fresh_reading(now) is None

    def after_success(
        self, reading: MeterReading, now: datetime, poll_duration_s: float, requests_per_poll: int
    ) -> MeterStatus:
        return replace(
            self,
            reading=reading,
            error="",
            consecutive_failures=0,
            last_poll_at=now,
            poll_duration_s=poll_duration_s,
            requests_per_poll=requests_per_poll,
        )

    def after_failure(self, reason: str, now: datetime, poll_duration_s: float) -> MeterStatus:
        return replace(
            self,
            error=reason,
            error_at=now,
            consecutive_failures=self.consecutive_failures + 1,
            last_poll_at=now,
            poll_duration_s=poll_duration_s,
        )


def is_due(last_poll_at: datetime | None, interval_s: float, now: datetime, tolerance_s: float = 0.2) -> bool:
    """Whether a meter polled at `last_poll_at` is due again (scale-out scheduling).

    The tolerance keeps a 1 s meter on a 1 s beat from skipping every other tick when the beat
    arrives a few milliseconds early.
    """
    if last_poll_at is None:
        return True
    return (now - last_poll_at).total_seconds() >= interval_s - tolerance_s


# --- history -------------------------------------------------------------------------------


def bucket_start(at: datetime, bucket_s: int) -> datetime:
    """The start of the `bucket_s`-second bucket that holds `at` (aligned to the epoch)."""
    timestamp = at.timestamp()
    return datetime.fromtimestamp(timestamp - timestamp % bucket_s, UTC)


@dataclass(slots=True)
class HistoryBucket:
    """Average, minimum and maximum of each quantity over one bucket of readings."""

    start_at: datetime
    count: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    minimums: dict[str, float] = field(default_factory=dict)
    maximums: dict[str, float] = field(default_factory=dict)

    def add(self, reading: MeterReading) -> None:
        self.count += 1
        for quantity, value in reading.as_dict().items():
            if value is None:
                continue
            self.sums[quantity] = self.sums.get(quantity, 0.0) + value
            self.counts[quantity] = self.counts.get(quantity, 0) + 1
            self.minimums[quantity] = min(self.minimums.get(quantity, value), value)
            self.maximums[quantity] = max(self.maximums.get(quantity, value), value)

    def summary(self) -> dict[str, list[float | int]]:
        """{quantity: [average, minimum, maximum, samples]} for the quantities seen."""
        return {
            quantity: [
                self.sums[quantity] / self.counts[quantity],
                self.minimums[quantity],
                self.maximums[quantity],
                self.counts[quantity],
            ]
            for quantity in self.sums
        }


def merge_summaries(
    first: dict[str, list[float | int]], second: dict[str, list[float | int]]
) -> dict[str, list[float | int]]:
    """Combine two summaries of the same bucket (two processes polled the same meter)."""
    merged = dict(first)
    for quantity, (average, minimum, maximum, samples) in second.items():
        if quantity not in merged:
            merged[quantity] = [average, minimum, maximum, samples]
            continue
        old_average, old_minimum, old_maximum, old_samples = merged[quantity]
        total = old_samples + samples
        merged[quantity] = [
            (old_average * old_samples + average * samples) / total,
            min(old_minimum, minimum),
            max(old_maximum, maximum),
            total,
        ]
    return merged


class HistoryAccumulator:
    """Collects one meter's readings into buckets; hands back each bucket once it closes."""

    def __init__(self, bucket_s: int):
        self.bucket_s = bucket_s
        self.current: HistoryBucket | None = None

    def add(self, reading: MeterReading) -> HistoryBucket | None:
        start_at = bucket_start(reading.measured_at, self.bucket_s)
        closed = None
        if self.current is not None and self.current.start_at != start_at:
            closed, self.current = self.current, None
        if self.current is None:
            self.current = HistoryBucket(start_at)
        self.current.add(reading)
        return closed

    def take(self) -> HistoryBucket | None:
        """The open bucket, if it has readings (at shutdown)."""
        bucket, self.current = self.current, None
        return bucket if bucket is not None and bucket.count else None


@dataclass(frozen=True, slots=True)
class ChartPoint:
    start_at: datetime
    average: float
    minimum: float
    maximum: float


def downsample(
    buckets: list[tuple[datetime, dict[str, list[float | int]]]], quantity: str, step_s: int
) -> list[ChartPoint]:
    """Merge stored buckets (oldest first) into `step_s` steps of one quantity, for a chart."""
    points: list[ChartPoint] = []
    merged: dict[datetime, dict[str, list[float | int]]] = {}
    for start_at, summary in buckets:
        if quantity not in summary:
            continue
        step_at = bucket_start(start_at, step_s)
        merged[step_at] = merge_summaries(merged.get(step_at, {}), {quantity: summary[quantity]})
    for step_at in sorted(merged):
        average, minimum, maximum, _ = merged[step_at][quantity]
        points.append(ChartPoint(step_at, float(average), float(minimum), float(maximum)))
    return points


def retention_cutoff(now: datetime, retention_h: float) -> datetime:
    return now - timedelta(hours=retention_h)

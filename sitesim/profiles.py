"""The charger side of OCPP 1.6 smart charging: which installed profiles a charger keeps, and
the limit they add up to at a moment (OCPP 1.6 ed.2 §3.13, §5.5, §5.16;
docs: /work/shared/docs/ocpp16-smart-charging.md §3).

Pure: stdlib only, `now` is an argument. The simulated charger is an honest, independent
peer of LinkRay, so it implements stacking here rather than reusing LinkRay's code.

Payloads are what the `ocpp` package hands a handler: snake_case keys (`stack_level`,
`charging_profile_purpose`, `charging_schedule`, ...). Limits are returned in amperes per
phase; a W limit becomes A at the charger's voltage and phase count.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

CHARGE_POINT_MAX = "ChargePointMaxProfile"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"
PURPOSES = (CHARGE_POINT_MAX, TX_DEFAULT, TX)
KINDS = ("Absolute", "Recurring", "Relative")
RECURRENCY_S = {"Daily": 86_400, "Weekly": 7 * 86_400}
RATE_UNITS = ("A", "W")
# ChargingScheduleAllowedChargingRateUnit value -> units accepted.
ALLOWED_UNITS = {"Current": {"A"}, "Power": {"W"}}

ACCEPTED = "Accepted"
REJECTED = "Rejected"
UNKNOWN = "Unknown"


class ProfileError(ValueError):
    """A charging profile this charger cannot take, with the reason."""


@dataclass(frozen=True)
class SchedulePeriod:
    start_period_s: float
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True)
class ChargingProfile:
    charging_profile_id: int
    connector_id: int
    stack_level: int
    purpose: str
    kind: str
    rate_unit: str
    periods: tuple[SchedulePeriod, ...]
    duration_s: float | None = None
    start_schedule_at: datetime | None = None
    recurrency_kind: str | None = None
    valid_from_at: datetime | None = None
    valid_to_at: datetime | None = None
    transaction_id: int | None = None
    installed_at: datetime | None = None

    def is_valid_at(self, now: datetime) -> bool:
        """Validity as §3.13.2 judges it: validFrom/validTo only."""
        if self.valid_from_at is not None and now < self.valid_from_at:
            return False
        return not (self.valid_to_at is not None and now >= self.valid_to_at)

    def limit_at(self, now: datetime, transaction_started_at: datetime | None = None) -> tuple[float, str] | None:
        """(limit, unit) of the period in force at `now`, or None when the schedule does not
        cover `now` (not valid, before its start, past its duration, Relative with no
        transaction)."""
        if not self.is_valid_at(now):
            return None
        start_at = self._schedule_start_at(transaction_started_at)
        if start_at is None:
            return None
        elapsed_s = (now - start_at).total_seconds()
        if self.kind == "Recurring":
            elapsed_s %= RECURRENCY_S[self.recurrency_kind or "Daily"]
        if elapsed_s < 0 or (self.duration_s is not None and elapsed_s >= self.duration_s):
            return None
        in_force = [period for period in self.periods if period.start_period_s <= elapsed_s]
        if not in_force:
            return None
        return in_force[-1].limit, self.rate_unit

    def _schedule_start_at(self, transaction_started_at: datetime | None) -> datetime | None:
        if self.kind == "Relative":
            return transaction_started_at
        # Absolute without startSchedule (some backends, libocpp PR #114): from installation.
        return self.start_schedule_at or self.valid_from_at or self.installed_at


def parse_datetime(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProfileError(f"{name}: expected a date-time string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise ProfileError(f"{name}: {value!r} is not a date-time") from error
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _number(payload: Mapping, name: str, *, required: bool = True) -> float | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise ProfileError(f"{name} is missing")
        return None
    # The ocpp package parses JSON numbers with decimals as Decimal.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ProfileError(f"{name}: expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ProfileError(f"{name}: expected a finite number, got {value!r}")
    return int(value) if isinstance(value, int) else number


def _integer(payload: Mapping, name: str, *, required: bool = True) -> int | None:
    value = _number(payload, name, required=required)
    if value is None:
        return None
    if value != int(value):
        raise ProfileError(f"{name}: expected a whole number, got {value!r}")
    return int(value)


def parse_profile(connector_id: int, payload: Mapping, *, now: datetime) -> ChargingProfile:
    """A `csChargingProfiles` payload (snake_case keys) as a ChargingProfile, or ProfileError."""
    if not isinstance(payload, Mapping):
        raise ProfileError(f"expected a charging profile object, got {payload!r}")
    purpose = payload.get("charging_profile_purpose")
    if purpose not in PURPOSES:
        raise ProfileError(f"charging_profile_purpose {purpose!r} is not one of {PURPOSES}")
    kind = payload.get("charging_profile_kind")
    if kind not in KINDS:
        raise ProfileError(f"charging_profile_kind {kind!r} is not one of {KINDS}")
    recurrency_kind = payload.get("recurrency_kind")
    if recurrency_kind is not None and (not isinstance(recurrency_kind, str) or recurrency_kind not in RECURRENCY_S):
        raise ProfileError(f"recurrency_kind {recurrency_kind!r} is not Daily or Weekly")
    schedule = payload.get("charging_schedule")
    if not isinstance(schedule, Mapping):
        raise ProfileError("charging_schedule is missing")
    rate_unit = schedule.get("charging_rate_unit")
    if rate_unit not in RATE_UNITS:
        raise ProfileError(f"charging_rate_unit {rate_unit!r} is not A or W")
    raw_periods = schedule.get("charging_schedule_period")
    if not isinstance(raw_periods, list) or not raw_periods:
        raise ProfileError("charging_schedule_period must be a non-empty list")
    periods = []
    for raw in raw_periods:
        if not isinstance(raw, Mapping):
            raise ProfileError(f"schedule period {raw!r} is not an object")
        limit = _number(raw, "limit")
        if limit < 0:
            raise ProfileError(f"limit {limit} is negative")
        start_period_s = _number(raw, "start_period")
        if start_period_s < 0:
            raise ProfileError(f"start_period {start_period_s} is negative")
        number_phases = _integer(raw, "number_phases", required=False)
        if number_phases is not None and number_phases not in (1, 2, 3):
            raise ProfileError(f"number_phases {number_phases} is not 1, 2 or 3")
        periods.append(SchedulePeriod(start_period_s, limit, number_phases))
    periods.sort(key=lambda period: period.start_period_s)
    profile_id = _integer(payload, "charging_profile_id")
    stack_level = _integer(payload, "stack_level")
    transaction_id = _integer(payload, "transaction_id", required=False)
    return ChargingProfile(
        charging_profile_id=int(profile_id),
        connector_id=int(connector_id),
        stack_level=int(stack_level),
        purpose=purpose,
        kind=kind,
        rate_unit=rate_unit,
        periods=tuple(periods),
        duration_s=_number(schedule, "duration", required=False),
        start_schedule_at=parse_datetime(schedule.get("start_schedule"), "start_schedule"),
        recurrency_kind=recurrency_kind,
        valid_from_at=parse_datetime(payload.get("valid_from"), "valid_from"),
        valid_to_at=parse_datetime(payload.get("valid_to"), "valid_to"),
        transaction_id=None if transaction_id is None else int(transaction_id),
        installed_at=now,
    )


@dataclass(frozen=True)
class Electrics:
    """What a charger needs to turn W into A and to judge a profile."""

    voltage_v: float = 230.0
    phase_count: int = 3
    max_stack_level: int = 8
    allowed_rate_units: str = "Current,Power"
    # §5.16.3 read literally: one profile per (stackLevel, purpose) on the whole charger. Some
    # firmware (and OCPP 2.0.1) keeps one per connector instead.
    slot_per_connector: bool = False

    def accepts_unit(self, rate_unit: str) -> bool:
        return any(rate_unit in ALLOWED_UNITS.get(part.strip(), set()) for part in self.allowed_rate_units.split(","))

    def to_current_a(self, limit: float, rate_unit: str) -> float:
        if rate_unit == "A":
            return limit
        return limit / (self.voltage_v * self.phase_count)


@dataclass
class ProfileStore:
    """The profiles one charger holds, and their composite per connector."""

    profiles: list[ChargingProfile] = field(default_factory=list)

    def copy(self) -> ProfileStore:
        return ProfileStore(copy.copy(self.profiles))

    def find(self, charging_profile_id: int) -> ChargingProfile | None:
        """The installed profile with this chargingProfileId, or None (ids are unique)."""
        return next((p for p in self.profiles if p.charging_profile_id == charging_profile_id), None)

    def install(
        self, profile: ChargingProfile, electrics: Electrics, *, active_transaction_id: int | None
    ) -> tuple[str, str]:
        """Store the profile under §3.13/§5.16 rules: (status, reason). `active_transaction_id`
        is the transaction running on the profile's connector, if any."""
        if profile.stack_level < 0 or profile.stack_level > electrics.max_stack_level:
            return REJECTED, f"stack_level {profile.stack_level} outside 0..{electrics.max_stack_level}"
        if not electrics.accepts_unit(profile.rate_unit):
            return REJECTED, f"unit {profile.rate_unit} not in {electrics.allowed_rate_units}"
        if profile.purpose == CHARGE_POINT_MAX and profile.connector_id != 0:
            return REJECTED, "ChargePointMaxProfile only on connector 0"
        if profile.purpose == TX:
            if profile.connector_id == 0:
                return REJECTED, "TxProfile only on a connector > 0"
            if active_transaction_id is None:
                return REJECTED, "TxProfile without an active transaction"
            if profile.transaction_id is not None and profile.transaction_id != active_transaction_id:
                return REJECTED, f"transaction {profile.transaction_id} is not the active {active_transaction_id}"
        def slot(p: ChargingProfile) -> tuple:
            return (p.stack_level, p.purpose, p.connector_id if electrics.slot_per_connector else None)

        self.profiles = [
            kept
            for kept in self.profiles
            if kept.charging_profile_id != profile.charging_profile_id and slot(kept) != slot(profile)
        ]
        self.profiles.append(profile)
        return ACCEPTED, ""

    def clear(
        self,
        *,
        charging_profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> str:
        """ClearChargingProfile (§5.5): by id, else every profile matching all given criteria
        (none given: all). "Accepted" when something was cleared, else "Unknown"."""
        if charging_profile_id is not None:
            cleared = [p for p in self.profiles if p.charging_profile_id == charging_profile_id]
        else:
            cleared = [
                p
                for p in self.profiles
                if connector_id in (None, p.connector_id)
                and purpose in (None, p.purpose)
                and stack_level in (None, p.stack_level)
            ]
        self.profiles = [p for p in self.profiles if p not in cleared]
        return ACCEPTED if cleared else UNKNOWN

    def end_transaction(self, connector_id: int) -> None:
        """TxProfiles end with their transaction (§3.13.1)."""
        self.profiles = [p for p in self.profiles if not (p.purpose == TX and p.connector_id == connector_id)]

    def _prevailing(
        self, purpose: str, connector_ids: tuple[int, ...], now: datetime, transaction_started_at: datetime | None
    ) -> tuple[float, str] | None:
        candidates = [p for p in self.profiles if p.purpose == purpose and p.connector_id in connector_ids]
        for profile in sorted(candidates, key=lambda p: p.stack_level, reverse=True):
            limit = profile.limit_at(now, transaction_started_at)
            if limit is not None:
                return limit
        return None

    def limit_a(
        self, connector_id: int, now: datetime, electrics: Electrics, *, transaction_started_at: datetime | None = None
    ) -> float | None:
        """The composite limit on the connector at `now` in A per phase, None when no profile
        applies (the charger may then draw its maximum): min(TxProfile, else TxDefaultProfile
        of the connector, else of connector 0; ChargePointMaxProfile)."""
        limits: list[float] = []
        transaction_limit = None
        if transaction_started_at is not None:
            transaction_limit = self._prevailing(TX, (connector_id,), now, transaction_started_at)
        if transaction_limit is None:
            started_at = transaction_started_at
            transaction_limit = self._prevailing(TX_DEFAULT, (connector_id,), now, started_at)
            if transaction_limit is None and connector_id != 0:
                transaction_limit = self._prevailing(TX_DEFAULT, (0,), now, started_at)
        if transaction_limit is not None:
            limits.append(electrics.to_current_a(*transaction_limit))
        maximum = self._prevailing(CHARGE_POINT_MAX, (0,), now, transaction_started_at)
        if maximum is not None:
            limits.append(electrics.to_current_a(*maximum))
        return min(limits) if limits else None


def schedule_profile(
    charging_profile_id: int,
    limit: float,
    *,
    purpose: str = TX_DEFAULT,
    stack_level: int = 0,
    rate_unit: str = "A",
    kind: str = "Absolute",
    start_schedule_at: datetime | None = None,
    duration_s: float | None = None,
    transaction_id: int | None = None,
    valid_from_at: datetime | None = None,
    valid_to_at: datetime | None = None,
) -> dict:
    """A one-period `csChargingProfiles` payload (snake_case, as the `ocpp` package sends and
    receives it) — for the sitesim CSMS and tests."""
    schedule: dict = {"charging_rate_unit": rate_unit, "charging_schedule_period": [{"start_period": 0, "limit": limit}]}
    if kind != "Relative":
        schedule["start_schedule"] = (start_schedule_at or datetime(2000, 1, 1, tzinfo=UTC)).isoformat()
    if duration_s is not None:
        schedule["duration"] = int(duration_s)
    payload: dict = {
        "charging_profile_id": charging_profile_id,
        "stack_level": stack_level,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": kind,
        "charging_schedule": schedule,
    }
    if transaction_id is not None:
        payload["transaction_id"] = transaction_id
    if valid_from_at is not None:
        payload["valid_from"] = valid_from_at.isoformat()
    if valid_to_at is not None:
        payload["valid_to"] = valid_to_at.isoformat()
    return payload


__all__ = [
    "ACCEPTED",
    "CHARGE_POINT_MAX",
    "REJECTED",
    "TX",
    "TX_DEFAULT",
    "UNKNOWN",
    "ChargingProfile",
    "Electrics",
    "ProfileError",
    "ProfileStore",
    "SchedulePeriod",
    "parse_profile",
    "schedule_profile",
]

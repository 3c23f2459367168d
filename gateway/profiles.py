"""OCPP 1.6 charging profiles: the ones LinkRay builds, and what the CSMS's installed ones allow.

Pure: stdlib only; `now` is an argument. See ../shared/docs/ocpp16-smart-charging.md §3.

Public API
----------
- `LINKRAY_PROFILE_ID_BASE`, `is_linkray_profile_id(profile_id)`: LinkRay's own profile ids live
  far above what back offices hand out; the CSMS never sees them (LinkRay's CALLs and answers
  stay between LinkRay and the charger).
- `BALANCING_PROFILE_ID`: the one ChargePointMaxProfile (connector 0) balancing keeps installed.
- `balancing_stack_level(max_stack_level)`: the highest level the charger allows (§3.7);
  `DEFAULT_MAX_STACK_LEVEL` when the charger has not told.
- `balancing_profile_request(limit, rate_unit, *, stack_level, now) -> dict`: the
  SetChargingProfile.req payload for balancing (ChargePointMaxProfile, Absolute, one period
  starting a minute in the past, no duration). The charger takes the minimum of it and the
  CSMS's TxProfile/TxDefaultProfile (§3.13.3); it neither replaces nor lifts them.
- `stop_energy_request(connector_id, transaction_id) -> dict`: a 0 A TxProfile for one
  transaction (offline: StopTransactionOnInvalidId=false).
- `rate_unit_for(kind, allowed_units, configured)`: "A" or "W" for a charger.
- `parse_allowed_rate_units(value)`, `parse_max_stack_level(value)`: GetConfiguration values.
- `composite_limit_a(profiles, connector_id, now, *, transaction_id, transaction_started_at,
  phase_count, voltage_v) -> float | None`: what the given profiles allow on one connector right
  now, per phase in A (W limits converted at the nominal voltage); None = no limit in force.
- `charger_cap_a(profiles, connector_ids, transactions, now, *, phase_count, voltage_v)`: the same
  for the charger as a whole (ChargePointMax against the sum of its busy connectors).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

LINKRAY_PROFILE_ID_BASE = 900_000_000
LINKRAY_PROFILE_ID_LIMIT = 900_010_000
BALANCING_PROFILE_ID = LINKRAY_PROFILE_ID_BASE + 9_000
# Most chargers allow at least 3 levels (ABB Terra AC: 3, EVBox: 6); the spec requires the key.
DEFAULT_MAX_STACK_LEVEL = 3
MAX_SANE_STACK_LEVEL = 100

CHARGE_POINT_MAX = "ChargePointMaxProfile"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"

_RECURRENCE_S = {"Daily": 86_400, "Weekly": 7 * 86_400}


class ProfileRecord(Protocol):
    """What an installed profile exposes (gateway.state.InstalledProfile)."""

    connector_id: int
    charging_profile_id: int
    stack_level: int
    purpose: str
    transaction_id: int | None
    profile: dict[str, Any]


def is_linkray_profile_id(profile_id: Any) -> bool:
    return isinstance(profile_id, int) and LINKRAY_PROFILE_ID_BASE <= profile_id < LINKRAY_PROFILE_ID_LIMIT


def balancing_stack_level(max_stack_level: int | None) -> int:
    if max_stack_level is None or max_stack_level < 0:
        return DEFAULT_MAX_STACK_LEVEL
    return min(max_stack_level, MAX_SANE_STACK_LEVEL)


def _limit_value(limit: float) -> float | int:
    # multipleOf 0.1 on the wire; round down so the charger never gets more than decided.
    tenths = int(max(0.0, limit) * 10 + 1e-9)
    return tenths // 10 if tenths % 10 == 0 else tenths / 10


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def balancing_profile_request(limit: float, rate_unit: str, *, stack_level: int, now: datetime) -> dict[str, Any]:
    if rate_unit not in ("A", "W"):
        raise ValueError(f"rate_unit {rate_unit!r}: expected 'A' or 'W'")
    return {
        "connectorId": 0,
        "csChargingProfiles": {
            "chargingProfileId": BALANCING_PROFILE_ID,
            "stackLevel": stack_level,
            "chargingProfilePurpose": CHARGE_POINT_MAX,
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                # A start in the past: a start in the future would leave the charger on its
                # default (unlimited) behaviour until then (§3.13.2).
                "startSchedule": _iso(now - timedelta(minutes=1)),
                "chargingRateUnit": rate_unit,
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": _limit_value(limit)}],
            },
        },
    }


def stop_energy_request(connector_id: int, transaction_id: int) -> dict[str, Any]:
    return {
        "connectorId": connector_id,
        "csChargingProfiles": {
            "chargingProfileId": LINKRAY_PROFILE_ID_BASE + connector_id,
            "transactionId": transaction_id,
            "stackLevel": 0,
            "chargingProfilePurpose": TX,
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 0}]},
        },
    }


def parse_allowed_rate_units(value: Any) -> tuple[str, ...] | None:
    """`"Current,Power"` -> ("A", "W"); None when unreadable."""
    if not isinstance(value, str):
        return None
    units = []
    for item in value.split(","):
        name = item.strip().lower()
        if name in ("current", "a") and "A" not in units:
            units.append("A")
        elif name in ("power", "w") and "W" not in units:
            units.append("W")
    return tuple(units) or None


def parse_max_stack_level(value: Any) -> int | None:
    try:
        level = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return level if level >= 0 else None


def rate_unit_for(kind: str, allowed_units: Sequence[str] | None, configured: str | None) -> str:
    """The configured unit wins; else what the charger allows (DC prefers W, AC prefers A)."""
    if configured in ("A", "W"):
        return configured
    preferred = "W" if kind == "dc" else "A"
    if not allowed_units or preferred in allowed_units:
        return preferred
    return allowed_units[0]


# --- what the CSMS's profiles allow ---------------------------------------------------------


def _parse_dt(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and value not in (float("inf"), float("-inf")) else None


def profile_limit_a(
    profile: Mapping[str, Any],
    now: datetime,
    *,
    transaction_started_at: datetime | None,
    phase_count: int,
    voltage_v: float,
) -> float | None:
    """The limit one profile sets at `now` in A per phase, or None when it is not in force
    (outside validFrom/validTo, before its start, past its duration, unreadable)."""
    if not isinstance(profile, Mapping):
        return None
    valid_from = _parse_dt(profile.get("validFrom"))
    valid_to = _parse_dt(profile.get("validTo"))
    if (valid_from is not None and now < valid_from) or (valid_to is not None and now >= valid_to):
        return None
    schedule = profile.get("chargingSchedule")
    if not isinstance(schedule, Mapping):
        return None
    kind = profile.get("chargingProfileKind")
    start = _parse_dt(schedule.get("startSchedule"))
    if kind == "Relative":
        start = transaction_started_at or now
    elif kind == "Recurring":
        period_s = _RECURRENCE_S.get(profile.get("recurrencyKind"))
        if start is None or period_s is None:
            return None
    elif kind == "Absolute":
        start = start or valid_from or now
    else:
        return None
    elapsed_s = (now - start).total_seconds()
    if kind == "Recurring":
        if elapsed_s < 0:
            return None
        elapsed_s %= period_s
    if elapsed_s < 0:
        return None
    duration_s = _number(schedule.get("duration"))
    if duration_s is not None and elapsed_s >= duration_s:
        return None
    periods = schedule.get("chargingSchedulePeriod")
    if not isinstance(periods, list):
        return None
    limit = None
    number_phases = None
    best_start = -1.0
    for period in periods:
        if not isinstance(period, Mapping):
            continue
        start_period = _number(period.get("startPeriod"))
        value = _number(period.get("limit"))
        if start_period is None or value is None or start_period > elapsed_s or start_period < best_start:
            continue
        best_start, limit = start_period, value
        number_phases = period.get("numberPhases")
    if limit is None:
        return None
    unit = schedule.get("chargingRateUnit")
    if unit == "A":
        return max(0.0, limit)
    if unit == "W":
        phases = number_phases if isinstance(number_phases, int) and number_phases in (1, 2, 3) else phase_count
        return max(0.0, limit) / (phases * voltage_v)
    return None


def _prevailing(
    profiles: Iterable[ProfileRecord], now: datetime, *, started_at: datetime | None, phase_count: int, voltage_v: float
) -> float | None:
    """Within one purpose the profile in force with the highest stack level wins (§3.13.2)."""
    for record in sorted(profiles, key=lambda record: record.stack_level, reverse=True):
        limit = profile_limit_a(
            record.profile, now, transaction_started_at=started_at, phase_count=phase_count, voltage_v=voltage_v
        )
        if limit is not None:
            return limit
    return None


def composite_limit_a(
    profiles: Sequence[ProfileRecord],
    connector_id: int,
    now: datetime,
    *,
    transaction_id: int | None = None,
    transaction_started_at: datetime | None = None,
    phase_count: int = 3,
    voltage_v: float = 230.0,
) -> float | None:
    """The minimum of the prevailing ChargePointMaxProfile and the prevailing TxProfile (or,
    without one, TxDefaultProfile: the connector's own before connector 0's) (§3.13.3)."""
    options = {"started_at": transaction_started_at, "phase_count": phase_count, "voltage_v": voltage_v}
    ours = [record for record in profiles if not is_linkray_profile_id(record.charging_profile_id)]
    charge_point_max = _prevailing((r for r in ours if r.purpose == CHARGE_POINT_MAX and r.connector_id == 0), now, **options)
    transaction_limit = None
    if transaction_id is not None and connector_id > 0:
        transaction_limit = _prevailing(
            (
                r
                for r in ours
                if r.purpose == TX and r.connector_id == connector_id and r.transaction_id in (None, transaction_id)
            ),
            now,
            **options,
        )
    if transaction_limit is None:
        transaction_limit = _prevailing(
            (r for r in ours if r.purpose == TX_DEFAULT and r.connector_id == connector_id and connector_id > 0), now, **options
        )
    if transaction_limit is None:
        transaction_limit = _prevailing((r for r in ours if r.purpose == TX_DEFAULT and r.connector_id == 0), now, **options)
    limits = [limit for limit in (charge_point_max, transaction_limit) if limit is not None]
    return min(limits) if limits else None


def charger_cap_a(
    profiles: Sequence[ProfileRecord],
    transactions: Mapping[int, tuple[int, datetime | None]],
    now: datetime,
    *,
    phase_count: int = 3,
    voltage_v: float = 230.0,
) -> float | None:
    """What the CSMS allows the whole charger: per busy connector (`transactions`: connector_id
    -> (transaction_id, started_at)) its composite, summed, under the ChargePointMaxProfile."""
    options = {"phase_count": phase_count, "voltage_v": voltage_v}
    ours = [record for record in profiles if not is_linkray_profile_id(record.charging_profile_id)]
    charge_point_max = _prevailing(
        (r for r in ours if r.purpose == CHARGE_POINT_MAX and r.connector_id == 0), now, started_at=None, **options
    )
    connector_ids = sorted(transactions) or [1]
    total = 0.0
    for connector_id in connector_ids:
        transaction_id, started_at = transactions.get(connector_id, (None, None))
        limit = composite_limit_a(
            [r for r in ours if r.purpose != CHARGE_POINT_MAX],
            connector_id,
            now,
            transaction_id=transaction_id,
            transaction_started_at=started_at,
            **options,
        )
        if limit is None:
            total = None
            break
        total += limit
    limits = [limit for limit in (charge_point_max, total) if limit is not None]
    return min(limits) if limits else None

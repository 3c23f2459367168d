"""The live model of one charger, built from the frames LinkRay relays.

Pure data: no Django, no I/O. Serialises to plain JSON-able dicts so the persistence adapter can
store a snapshot without knowing the shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from linkray_site.electrical import Phases  # re-exported: `from gateway.state import Phases` still works


@dataclass(slots=True)
class MeterSnapshot:
    """Latest metered values of one connector (connector 0: the whole charger)."""

    current_a: Phases = field(default_factory=Phases)
    voltage_v: Phases = field(default_factory=Phases)
    power_w: float | None = None
    energy_wh: float | None = None
    offered_current_a: float | None = None
    soc_percent: float | None = None
    measured_at: datetime | None = None


@dataclass(slots=True)
class ConnectorState:
    connector_id: int
    status: str = "Unknown"
    error_code: str = "NoError"
    info: str = ""
    vendor_error_code: str = ""
    status_at: datetime | None = None
    meter: MeterSnapshot = field(default_factory=MeterSnapshot)


@dataclass(slots=True)
class Transaction:
    """An open transaction. `transaction_id` is the id the charger uses; `csms_transaction_id`
    is the back office's id (the same unless the transaction started while the CSMS was away)."""

    transaction_id: int
    connector_id: int
    id_tag: str
    meter_start_wh: int
    started_at: datetime | None
    csms_transaction_id: int | None = None
    id_tag_status: str = "Accepted"


@dataclass(slots=True)
class InstalledProfile:
    """A charging profile the charger accepted (from the CSMS, or LinkRay's own)."""

    connector_id: int
    charging_profile_id: int
    stack_level: int
    purpose: str
    transaction_id: int | None
    profile: dict[str, Any]


@dataclass(slots=True)
class ChargerState:
    charge_box_id: str
    vendor: str = ""
    model: str = ""
    serial_number: str = ""
    firmware_version: str = ""
    boot: dict[str, Any] = field(default_factory=dict)
    boot_status: str = ""
    heartbeat_interval_s: int | None = None
    last_boot_at: datetime | None = None
    last_seen_at: datetime | None = None
    charger_connected: bool = False
    csms_state: str = "down"
    csms_down_since: datetime | None = None
    # Why the CSMS last refused this charger's leg ("HTTP 401"), until a leg is accepted again.
    csms_refused: str = ""
    connectors: dict[int, ConnectorState] = field(default_factory=dict)
    transactions: dict[int, Transaction] = field(default_factory=dict)
    csms_profiles: list[InstalledProfile] = field(default_factory=list)
    # Profiles LinkRay itself installed (balancing), kept apart from the CSMS's.
    linkray_profiles: list[InstalledProfile] = field(default_factory=list)
    # Learned with GetConfiguration: ChargingScheduleAllowedChargingRateUnit as ("A", "W"),
    # ChargeProfileMaxStackLevel. None until the charger told.
    allowed_rate_units: tuple[str, ...] | None = None
    max_stack_level: int | None = None

    def connector(self, connector_id: int) -> ConnectorState:
        existing = self.connectors.get(connector_id)
        if existing is None:
            existing = self.connectors[connector_id] = ConnectorState(connector_id)
        return existing

    def to_dict(self) -> dict[str, Any]:
        # Written out by hand: dataclasses.asdict deep-copies recursively and costs ~8x more,
        # and the flusher serialises every changed charger every second.
        return {
            "charge_box_id": self.charge_box_id,
            "vendor": self.vendor,
            "model": self.model,
            "serial_number": self.serial_number,
            "firmware_version": self.firmware_version,
            "boot": dict(self.boot),
            "boot_status": self.boot_status,
            "heartbeat_interval_s": self.heartbeat_interval_s,
            "last_boot_at": _iso(self.last_boot_at),
            "last_seen_at": _iso(self.last_seen_at),
            "charger_connected": self.charger_connected,
            "csms_state": self.csms_state,
            "csms_down_since": _iso(self.csms_down_since),
            "csms_refused": self.csms_refused,
            "connectors": {str(key): _connector_dict(connector) for key, connector in self.connectors.items()},
            "transactions": {
                str(key): {
                    "transaction_id": tx.transaction_id,
                    "connector_id": tx.connector_id,
                    "id_tag": tx.id_tag,
                    "meter_start_wh": tx.meter_start_wh,
                    "started_at": _iso(tx.started_at),
                    "csms_transaction_id": tx.csms_transaction_id,
                    "id_tag_status": tx.id_tag_status,
                }
                for key, tx in self.transactions.items()
            },
            "csms_profiles": [_profile_dict(profile) for profile in self.csms_profiles],
            "linkray_profiles": [_profile_dict(profile) for profile in self.linkray_profiles],
            "allowed_rate_units": list(self.allowed_rate_units) if self.allowed_rate_units is not None else None,
            "max_stack_level": self.max_stack_level,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChargerState:
        state = cls(charge_box_id=data["charge_box_id"])
        for name in (
            "vendor",
            "model",
            "serial_number",
            "firmware_version",
            "boot",
            "boot_status",
            "heartbeat_interval_s",
            "charger_connected",
            "csms_state",
            "csms_refused",
        ):
            if name in data:
                setattr(state, name, data[name])
        for name in ("last_boot_at", "last_seen_at", "csms_down_since"):
            setattr(state, name, _parse_dt(data.get(name)))
        for raw in (data.get("connectors") or {}).values():
            meter = raw.get("meter") or {}
            state.connectors[int(raw["connector_id"])] = ConnectorState(
                connector_id=int(raw["connector_id"]),
                status=raw.get("status", "Unknown"),
                error_code=raw.get("error_code", "NoError"),
                info=raw.get("info", ""),
                vendor_error_code=raw.get("vendor_error_code", ""),
                status_at=_parse_dt(raw.get("status_at")),
                meter=MeterSnapshot(
                    current_a=Phases(**(meter.get("current_a") or {})),
                    voltage_v=Phases(**(meter.get("voltage_v") or {})),
                    power_w=meter.get("power_w"),
                    energy_wh=meter.get("energy_wh"),
                    offered_current_a=meter.get("offered_current_a"),
                    soc_percent=meter.get("soc_percent"),
                    measured_at=_parse_dt(meter.get("measured_at")),
                ),
            )
        for raw in (data.get("transactions") or {}).values():
            transaction = Transaction(
                transaction_id=int(raw["transaction_id"]),
                connector_id=int(raw["connector_id"]),
                id_tag=raw.get("id_tag", ""),
                meter_start_wh=int(raw.get("meter_start_wh") or 0),
                started_at=_parse_dt(raw.get("started_at")),
                csms_transaction_id=raw.get("csms_transaction_id"),
                id_tag_status=raw.get("id_tag_status", "Accepted"),
            )
            state.transactions[transaction.transaction_id] = transaction
        state.csms_profiles = _profiles_from(data.get("csms_profiles"))
        state.linkray_profiles = _profiles_from(data.get("linkray_profiles"))
        units = data.get("allowed_rate_units")
        if isinstance(units, list) and all(unit in ("A", "W") for unit in units):
            state.allowed_rate_units = tuple(units)
        level = data.get("max_stack_level")
        if isinstance(level, int) and not isinstance(level, bool) and level >= 0:
            state.max_stack_level = level
        return state


def _profile_dict(profile: InstalledProfile) -> dict[str, Any]:
    return {
        "connector_id": profile.connector_id,
        "charging_profile_id": profile.charging_profile_id,
        "stack_level": profile.stack_level,
        "purpose": profile.purpose,
        "transaction_id": profile.transaction_id,
        "profile": profile.profile,
    }


def _profiles_from(raws: Any) -> list[InstalledProfile]:
    profiles = []
    for raw in raws if isinstance(raws, list) else []:
        try:
            profiles.append(
                InstalledProfile(
                    connector_id=int(raw["connector_id"]),
                    charging_profile_id=int(raw["charging_profile_id"]),
                    stack_level=int(raw["stack_level"]),
                    purpose=str(raw["purpose"]),
                    transaction_id=raw.get("transaction_id"),
                    profile=raw.get("profile") or {},
                )
            )
        except (KeyError, TypeError, ValueError):
            continue  # a snapshot from another version: the profile is relearned from traffic
    return profiles


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _phases_dict(phases: Phases) -> dict[str, float | None]:
    return {"l1": phases.l1, "l2": phases.l2, "l3": phases.l3}


def _connector_dict(connector: ConnectorState) -> dict[str, Any]:
    meter = connector.meter
    return {
        "connector_id": connector.connector_id,
        "status": connector.status,
        "error_code": connector.error_code,
        "info": connector.info,
        "vendor_error_code": connector.vendor_error_code,
        "status_at": _iso(connector.status_at),
        "meter": {
            "current_a": _phases_dict(meter.current_a),
            "voltage_v": _phases_dict(meter.voltage_v),
            "power_w": meter.power_w,
            "energy_wh": meter.energy_wh,
            "offered_current_a": meter.offered_current_a,
            "soc_percent": meter.soc_percent,
            "measured_at": _iso(meter.measured_at),
        },
    }


def _parse_dt(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None

"""Learn from relayed traffic: each completed exchange updates a ChargerState and may yield
effects for the persistence adapter to act on.

Pure: `now` is an argument, payloads are whatever the peers sent (so every read is defensive:
a malformed payload is relayed anyway and must never break the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.frames import Call, CallError, CallResult
from gateway.profiles import parse_allowed_rate_units, parse_max_stack_level
from gateway.state import ChargerState, InstalledProfile, MeterSnapshot, Phases, Transaction


@dataclass(frozen=True, slots=True)
class TransactionStarted:
    transaction: Transaction


@dataclass(frozen=True, slots=True)
class TransactionStopped:
    transaction_id: int
    connector_id: int | None
    meter_stop_wh: int | None
    stopped_at: datetime | None
    reason: str


@dataclass(frozen=True, slots=True)
class AuthorizationSeen:
    """The CSMS told us what it thinks of an idTag (feeds the offline authorization cache)."""

    id_tag: str
    status: str
    expiry_date: datetime | None
    parent_id_tag: str


@dataclass(frozen=True, slots=True)
class AuthorizationKeyChanged:
    """The charger accepted a new AuthorizationKey: its next connection uses this password."""

    key_hex: str


Effect = TransactionStarted | TransactionStopped | AuthorizationSeen | AuthorizationKeyChanged


def observe_charger_call(state: ChargerState, call: Call, now: datetime) -> list[Effect]:
    """A CALL from the charger, before any answer: facts that hold whatever the CSMS says."""
    state.last_seen_at = now
    handler = _ON_CHARGER_CALL.get(call.action)
    return handler(state, call.payload, now) if handler else []


def observe_charger_exchange(
    state: ChargerState, call: Call, answer: CallResult | CallError, now: datetime
) -> list[Effect]:
    """A charger CALL and the answer it got (from the CSMS, or from LinkRay while offline)."""
    if not isinstance(answer, CallResult):
        return []
    handler = _ON_CHARGER_EXCHANGE.get(call.action)
    return handler(state, call.payload, answer.payload, now) if handler else []


def observe_local_charger_exchange(
    state: ChargerState, call: Call, answer: CallResult | CallError, now: datetime
) -> list[Effect]:
    """A charger CALL LinkRay answered itself (CSMS away). A StartTransaction answered here
    carries LinkRay's local id: the CSMS has issued none yet (replay maps it later)."""
    effects = observe_charger_exchange(state, call, answer, now)
    for effect in effects:
        if isinstance(effect, TransactionStarted):
            effect.transaction.csms_transaction_id = None
    return effects


def observe_csms_exchange(
    state: ChargerState, call: Call, answer: CallResult | CallError, now: datetime
) -> list[Effect]:
    """A CSMS CALL and the charger's answer."""
    if not isinstance(answer, CallResult):
        return []
    handler = _ON_CSMS_EXCHANGE.get(call.action)
    return handler(state, call.payload, answer.payload, now) if handler else []


def observe_linkray_exchange(
    state: ChargerState, call: Call, answer: CallResult | CallError, now: datetime
) -> list[Effect]:
    """One of LinkRay's own CALLs and the charger's answer (profiles it accepted, what it told
    about its smart-charging configuration)."""
    if not isinstance(answer, CallResult):
        return []
    handler = _ON_LINKRAY_EXCHANGE.get(call.action)
    return handler(state, call.payload, answer.payload, now) if handler else []


def authorization_effects_of(call: Call, answer: CallResult) -> list[Effect]:
    """What a CSMS answer says about the idTag in a charger CALL (for the authorization cache)."""
    if call.action not in ("Authorize", "StartTransaction", "StopTransaction"):
        return []
    return _authorization_effects(call.payload.get("idTag"), answer.payload.get("idTagInfo"))


# --- charger CALLs -------------------------------------------------------------------------


def _status_notification(state: ChargerState, payload: dict, now: datetime) -> list[Effect]:
    connector_id = _int(payload.get("connectorId"))
    if connector_id is None or connector_id < 0:
        return []
    connector = state.connector(connector_id)
    connector.status = _str(payload.get("status"), connector.status)
    connector.error_code = _str(payload.get("errorCode"), "NoError")
    connector.info = _str(payload.get("info"), "")
    connector.vendor_error_code = _str(payload.get("vendorErrorCode"), "")
    connector.status_at = _datetime(payload.get("timestamp")) or now
    return []


def _meter_values(state: ChargerState, payload: dict, now: datetime) -> list[Effect]:
    connector_id = _int(payload.get("connectorId"))
    if connector_id is None or connector_id < 0:
        return []
    meter = state.connector(connector_id).meter
    for meter_value in _list(payload.get("meterValue")):
        if isinstance(meter_value, dict):
            apply_sampled_values(meter, _list(meter_value.get("sampledValue")), _datetime(meter_value.get("timestamp")) or now)
    return []


def apply_sampled_values(meter: MeterSnapshot, sampled_values: list, measured_at: datetime) -> None:
    """Fold one meterValue's samples into the snapshot (OCPP defaults: Energy register in Wh)."""
    touched = False
    for sample in sampled_values:
        if not isinstance(sample, dict):
            continue
        value = _float(sample.get("value"))
        if value is None:
            continue
        if sample.get("location") not in (None, "Outlet", "Inlet"):
            continue
        measurand = sample.get("measurand") or "Energy.Active.Import.Register"
        unit = sample.get("unit")
        phase = sample.get("phase")
        if measurand == "Current.Import":
            touched |= _set_phase(meter.current_a, phase, value)
        elif measurand == "Voltage":
            touched |= _set_phase(meter.voltage_v, phase, value)
        elif measurand == "Current.Offered":
            meter.offered_current_a = value
            touched = True
        elif measurand == "Power.Active.Import" and phase is None:
            meter.power_w = value * 1000 if unit == "kW" else value
            touched = True
        elif measurand == "Energy.Active.Import.Register" and phase is None:
            meter.energy_wh = value * 1000 if unit == "kWh" else value
            touched = True
        elif measurand == "SoC":
            meter.soc_percent = value
            touched = True
    if touched:
        meter.measured_at = measured_at


def _set_phase(phases: Phases, phase: Any, value: float) -> bool:
    # Chargers report L1 or L1-N for phase quantities; a value without a phase is a total
    # or single-phase reading, which we file under L1 only when nothing per-phase exists.
    if phase in ("L1", "L1-N"):
        phases.l1 = value
    elif phase in ("L2", "L2-N"):
        phases.l2 = value
    elif phase in ("L3", "L3-N"):
        phases.l3 = value
    elif phase is None and phases.l2 is None and phases.l3 is None:
        phases.l1 = value
    else:
        return False
    return True


_ON_CHARGER_CALL = {
    "StatusNotification": _status_notification,
    "MeterValues": _meter_values,
}


# --- charger CALL + answer -----------------------------------------------------------------


def _boot_notification(state: ChargerState, request: dict, response: dict, now: datetime) -> list[Effect]:
    state.vendor = _str(request.get("chargePointVendor"), state.vendor)
    state.model = _str(request.get("chargePointModel"), state.model)
    state.serial_number = _str(request.get("chargePointSerialNumber") or request.get("chargeBoxSerialNumber"), "")
    state.firmware_version = _str(request.get("firmwareVersion"), "")
    # Only plain values that are strict JSON (the wire's parser accepts NaN/Infinity; jsonb does not).
    state.boot = {
        key: value
        for key, value in request.items()
        if isinstance(value, str | int) or (isinstance(value, float) and _float(value) is not None)
    }
    state.boot_status = _str(response.get("status"), "")
    state.heartbeat_interval_s = _int(response.get("interval"))
    state.last_boot_at = now
    return []


def _authorize(state: ChargerState, request: dict, response: dict, now: datetime) -> list[Effect]:
    return _authorization_effects(request.get("idTag"), response.get("idTagInfo"))


def _start_transaction(state: ChargerState, request: dict, response: dict, now: datetime) -> list[Effect]:
    effects = _authorization_effects(request.get("idTag"), response.get("idTagInfo"))
    transaction_id = _int(response.get("transactionId"))
    connector_id = _int(request.get("connectorId"))
    if transaction_id is None or connector_id is None:
        return effects
    id_tag_info = response.get("idTagInfo") if isinstance(response.get("idTagInfo"), dict) else {}
    transaction = Transaction(
        transaction_id=transaction_id,
        connector_id=connector_id,
        id_tag=_str(request.get("idTag"), ""),
        meter_start_wh=_int(request.get("meterStart")) or 0,
        started_at=_datetime(request.get("timestamp")) or now,
        # The answer came from the CSMS: its transactionId is the CSMS's own id. (An answer
        # LinkRay gave itself goes through observe_local_charger_exchange, which clears it.)
        csms_transaction_id=transaction_id,
        id_tag_status=_str(id_tag_info.get("status"), "Accepted"),
    )
    state.transactions[transaction_id] = transaction
    effects.append(TransactionStarted(transaction))
    return effects


def _stop_transaction(state: ChargerState, request: dict, response: dict, now: datetime) -> list[Effect]:
    effects = []
    if request.get("idTag"):
        effects = _authorization_effects(request.get("idTag"), response.get("idTagInfo"))
    transaction_id = _int(request.get("transactionId"))
    if transaction_id is None:
        return effects
    transaction = state.transactions.pop(transaction_id, None)
    connector_id = transaction.connector_id if transaction else None
    if connector_id is not None:
        # A TxProfile lives only as long as its transaction (§3.13.1).
        state.csms_profiles = [
            profile
            for profile in state.csms_profiles
            if not (profile.purpose == "TxProfile" and profile.connector_id == connector_id)
        ]
    effects.append(
        TransactionStopped(
            transaction_id=transaction_id,
            connector_id=connector_id,
            meter_stop_wh=_int(request.get("meterStop")),
            stopped_at=_datetime(request.get("timestamp")) or now,
            reason=_str(request.get("reason"), "Local"),
        )
    )
    return effects


def _authorization_effects(id_tag: Any, id_tag_info: Any) -> list[Effect]:
    if not isinstance(id_tag, str) or not id_tag or not isinstance(id_tag_info, dict):
        return []
    status = id_tag_info.get("status")
    if not isinstance(status, str):
        return []
    return [
        AuthorizationSeen(
            id_tag=id_tag,
            status=status,
            expiry_date=_datetime(id_tag_info.get("expiryDate")),
            parent_id_tag=_str(id_tag_info.get("parentIdTag"), ""),
        )
    ]


_ON_CHARGER_EXCHANGE = {
    "BootNotification": _boot_notification,
    "Authorize": _authorize,
    "StartTransaction": _start_transaction,
    "StopTransaction": _stop_transaction,
}


# --- CSMS CALL + charger answer ------------------------------------------------------------


def _set_charging_profile(state: ChargerState, request: dict, response: dict, now: datetime) -> list[Effect]:
    installed = _accepted_profile(request, response)
    if installed is not None:
        install_profile(state, installed)
    return []


def _accepted_profile(request: dict, response: dict) -> InstalledProfile | None:
    """The profile a SetChargingProfile installed, if the charger accepted a readable one."""
    if response.get("status") != "Accepted":
        return None
    connector_id = _int(request.get("connectorId"))
    profile = request.get("csChargingProfiles")
    if connector_id is None or not isinstance(profile, dict):
        return None
    profile_id = _int(profile.get("chargingProfileId"))
    stack_level = _int(profile.get("stackLevel"))
    purpose = profile.get("chargingProfilePurpose")
    if profile_id is None or stack_level is None or not isinstance(purpose, str):
        return None
    return InstalledProfile(
        connector_id=connector_id,
        charging_profile_id=profile_id,
        stack_level=stack_level,
        purpose=purpose,
        transaction_id=_int(profile.get("transactionId")),
        profile=profile,
    )


def install_profile(state: ChargerState, installed: InstalledProfile, *, linkray: bool = False) -> None:
    # Same id anywhere, or same (stackLevel, purpose) on the same connector, is replaced
    # (§5.16.3), whoever installed it: the charger keeps one of the two.
    def kept(existing: InstalledProfile) -> bool:
        return existing.charging_profile_id != installed.charging_profile_id and not (
            existing.connector_id == installed.connector_id
            and existing.stack_level == installed.stack_level
            and existing.purpose == installed.purpose
        )

    state.csms_profiles = [existing for existing in state.csms_profiles if kept(existing)]
    state.linkray_profiles = [existing for existing in state.linkray_profiles if kept(existing)]
    (state.linkray_profiles if linkray else state.csms_profiles).append(installed)


def _clear_charging_profile(state: ChargerState, request: dict, response: dict, now: datetime) -> list[Effect]:
    if response.get("status") != "Accepted":
        return []
    clear_profiles(state, request)
    return []


def clear_profiles(state: ChargerState, request: dict) -> None:
    # A criterion that is present but unreadable matches nothing: it must not widen the clear.
    for key in ("id", "connectorId", "stackLevel"):
        if request.get(key) is not None and _int(request.get(key)) is None:
            return
    if request.get("chargingProfilePurpose") is not None and not isinstance(request.get("chargingProfilePurpose"), str):
        return
    profile_id = _int(request.get("id"))
    connector_id = _int(request.get("connectorId"))
    purpose = request.get("chargingProfilePurpose")
    stack_level = _int(request.get("stackLevel"))

    def cleared(profile: InstalledProfile) -> bool:
        if profile_id is not None:
            return profile.charging_profile_id == profile_id
        return (
            (connector_id is None or profile.connector_id == connector_id)
            and (purpose is None or profile.purpose == purpose)
            and (stack_level is None or profile.stack_level == stack_level)
        )

    state.csms_profiles = [profile for profile in state.csms_profiles if not cleared(profile)]
    # The charger applies the criteria to every profile it holds, LinkRay's too.
    state.linkray_profiles = [profile for profile in state.linkray_profiles if not cleared(profile)]


def _change_configuration(state: ChargerState, request: dict, response: dict, now: datetime) -> list[Effect]:
    if request.get("key") == "AuthorizationKey" and response.get("status") == "Accepted":
        value = request.get("value")
        if isinstance(value, str) and value:
            return [AuthorizationKeyChanged(value)]
    return []


_ON_CSMS_EXCHANGE = {
    "SetChargingProfile": _set_charging_profile,
    "ClearChargingProfile": _clear_charging_profile,
    "ChangeConfiguration": _change_configuration,
}


# --- LinkRay CALL + charger answer ---------------------------------------------------------


def _linkray_set_charging_profile(state: ChargerState, request: dict, response: dict, now: datetime) -> list[Effect]:
    installed = _accepted_profile(request, response)
    if installed is not None:
        install_profile(state, installed, linkray=True)
    return []


def _linkray_get_configuration(state: ChargerState, request: dict, response: dict, now: datetime) -> list[Effect]:
    for entry in _list(response.get("configurationKey")):
        if not isinstance(entry, dict):
            continue
        if entry.get("key") == "ChargingScheduleAllowedChargingRateUnit":
            state.allowed_rate_units = parse_allowed_rate_units(entry.get("value")) or state.allowed_rate_units
        elif entry.get("key") == "ChargeProfileMaxStackLevel":
            level = parse_max_stack_level(entry.get("value"))
            if level is not None:
                state.max_stack_level = level
    return []


_ON_LINKRAY_EXCHANGE = {
    "SetChargingProfile": _linkray_set_charging_profile,
    "GetConfiguration": _linkray_get_configuration,
}


# --- defensive readers ---------------------------------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return result if result == result and result not in (float("inf"), float("-inf")) else None


def _str(value: Any, default: str) -> str:
    return value if isinstance(value, str) else default


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None

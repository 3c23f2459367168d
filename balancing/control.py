"""run_cycle(now): the one place where balancing's I/O meets its pure core.

    snapshot (site settings + setpoint, grid reading, chargers' live states and settings)
      -> balancing.allocation.allocate -> balancing.pacing.plan_sends
      -> LinkRay's own SetChargingProfile through gateway.commands.send_call
      -> the decision and what the charger answered, stored on ChargerBalancing

The same code runs in the embedded loop (balancing.loop) and in Celery (balancing.tasks), with
or without the CSMS: LinkRay's own CALLs never reach the CSMS.

LinkRay's profile: a ChargePointMaxProfile on connector 0 (gateway.profiles), at the highest
stack level the charger allows (ChargeProfileMaxStackLevel, read once per connection with
GetConfiguration), in the unit the charger accepts. The charger takes the minimum of it and the
CSMS's TxProfile/TxDefaultProfile, and the allocation never gives more than the CSMS composite,
so LinkRay never lifts a CSMS limit and never touches a CSMS profile.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from balancing.allocation import Allocation, ChargerAllocation, ChargerInput, Reason, SiteLimits, allocate
from balancing.models import ChargerBalancing, Setpoint, SiteSettings
from balancing.selectors import active_setpoint, site_limits
from balancing.pacing import SentLimit, plan_sends
from gateway import commands, profiles
from gateway.models import Charger
from gateway.runtime import runtime
from gateway.state import ChargerState
from linkray_site.electrical import DC_DEFAULT_WIRING, parse_wiring, to_site_phases
from meters import selectors as meter_selectors

logger = logging.getLogger(__name__)

SITE_STATUS_CACHE_KEY = "balancing.site_status"
_CONFIGURATION_KEYS = ["ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit"]
# Statuses and errors after which a charger is not controllable (its load counts as uncontrolled).
_REFUSING_ERRORS = {"NotSupported", "NotImplemented"}


@dataclass
class ChargerSnapshot:
    balancing: ChargerBalancing
    state: ChargerState | None
    connected: bool

    @property
    def charge_box_id(self) -> str:
        return self.balancing.charger.charge_box_id


@dataclass
class Snapshot:
    site: SiteSettings
    setpoint: Setpoint | None
    chargers: list[ChargerSnapshot]
    # Balancing switched off (or no site limit) while LinkRay's profile is still on the charger:
    # to be released.
    released: list[ChargerSnapshot] = field(default_factory=list)


@dataclass
class CycleResult:
    allocation: Allocation | None
    period_s: float = 1.0
    sent: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    skipped_reason: str = ""


# Per process: what chargers told about their smart-charging configuration in this connection
# ({charge_box_id: (connection key, max stack level, allowed units)}) and sends still running.
_learned: dict[str, tuple[str, int | None, tuple[str, ...] | None]] = {}
_in_flight: dict[str, asyncio.Task] = {}


# --- snapshot --------------------------------------------------------------------------------


def load_snapshot(now: datetime, live_states: dict[str, ChargerState]) -> Snapshot:
    """Settings and every balanced charger; the live model from this process when it holds the
    charger's socket, else as last flushed (at most one flush old)."""
    site = SiteSettings.load()
    missing = Charger.objects.filter(balancing_enabled=True, balancing__isnull=True)
    for charger in missing:
        ChargerBalancing.objects.get_or_create(charger=charger)
    chargers = []
    for balancing in ChargerBalancing.objects.select_related("charger").filter(charger__balancing_enabled=True):
        charger = balancing.charger
        state = live_states.get(charger.charge_box_id)
        connected = state is not None or charger.charger_connected
        if state is None and charger.state and charger.charger_connected:
            state = ChargerState.from_dict({**charger.state, "charge_box_id": charger.charge_box_id})
        chargers.append(ChargerSnapshot(balancing, state, connected))
    released = []
    # With no site limit LinkRay does not balance: nothing of its own stays on any charger either
    # (a last limit, perhaps 0 A, would otherwise hold a car for good).
    releasing = ChargerBalancing.objects.select_related("charger").filter(charger__charger_connected=True, sent_limit__isnull=False)
    if site.grid_limit_a is not None:
        releasing = releasing.filter(charger__balancing_enabled=False)
    for balancing in releasing:
        released.append(ChargerSnapshot(balancing, live_states.get(balancing.charger.charge_box_id), True))
    return Snapshot(site, active_setpoint(now), chargers, released)


def _live_states() -> dict[str, ChargerState]:
    return {
        charge_box_id: session.state
        for charge_box_id, session in list(runtime.sessions.items())
        if not getattr(session, "headless", False) and not getattr(session, "closed", False)
    }


# --- translation to the core -----------------------------------------------------------------


def wiring_of(balancing: ChargerBalancing) -> tuple[int, ...]:
    try:
        return parse_wiring(balancing.wiring_phases, balancing.kind)
    except ValueError as error:
        logger.warning("balancing_wiring_invalid charge_box_id=%s error=%s", balancing.charger.charge_box_id, error)
        return DC_DEFAULT_WIRING


def connection_key(state: ChargerState | None, charger: Charger) -> str:
    """Changes on a reconnect, a reboot or a new transaction: then the limit is sent again."""
    if state is None:
        return ""
    transactions = ",".join(str(key) for key in sorted(state.transactions))
    connected_at = charger.charger_connected_at.isoformat() if charger.charger_connected_at else ""
    booted_at = state.last_boot_at.isoformat() if state.last_boot_at else ""
    return f"{connected_at}|{booted_at}|{transactions}"[:200]


def measured_site_current_a(state: ChargerState, balancing: ChargerBalancing, wiring: tuple[int, ...], voltage_v: float):
    """What the charger draws, on site phases (DC: its power as A per phase on all three)."""
    connectors = [c for key, c in state.connectors.items() if key != 0] or list(state.connectors.values())
    if balancing.kind == ChargerBalancing.Kind.DC:
        power_w = sum(c.meter.power_w or 0.0 for c in connectors)
        per_phase = max(0.0, power_w) / (3 * voltage_v)
        return (per_phase, per_phase, per_phase)
    totals = [0.0, 0.0, 0.0]
    for connector in connectors:
        currents = connector.meter.current_a.as_tuple()
        if all(value is None for value in currents) and connector.meter.power_w:
            share = connector.meter.power_w / (len(wiring) * voltage_v)
            currents = (share,) * len(wiring)
        for index, value in enumerate(to_site_phases(currents, wiring)):
            totals[index] += value
    return (totals[0], totals[1], totals[2])


def charger_input(snapshot: ChargerSnapshot, site: SiteSettings, now: datetime) -> ChargerInput:
    balancing, state = snapshot.balancing, snapshot.state
    wiring = wiring_of(balancing)
    voltage_v = site.nominal_voltage_v
    phase_count = 3 if balancing.kind == ChargerBalancing.Kind.DC else len(wiring)
    transactions = {tx.connector_id: (tx.transaction_id, tx.started_at) for tx in state.transactions.values()}
    cap_a = profiles.charger_cap_a(state.csms_profiles, transactions, now, phase_count=phase_count, voltage_v=voltage_v)
    statuses = {connector.status for key, connector in state.connectors.items() if key != 0}
    measured_a = measured_site_current_a(state, balancing, wiring, voltage_v)
    if balancing.sent_limit is not None and balancing.sent_key == connection_key(state, balancing.charger):
        # It cannot draw more than LinkRay's limit in force. A reading from before a cut would
        # otherwise hide load that is not ours (grid - a stale, higher draw) and free capacity
        # that is not there until its next MeterValues; clamped, the error is on the safe side.
        measured_a = tuple(min(value, balancing.sent_limit) for value in measured_a)
    max_power_w = balancing.max_power_w
    if balancing.kind == ChargerBalancing.Kind.DC and max_power_w is None and balancing.max_current_a is not None:
        # A DC charger given only a maximum current (the form allows it): A per grid phase.
        max_power_w = balancing.max_current_a * 3 * voltage_v
    return ChargerInput(
        charge_box_id=snapshot.charge_box_id,
        kind=balancing.kind,
        wiring=wiring,
        min_current_a=balancing.min_current_a,
        max_current_a=balancing.max_current_a,
        max_power_w=max_power_w,
        priority=balancing.priority,
        controllable=balancing.controllable,
        wants_current=bool(state.transactions),
        suspended_by_ev=bool(state.transactions) and statuses == {"SuspendedEV"},
        measured_current_a=measured_a,
        limit_a=balancing.sent_limit,
        csms_cap_a=cap_a,
        charging_since_s=_seconds(balancing.charging_since_at),
        paused_since_s=_seconds(balancing.paused_since_at),
        limit_raised_at_s=_seconds(balancing.limit_raised_at),
    )


def _seconds(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


# --- the cycle -------------------------------------------------------------------------------


async def run_cycle(now: datetime) -> CycleResult:
    """One control cycle. Never raises for a charger's misbehaviour; a database failure does
    (the caller logs it and goes on)."""
    snapshot = await database_sync_to_async(load_snapshot)(now, _live_states())
    for charger in snapshot.released:
        if charger.charge_box_id not in _in_flight or _in_flight[charger.charge_box_id].done():
            _in_flight[charger.charge_box_id] = asyncio.ensure_future(_release(charger))
    site = snapshot.site
    reading = meter_selectors.grid_reading(now)
    grid_current_a = reading.current_a.as_tuple() if reading is not None else None
    if site.grid_limit_a is None:
        _publish_site_status(site, None, grid_current_a, 0.0, now)
        return CycleResult(None, site.control_period_s, skipped_reason="site limit not set")
    present = [charger for charger in snapshot.chargers if charger.connected and charger.state is not None]
    inputs = [charger_input(charger, site, now) for charger in present]
    allocation = _allocate(site_limits(site, snapshot.setpoint), grid_current_a, inputs, now)
    for problem in allocation.problems:
        logger.warning("balancing_input_problem %s", problem)
    if allocation.failsafe and inputs:
        logger.info("balancing_failsafe chargers=%d", len(inputs))

    keys = {charger.charge_box_id: connection_key(charger.state, charger.balancing.charger) for charger in present}
    sent: dict[str, SentLimit] = {}
    force: set[str] = set()
    for charger in present:
        balancing = charger.balancing
        key = keys[charger.charge_box_id]
        if balancing.sent_key != key or _profile_lost(charger):
            force.add(charger.charge_box_id)
        elif balancing.sent_limit is not None and balancing.sent_at is not None:
            sent[charger.charge_box_id] = SentLimit(balancing.sent_limit, balancing.sent_at.timestamp())
    # A charger refused before is tried again after a reconnect, reboot or new transaction.
    retry = {c.charge_box_id for c in present if not c.balancing.controllable and c.balancing.sent_key != keys[c.charge_box_id]}
    if retry:
        await database_sync_to_async(_mark_controllable)(retry)
        allocation = _allocate(
            site_limits(site, snapshot.setpoint),
            grid_current_a,
            [_with_controllable(i) if i.charge_box_id in retry else i for i in inputs],
            now,
        )
    to_send = plan_sends(
        allocation,
        sent,
        now_s=now.timestamp(),
        increase_interval_s=settings.LINKRAY_BALANCING_INCREASE_INTERVAL_S,
        deadband_a=settings.LINKRAY_BALANCING_DEADBAND_A,
        force=force,
    )
    await database_sync_to_async(_store_decisions)(allocation, [c.balancing for c in snapshot.chargers], now)
    charging_power_w = sum(sum(i.measured_current_a) for i in inputs) * site.nominal_voltage_v
    _publish_site_status(site, allocation, grid_current_a, charging_power_w, now)

    by_id = {charger.charge_box_id: charger for charger in present}
    tasks = []
    for decision in to_send:
        if decision.charge_box_id in _in_flight and not _in_flight[decision.charge_box_id].done():
            continue  # one outstanding CALL per charger; the next cycle asks again
        charger = by_id[decision.charge_box_id]
        task = asyncio.ensure_future(_send_limit(charger, decision, keys[decision.charge_box_id], site, now))
        _in_flight[decision.charge_box_id] = task
        tasks.append(task)
    result = CycleResult(allocation, site.control_period_s)
    if tasks:
        done, _ = await asyncio.wait(tasks, timeout=settings.LINKRAY_BALANCING_CALL_TIMEOUT_S + 1)
        for task in done:
            charge_box_id, accepted = task.result()
            (result.sent if accepted else result.refused).append(charge_box_id)
    return result


def _allocate(site: SiteLimits, grid_current_a, inputs: list[ChargerInput], now: datetime) -> Allocation:
    return allocate(
        site,
        grid_current_a,
        inputs,
        now_s=now.timestamp(),
        rotation_period_s=settings.LINKRAY_BALANCING_ROTATION_PERIOD_S,
        lend_after_s=settings.LINKRAY_BALANCING_LEND_AFTER_S,
        resume_after_s=settings.LINKRAY_BALANCING_RESUME_AFTER_S,
    )


def _profile_lost(charger: ChargerSnapshot) -> bool:
    """The charger no longer holds LinkRay's profile (the CSMS cleared or replaced it). Judged
    only on the live model of this process: a flushed copy may predate the last send."""
    if charger.balancing.sent_limit is None or charger.charge_box_id not in runtime.sessions:
        return False
    return not any(
        profile.charging_profile_id == profiles.BALANCING_PROFILE_ID for profile in charger.state.linkray_profiles
    )


def _with_controllable(charger: ChargerInput) -> ChargerInput:
    return replace(charger, controllable=True)


def _mark_controllable(charge_box_ids: set[str]) -> None:
    ChargerBalancing.objects.filter(charger__charge_box_id__in=charge_box_ids).update(controllable=True, not_controllable_reason="")


def _store_decisions(allocation: Allocation, rows: list[ChargerBalancing], now: datetime) -> None:
    decided = {decision.charge_box_id: decision for decision in allocation.chargers}
    with transaction.atomic():
        for balancing in rows:
            decision = decided.get(balancing.charger.charge_box_id)
            if decision is None:
                fields = {"limit_a": None, "limit_w": None, "reason": "not connected", "decided_at": now}
            else:
                fields = {
                    "limit_a": decision.limit_a,
                    "limit_w": decision.limit_w,
                    "reason": str(decision.reason),
                    "decided_at": now,
                }
            if any(getattr(balancing, name) != value for name, value in fields.items() if name != "decided_at"):
                ChargerBalancing.objects.filter(pk=balancing.pk).update(**fields)


async def _send_limit(charger: ChargerSnapshot, decision: ChargerAllocation, key: str, site: SiteSettings, now: datetime):
    """Send one charger its limit; returns (charge_box_id, accepted)."""
    charge_box_id = charger.charge_box_id
    balancing = charger.balancing
    timeout_s = settings.LINKRAY_BALANCING_CALL_TIMEOUT_S
    try:
        max_stack_level, allowed_units = await _configuration(charger, key, timeout_s)
        unit = profiles.rate_unit_for(balancing.kind, allowed_units, balancing.rate_unit or None)
        limit = decision.limit_w if unit == "W" else decision.limit_a
        request = profiles.balancing_profile_request(
            limit, unit, stack_level=profiles.balancing_stack_level(max_stack_level), now=now
        )
        answer = await commands.send_call(charge_box_id, "SetChargingProfile", request, timeout_s=timeout_s)
    except commands.ChargerNotConnected:
        logger.info("balancing_charger_gone charge_box_id=%s", charge_box_id)
        return charge_box_id, False
    except commands.CallTimedOut:
        await _refused(charger, "did not answer SetChargingProfile", key)
        return charge_box_id, False
    except commands.CallErrorReceived as error:
        await _refused(charger, f"answered SetChargingProfile with CALLERROR {error.error_code}", key)
        return charge_box_id, False
    except Exception:
        logger.exception("balancing_send_failed charge_box_id=%s", charge_box_id)
        return charge_box_id, False
    status = answer.get("status") if isinstance(answer, dict) else None
    if status != "Accepted":
        await _refused(charger, f"answered SetChargingProfile {status or 'without a status'}", key)
        return charge_box_id, False
    logger.info(
        "balancing_limit_sent charge_box_id=%s limit=%s unit=%s reason=%s",
        charge_box_id,
        limit,
        unit,
        decision.reason,
    )
    await database_sync_to_async(_record_sent)(balancing, decision, unit, key, now)
    return charge_box_id, True


async def _release(charger: ChargerSnapshot) -> None:
    """Balancing was switched off (or the site limit removed): remove LinkRay's own profile (by
    its id: nothing of the CSMS's is touched), so the charger is limited by the CSMS alone again."""
    charge_box_id = charger.charge_box_id
    try:
        answer = await commands.send_call(
            charge_box_id,
            "ClearChargingProfile",
            {"id": profiles.BALANCING_PROFILE_ID},
            timeout_s=settings.LINKRAY_BALANCING_CALL_TIMEOUT_S,
        )
    except commands.CommandError as error:
        logger.warning("balancing_release_failed charge_box_id=%s error=%s", charge_box_id, error)
        return
    logger.info("balancing_released charge_box_id=%s status=%s", charge_box_id, answer.get("status"))
    reason = "balancing off" if not charger.balancing.charger.balancing_enabled else "site limit not set"
    await database_sync_to_async(ChargerBalancing.objects.filter(pk=charger.balancing.pk).update)(
        sent_limit=None, sent_unit="", sent_at=None, sent_key="", limit_a=None, limit_w=None, reason=reason
    )


async def _configuration(charger: ChargerSnapshot, key: str, timeout_s: float) -> tuple[int | None, tuple[str, ...] | None]:
    """ChargeProfileMaxStackLevel and the allowed rate units: from the model, else asked once per
    connection (a charger that will not tell gets the conservative defaults)."""
    state = charger.state
    if state is not None and state.max_stack_level is not None:
        return state.max_stack_level, state.allowed_rate_units
    learned = _learned.get(charger.charge_box_id)
    if learned is not None and learned[0] == key:
        return learned[1], learned[2]
    max_stack_level, units = None, None
    try:
        answer = await commands.send_call(charger.charge_box_id, "GetConfiguration", {"key": _CONFIGURATION_KEYS}, timeout_s=timeout_s)
        for entry in answer.get("configurationKey") or []:
            if not isinstance(entry, dict):
                continue
            if entry.get("key") == "ChargeProfileMaxStackLevel":
                max_stack_level = profiles.parse_max_stack_level(entry.get("value"))
            elif entry.get("key") == "ChargingScheduleAllowedChargingRateUnit":
                units = profiles.parse_allowed_rate_units(entry.get("value"))
    except commands.ChargerNotConnected:
        raise
    except commands.CommandError as error:
        logger.warning("balancing_configuration_unknown charge_box_id=%s error=%s", charger.charge_box_id, error)
    _learned[charger.charge_box_id] = (key, max_stack_level, units)
    return max_stack_level, units


def _record_sent(balancing: ChargerBalancing, decision: ChargerAllocation, unit: str, key: str, now: datetime) -> None:
    fields: dict[str, Any] = {
        "sent_limit": decision.limit_a,
        "sent_unit": unit,
        "sent_at": now,
        "sent_key": key,
        "controllable": True,
        "not_controllable_reason": "",
    }
    previous = balancing.sent_limit if balancing.sent_key == key else None
    if decision.limit_a > 0 and (previous is None or previous == 0):
        fields.update(charging_since_at=now, paused_since_at=None)
    elif decision.limit_a == 0 and decision.reason == Reason.IDLE:
        # No car to hold back: the next car starts as soon as its minimum fits, without the
        # resume wait meant for a car LinkRay paused.
        fields.update(paused_since_at=None)
    elif decision.limit_a == 0 and (previous is None or previous > 0):
        fields.update(paused_since_at=now)
    if previous is None or decision.limit_a > previous:
        fields.update(limit_raised_at=now)  # lending waits for the car to ramp after a raise only
    ChargerBalancing.objects.filter(pk=balancing.pk).update(**fields)


async def _refused(charger: ChargerSnapshot, why: str, key: str) -> None:
    logger.warning("balancing_charger_not_controllable charge_box_id=%s reason=%s", charger.charge_box_id, why.replace(" ", "_"))
    await database_sync_to_async(
        ChargerBalancing.objects.filter(pk=charger.balancing.pk).update
    )(controllable=False, not_controllable_reason=why[:200], sent_key=key, sent_limit=None, sent_at=None)


# --- site status for pages and the API ---------------------------------------------------------


def _publish_site_status(
    site: SiteSettings, allocation: Allocation | None, grid_current_a, charging_power_w: float, now: datetime
) -> None:
    status = {
        "decided_at": now.isoformat(),
        "margin_a": site.margin_a,
        "control_period_s": site.control_period_s,
        "failsafe": allocation.failsafe if allocation else grid_current_a is None,
        "limit_in_force_a": allocation.limit_in_force_a if allocation else None,
        "limit_reason": allocation.limit_reason if allocation else "site limit not set",
        "capacity_left_a": allocation.capacity_left_a if allocation else None,
        "charging_power_w": charging_power_w,
        "controlled_chargers": len(allocation.chargers) if allocation else 0,
    }
    cache.set(SITE_STATUS_CACHE_KEY, status, timeout=60)


def last_site_status() -> dict | None:
    return cache.get(SITE_STATUS_CACHE_KEY)

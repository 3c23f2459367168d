"""A simulated charger: real OCPP 1.6J through the `ocpp` package over `websockets`, with one
connector, a car model, and the draw that follows the composite of its charging profiles after
a reaction delay.

    charger = SimulatedCharger("CP1", kind="ac1", phases=("L2",), max_current_a=32)
    await charger.start("ws://127.0.0.1:8000/ocpp")
    await charger.plug_in(energy_wanted_wh=20_000, max_current_a=16)
    charger.current_draw_a()   # {"L2": 16.0}
    await charger.unplug()
    await charger.stop()

`phases` wires the charger's own L1, L2, L3 onto site phases: ("L2", "L3", "L1") means the
charger's L1 is the site's L2. MeterValues carry the charger's own phase names, as a real
charger's do; `current_draw_a()` is per site phase, for the simulated grid meter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import websockets
from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from sitesim.car import Car, charging_state, offered_current_a
from sitesim.profiles import ACCEPTED, Electrics, ProfileError, ProfileStore, parse_profile

logger = logging.getLogger(__name__)

KINDS = ("ac1", "ac3", "dc")
SITE_PHASES = ("L1", "L2", "L3")
CONNECTOR_ID = 1

# Misbehaviour switches.
OBEY = "obey"
IGNORE_PROFILES = "ignore_profiles"  # answers Accepted, draws as if nothing was installed
REJECT_PROFILES = "reject_profiles"  # answers Rejected
NOT_SUPPORTED_PROFILES = "not_supported_profiles"  # answers NotSupported
SILENT_PROFILES = "silent_profiles"  # never answers profile CALLs
PROFILE_BEHAVIOURS = (OBEY, IGNORE_PROFILES, REJECT_PROFILES, NOT_SUPPORTED_PROFILES, SILENT_PROFILES)
PROFILE_ACTIONS = ("SetChargingProfile", "ClearChargingProfile")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _is_call_of(raw: str, actions: tuple[str, ...]) -> bool:
    try:
        message = json.loads(raw)
    except (TypeError, ValueError):
        return False
    return isinstance(message, list) and len(message) == 4 and message[0] == 2 and message[2] in actions


class _Connection:
    """The websocket as the ocpp ChargePoint sees it: records raw frames, and swallows the
    profile CALLs a silent charger never answers."""

    def __init__(self, websocket, charger: SimulatedCharger):
        self.websocket = websocket
        self.charger = charger

    async def recv(self):
        while True:
            message = await self.websocket.recv()
            self.charger.log.append(("in", message))
            if self.charger.profile_behaviour == SILENT_PROFILES and _is_call_of(message, PROFILE_ACTIONS):
                logger.info("sim_charger_ignores_call charge_box_id=%s", self.charger.charge_box_id)
                continue
            return message

    async def send(self, message):
        self.charger.log.append(("out", message))
        await self.websocket.send(message)


class _ChargePoint(ChargePoint):
    """The `ocpp` handlers; every decision is the SimulatedCharger's."""

    charger: SimulatedCharger

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, connector_id, cs_charging_profiles):
        status = self.charger.set_charging_profile(connector_id, cs_charging_profiles)
        profile_id = cs_charging_profiles.get("charging_profile_id") if isinstance(cs_charging_profiles, dict) else None
        self.charger.profile_answers.append((time.monotonic(), "SetChargingProfile", status, profile_id))
        return call_result.SetChargingProfile(status=status)

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(self, **kwargs):
        status = self.charger.clear_charging_profile(**kwargs)
        self.charger.profile_answers.append((time.monotonic(), "ClearChargingProfile", status, kwargs.get("id")))
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_configuration)
    async def on_get_configuration(self, key=None):
        known, unknown = self.charger.get_configuration(key)
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    async def on_change_configuration(self, key, value):
        return call_result.ChangeConfiguration(status=self.charger.change_configuration(key, value))

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag, connector_id=None, charging_profile=None):
        return call_result.RemoteStartTransaction(status=self.charger.remote_start(id_tag, charging_profile))

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id):
        return call_result.RemoteStopTransaction(status=self.charger.remote_stop(transaction_id))

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message, **kwargs):
        return call_result.TriggerMessage(status=self.charger.trigger_message(requested_message))

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(self, connector_id, duration, **kwargs):
        limit_a = self.charger.profile_limit_a()
        if limit_a is None:
            limit_a = self.charger.max_current_a
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=utc_now().isoformat(),
            charging_schedule={
                "duration": duration,
                "charging_rate_unit": "A",
                "charging_schedule_period": [{"start_period": 0, "limit": round(limit_a, 1)}],
            },
        )


class SimulatedCharger:
    def __init__(
        self,
        charge_box_id: str,
        *,
        kind: str = "ac3",
        phases: tuple[str, ...] | None = None,
        max_current_a: float | None = None,
        max_power_w: float | None = None,
        voltage_v: float = 230.0,
        allowed_rate_units: str = "Current,Power",
        max_stack_level: int = 8,
        reaction_delay_s: float = 0.5,
        meter_value_interval_s: float = 1.0,
        heartbeat_interval_s: float | None = None,
        tick_s: float = 0.05,
        id_tag: str = "SIMTAG",
        vendor: str = "LinkRaySim",
        model: str | None = None,
        slot_per_connector: bool = False,
        reconnect_delay_s: float | None = 1.0,
        boot_retry_s: float = 1.0,
        clock: Callable[[], datetime] = utc_now,
    ):
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} is not one of {KINDS}")
        phases = tuple(phases or (("L1",) if kind == "ac1" else SITE_PHASES))
        if kind == "ac1" and len(phases) != 1:
            raise ValueError(f"an ac1 charger is wired to one phase, got {phases}")
        if kind != "ac1" and len(phases) != 3:
            raise ValueError(f"a {kind} charger is wired to three phases, got {phases}")
        if any(phase not in SITE_PHASES for phase in phases) or len(set(phases)) != len(phases):
            raise ValueError(f"phases {phases} must be distinct site phases of {SITE_PHASES}")
        self.charge_box_id = charge_box_id
        self.kind = kind
        self.phases = phases
        self.voltage_v = voltage_v
        if kind == "dc":
            # A DC charger regulates power; on the grid it is a balanced three-phase load.
            self.max_power_w = max_power_w if max_power_w is not None else 50_000.0
            self.max_current_a = max_current_a if max_current_a is not None else self.max_power_w / (voltage_v * 3)
        else:
            self.max_current_a = max_current_a if max_current_a is not None else 16.0
            self.max_power_w = max_power_w if max_power_w is not None else self.max_current_a * voltage_v * len(phases)
        self.configuration: dict[str, str] = {
            "ChargeProfileMaxStackLevel": str(max_stack_level),
            "ChargingScheduleAllowedChargingRateUnit": allowed_rate_units,
            "ChargingScheduleMaxPeriods": "24",
            "MaxChargingProfilesInstalled": "16",
            "MeterValueSampleInterval": str(int(meter_value_interval_s) or 1),
            "MeterValuesSampledData": "Current.Import,Current.Offered,Power.Active.Import,Energy.Active.Import.Register",
            "HeartbeatInterval": str(max(1, round(heartbeat_interval_s)) if heartbeat_interval_s else 0),
        }
        self.reaction_delay_s = reaction_delay_s
        self.meter_value_interval_s = meter_value_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.tick_s = tick_s
        self.id_tag = id_tag
        self.vendor = vendor
        self.model = model or f"Sim-{kind}"
        self.slot_per_connector = slot_per_connector
        self.reconnect_delay_s = reconnect_delay_s
        self.boot_retry_s = boot_retry_s
        self.clock = clock
        self._profile_behaviour = OBEY

        self.profiles = ProfileStore()  # as installed (what GetCompositeSchedule reports)
        self.obeyed_profiles = ProfileStore()  # what the draw follows, reaction_delay_s later
        self.car: Car | None = None
        self.status = "Available"
        self.transaction_id: int | None = None
        self.transaction_started_at: datetime | None = None
        self.energy_delivered_wh = 0.0  # in the current (or last) transaction
        self.energy_register_wh = 0.0  # the meter of the connector, all time
        self.draw_a = 0.0  # per phase, AC side
        self.log: list[tuple[str, str]] = []  # ("in" | "out", raw frame)
        # (time.monotonic() of the answer, action, status, chargingProfileId or None): for the
        # bench's "all new limits acknowledged" and tests that check what was obeyed when.
        self.profile_answers: list[tuple[float, str, str, int | None]] = []
        self.connected = asyncio.Event()
        self.booted = asyncio.Event()  # set while connected with an accepted boot
        self.url: str | None = None
        self.websocket = None
        self.charge_point: _ChargePoint | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._session_task: asyncio.Task | None = None
        self._physics_task: asyncio.Task | None = None
        self._last_tick_at: float | None = None

    @property
    def profile_behaviour(self) -> str:
        """How the charger treats Set/ClearChargingProfile: one of PROFILE_BEHAVIOURS."""
        return self._profile_behaviour

    @profile_behaviour.setter
    def profile_behaviour(self, behaviour: str) -> None:
        if behaviour not in PROFILE_BEHAVIOURS:
            raise ValueError(f"profile_behaviour {behaviour!r} is not one of {PROFILE_BEHAVIOURS}")
        self._profile_behaviour = behaviour

    # --- the electrics -------------------------------------------------------------------

    @property
    def electrics(self) -> Electrics:
        return Electrics(
            voltage_v=self.voltage_v,
            phase_count=len(self.phases),
            max_stack_level=self._int_configuration("ChargeProfileMaxStackLevel", 8),
            allowed_rate_units=self.configuration["ChargingScheduleAllowedChargingRateUnit"],
            slot_per_connector=self.slot_per_connector,
        )

    def _int_configuration(self, key: str, default: int) -> int:
        try:
            return int(self.configuration[key])
        except (KeyError, ValueError):
            return default

    def profile_limit_a(self, store: ProfileStore | None = None) -> float | None:
        """The composite limit now, A per phase; None when no profile applies."""
        store = self.profiles if store is None else store
        return store.limit_a(
            CONNECTOR_ID, self.clock(), self.electrics, transaction_started_at=self.transaction_started_at
        )

    def offered_current_a(self) -> float:
        """What the charger offers the car now, A per phase (after the reaction delay)."""
        limit_a = None if self.profile_behaviour == IGNORE_PROFILES else self.profile_limit_a(self.obeyed_profiles)
        return offered_current_a(
            limit_a,
            max_current_a=self.max_current_a,
            max_power_w=self.max_power_w,
            voltage_v=self.voltage_v,
            phase_count=len(self.phases),
            ac=self.kind != "dc",
        )

    def current_draw_a(self) -> dict[str, float]:
        """Per site phase, what this charger draws now (0 on phases it is not wired to)."""
        draw = dict.fromkeys(SITE_PHASES, 0.0)
        for phase in self.phases:
            draw[phase] = self.draw_a
        return draw

    @property
    def power_w(self) -> float:
        return self.draw_a * self.voltage_v * len(self.phases)

    def _tick(self) -> None:
        """Advance the physics: integrate energy, then set the draw and the status."""
        now_s = time.monotonic()
        if self._last_tick_at is not None and self.draw_a > 0:
            energy_wh = self.power_w * (now_s - self._last_tick_at) / 3600
            self.energy_delivered_wh += energy_wh
            self.energy_register_wh += energy_wh
        self._last_tick_at = now_s
        if self.transaction_id is None or self.car is None:
            self.draw_a = 0.0
            return
        wants_a = self.car.wants_current_a(self.energy_delivered_wh, voltage_v=self.voltage_v, phase_count=len(self.phases))
        self.draw_a, status = charging_state(self.offered_current_a(), wants_a)
        self._set_status(status)

    # --- OCPP handlers' decisions ----------------------------------------------------------

    def set_charging_profile(self, connector_id: int, payload) -> str:
        if self.profile_behaviour == REJECT_PROFILES:
            return "Rejected"
        if self.profile_behaviour == NOT_SUPPORTED_PROFILES:
            return "NotSupported"
        try:
            profile = parse_profile(connector_id, payload, now=self.clock())
        except ProfileError as error:
            logger.warning("sim_charger_profile_rejected charge_box_id=%s reason=%s", self.charge_box_id, error)
            return "Rejected"
        if connector_id not in (0, CONNECTOR_ID):
            return "Rejected"
        status, reason = self.profiles.install(profile, self.electrics, active_transaction_id=self.transaction_id)
        logger.info(
            "sim_charger_profile charge_box_id=%s status=%s charging_profile_id=%s reason=%s",
            self.charge_box_id, status, profile.charging_profile_id, reason,
        )
        if status == ACCEPTED:
            self._obey_later()
        return status

    def clear_charging_profile(self, id=None, connector_id=None, charging_profile_purpose=None, stack_level=None) -> str:  # noqa: A002 (wire name)
        if self.profile_behaviour in (REJECT_PROFILES, NOT_SUPPORTED_PROFILES):
            return "Unknown"
        status = self.profiles.clear(
            charging_profile_id=id, connector_id=connector_id, purpose=charging_profile_purpose, stack_level=stack_level
        )
        self._obey_later()
        return status

    def _obey_later(self) -> None:
        """The draw follows the profiles as they are now, reaction_delay_s later."""
        snapshot = self.profiles.copy()
        if self.reaction_delay_s <= 0:
            self.obeyed_profiles = snapshot
            return
        handle: asyncio.TimerHandle | None = None

        def obey():
            self.obeyed_profiles = snapshot
            self._timers.discard(handle)

        handle = asyncio.get_running_loop().call_later(self.reaction_delay_s, obey)
        self._timers.add(handle)

    def calls_received(self, action: str) -> list[dict]:
        """The payloads (as on the wire, camelCase) of every CALL of `action` this charger
        received, in order: what LinkRay or the CSMS asked of it."""
        payloads = []
        for direction, raw in self.log:
            if direction != "in" or not _is_call_of(raw, (action,)):
                continue
            payload = json.loads(raw)[3]
            payloads.append(payload if isinstance(payload, dict) else {})
        return payloads

    def get_configuration(self, keys: list[str] | None) -> tuple[list[dict], list[str]]:
        keys = keys or list(self.configuration)
        known = [{"key": key, "readonly": False, "value": self.configuration[key]} for key in keys if key in self.configuration]
        return known, [key for key in keys if key not in self.configuration]

    def change_configuration(self, key: str, value: str) -> str:
        if key not in self.configuration:
            return "NotSupported"
        if key in ("ChargeProfileMaxStackLevel", "MeterValueSampleInterval", "HeartbeatInterval"):
            try:
                if int(value) < 0:
                    return "Rejected"
            except ValueError:
                return "Rejected"
        if key == "ChargingScheduleAllowedChargingRateUnit" and not {
            part.strip() for part in value.split(",")
        } <= {"Current", "Power"}:
            return "Rejected"
        self.configuration[key] = value
        if key == "HeartbeatInterval":
            self.heartbeat_interval_s = int(value) or None
        if key == "MeterValueSampleInterval":
            self.meter_value_interval_s = int(value) or self.meter_value_interval_s
        return "Accepted"

    def remote_start(self, id_tag: str, charging_profile) -> str:
        if self.car is None or self.transaction_id is not None:
            return "Rejected"
        self._spawn(self._start_transaction(id_tag, charging_profile))
        return "Accepted"

    def remote_stop(self, transaction_id: int) -> str:
        if self.transaction_id is None or transaction_id != self.transaction_id:
            return "Rejected"
        self._spawn(self._stop_transaction("Remote"))
        return "Accepted"

    def trigger_message(self, requested_message: str) -> str:
        senders = {
            "StatusNotification": lambda: self._send_status(self.status),
            "MeterValues": self._send_meter_values,
            "Heartbeat": lambda: self._call(call.Heartbeat()),
            "BootNotification": self._boot,
        }
        if requested_message not in senders:
            return "NotImplemented"
        self._spawn(senders[requested_message]())
        return "Accepted"

    # --- the car ---------------------------------------------------------------------------

    async def plug_in(
        self,
        energy_wanted_wh: float = 50_000.0,
        *,
        max_current_a: float | None = None,
        max_power_w: float | None = None,
        taper_from: float | None = 0.8,
        start: bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        """A car arrives: Preparing, then (with `start`) Authorize and StartTransaction; returns
        once the transaction has its id. Without `start`, it waits for a RemoteStart."""
        self.car = Car(energy_wanted_wh, max_current_a, max_power_w, taper_from)
        self._set_status("Preparing")
        if start:
            await asyncio.wait_for(self._start_transaction(self.id_tag, None), timeout_s)

    async def unplug(self, timeout_s: float = 10.0) -> None:
        if self.transaction_id is not None:
            await asyncio.wait_for(self._stop_transaction("EVDisconnected"), timeout_s)
        self.car = None
        self._set_status("Available")

    async def _start_transaction(self, id_tag: str, charging_profile) -> None:
        answer = await self._call(call.Authorize(id_tag=id_tag))
        if answer is None or answer.id_tag_info.get("status") != "Accepted":
            logger.warning("sim_charger_not_authorized charge_box_id=%s id_tag=%s", self.charge_box_id, id_tag)
            return
        answer = await self._call(
            call.StartTransaction(
                connector_id=CONNECTOR_ID,
                id_tag=id_tag,
                meter_start=int(self.energy_register_wh),
                timestamp=self.clock().isoformat(),
            )
        )
        if answer is None:
            return
        self.energy_delivered_wh = 0.0
        self.transaction_id = answer.transaction_id
        self.transaction_started_at = self.clock()
        if charging_profile:
            self.set_charging_profile(CONNECTOR_ID, {**charging_profile, "transaction_id": self.transaction_id})
        self._obey_later()
        self._tick()
        if self.status == "Preparing":
            self._set_status("Charging")

    async def _stop_transaction(self, reason: str) -> None:
        transaction_id = self.transaction_id
        if transaction_id is None:
            return
        self._tick()
        self.transaction_id = None
        self.transaction_started_at = None
        self.draw_a = 0.0
        self.profiles.end_transaction(CONNECTOR_ID)
        self._obey_later()
        self._set_status("Finishing")
        await self._call(
            call.StopTransaction(
                meter_stop=int(self.energy_register_wh),
                timestamp=self.clock().isoformat(),
                transaction_id=transaction_id,
                reason=reason,
                id_tag=self.id_tag,
            )
        )

    # --- the connection --------------------------------------------------------------------

    async def start(self, url: str, timeout_s: float = 10.0) -> SimulatedCharger:
        """Connect to `url` + "/" + charge_box_id and boot; returns once the boot is accepted.
        The charger reconnects by itself after a drop (unless reconnect_delay_s is None)."""
        self.url = url.rstrip("/") + "/" + self.charge_box_id
        self._stopping = False
        self._session_task = asyncio.create_task(self._sessions(), name=f"sim-charger-{self.charge_box_id}")
        self._physics_task = asyncio.create_task(self._physics(), name=f"sim-physics-{self.charge_box_id}")
        try:
            await asyncio.wait_for(self.booted.wait(), timeout_s)
        except TimeoutError:
            await self.stop()
            raise TimeoutError(f"{self.charge_box_id} did not boot at {self.url} within {timeout_s}s") from None
        return self

    async def stop(self) -> None:
        """Close the socket and end every task and timer this charger started."""
        self._stopping = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self.websocket is not None:
            with contextlib.suppress(Exception):
                await self.websocket.close()
        tasks = [task for task in (self._session_task, self._physics_task, *self._tasks) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._session_task = self._physics_task = None
        self.connected.clear()
        self.booted.clear()

    async def drop_connection(self) -> None:
        """Misbehaviour: close the socket as a flaky modem would (it reconnects after
        reconnect_delay_s, if set)."""
        if self.websocket is not None:
            await self.websocket.close()

    async def send_malformed(self, raw: str = '[2, "sim-malformed", "Heartbeat"') -> None:
        """Misbehaviour: send a frame that is not valid OCPP-J."""
        self.log.append(("out", raw))
        await self.websocket.send(raw)

    async def _sessions(self) -> None:
        while not self._stopping:
            try:
                async with websockets.connect(
                    self.url, subprotocols=["ocpp1.6"], compression=None, open_timeout=10
                ) as websocket:
                    self.websocket = websocket
                    self.charge_point = _ChargePoint(self.charge_box_id, _Connection(websocket, self), response_timeout=10)
                    self.charge_point.charger = self
                    self.connected.set()
                    reader = asyncio.create_task(self.charge_point.start())
                    try:
                        await self._boot()
                        self._spawn(self._send_status(self.status))
                        await reader
                    finally:
                        reader.cancel()
                        await asyncio.gather(reader, return_exceptions=True)
            except asyncio.CancelledError:
                raise
            except (OSError, websockets.WebSocketException, TimeoutError) as error:
                logger.info("sim_charger_disconnected charge_box_id=%s error=%s", self.charge_box_id, error)
            finally:
                self.connected.clear()
                self.booted.clear()
                self.websocket = None
                self.charge_point = None
            if self.reconnect_delay_s is None:
                return
            await asyncio.sleep(self.reconnect_delay_s)

    async def _boot(self) -> None:
        """BootNotification until Accepted; after Pending/Rejected (or no answer) retry after
        the interval given, at most boot_retry_s."""
        while True:
            answer = await self._call(call.BootNotification(charge_point_vendor=self.vendor, charge_point_model=self.model))
            if answer is not None and answer.status == "Accepted":
                self.booted.set()
                if self.heartbeat_interval_s is None and answer.interval:
                    self.configuration["HeartbeatInterval"] = str(answer.interval)
                return
            if self.charge_point is None:
                return
            retry_s = min(answer.interval or self.boot_retry_s, self.boot_retry_s) if answer else self.boot_retry_s
            logger.info("sim_charger_boot_not_accepted charge_box_id=%s retry_s=%s", self.charge_box_id, retry_s)
            await asyncio.sleep(retry_s)

    async def _call(self, payload):
        """Send a CALL; None when there is no connection or no answer (logged)."""
        charge_point = self.charge_point
        if charge_point is None:
            logger.info("sim_charger_offline_call charge_box_id=%s action=%s", self.charge_box_id, type(payload).__name__)
            return None
        try:
            return await charge_point.call(payload)
        except (websockets.ConnectionClosed, TimeoutError, asyncio.TimeoutError) as error:
            logger.info("sim_charger_call_failed charge_box_id=%s error=%s", self.charge_box_id, error)
            return None
        except OCPPError as error:  # our payload failed the schema, or the answer did
            logger.warning("sim_charger_call_error charge_box_id=%s error=%r", self.charge_box_id, error)
            return None

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self._spawn(self._send_status(status))

    async def _send_status(self, status: str) -> None:
        await self._call(call.StatusNotification(connector_id=CONNECTOR_ID, error_code="NoError", status=status))

    async def _physics(self) -> None:
        next_meter_values_s = time.monotonic()
        next_heartbeat_s = time.monotonic()
        while True:
            self._tick()
            now_s = time.monotonic()
            if self.transaction_id is not None and now_s >= next_meter_values_s:
                next_meter_values_s = now_s + self.meter_value_interval_s
                self._spawn(self._send_meter_values())
            heartbeat_interval_s = self.heartbeat_interval_s or self._int_configuration("HeartbeatInterval", 0)
            if heartbeat_interval_s > 0 and self.booted.is_set() and now_s >= next_heartbeat_s:
                next_heartbeat_s = now_s + heartbeat_interval_s
                self._spawn(self._call(call.Heartbeat()))
            await asyncio.sleep(self.tick_s)

    def meter_value(self) -> dict:
        """One MeterValues sample, phases named as the charger's own (L1..Ln)."""
        sampled = [
            {"value": f"{self.draw_a:.2f}", "measurand": "Current.Import", "phase": f"L{index + 1}", "unit": "A"}
            for index in range(len(self.phases))
        ]
        sampled += [
            {"value": f"{self.offered_current_a():.1f}", "measurand": "Current.Offered", "unit": "A"},
            {"value": f"{self.power_w:.0f}", "measurand": "Power.Active.Import", "unit": "W"},
            {"value": f"{self.energy_register_wh:.0f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        ]
        return {"timestamp": self.clock().isoformat(), "sampled_value": sampled}

    async def _send_meter_values(self) -> None:
        await self._call(
            call.MeterValues(connector_id=CONNECTOR_ID, transaction_id=self.transaction_id, meter_value=[self.meter_value()])
        )


__all__ = [
    "IGNORE_PROFILES",
    "NOT_SUPPORTED_PROFILES",
    "OBEY",
    "PROFILE_BEHAVIOURS",
    "REJECT_PROFILES",
    "SILENT_PROFILES",
    "SimulatedCharger",
]

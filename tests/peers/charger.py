"""A real charger for end-to-end tests: the third-party `ocpp` package over `websockets`,
recording every raw frame, answering the CSMS's (and LinkRay's) CALLs like a charger would."""

from __future__ import annotations

import asyncio
import json

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action

from tests.peers.csms import RecordingConnection


class ChargerPeer(ChargePoint):
    configuration: dict[str, str]

    def setup(self):
        self.configuration = {
            "ChargeProfileMaxStackLevel": "8",
            "ChargingScheduleAllowedChargingRateUnit": "Current,Power",
            "ChargingScheduleMaxPeriods": "24",
            "MaxChargingProfilesInstalled": "16",
            "StopTransactionOnInvalidId": "true",
        }
        self.profiles: list[dict] = []
        self.requests: list[tuple[str, dict]] = []
        self.answer_gate: asyncio.Event | None = None
        self.remote_stops: list[int] = []

    async def _gate(self):
        if self.answer_gate is not None:
            await self.answer_gate.wait()

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, connector_id, cs_charging_profiles):
        await self._gate()
        self.requests.append(("SetChargingProfile", {"connector_id": connector_id, "profile": cs_charging_profiles}))
        self.profiles.append({"connector_id": connector_id, **cs_charging_profiles})
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(self, **kwargs):
        await self._gate()
        self.requests.append(("ClearChargingProfile", kwargs))
        before = len(self.profiles)
        profile_id = kwargs.get("id")
        if profile_id is not None:
            self.profiles = [p for p in self.profiles if p.get("charging_profile_id") != profile_id]
        else:
            self.profiles = [
                p
                for p in self.profiles
                if not all(
                    (
                        kwargs.get("connector_id") in (None, p.get("connector_id")),
                        kwargs.get("charging_profile_purpose") in (None, p.get("charging_profile_purpose")),
                        kwargs.get("stack_level") in (None, p.get("stack_level")),
                    )
                )
            ]
        return call_result.ClearChargingProfile(status="Accepted" if len(self.profiles) < before else "Unknown")

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(self, connector_id, duration, **kwargs):
        await self._gate()
        self.requests.append(("GetCompositeSchedule", {"connector_id": connector_id, "duration": duration}))
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start="2026-01-01T00:00:00Z",
            charging_schedule={
                "duration": duration,
                "charging_rate_unit": kwargs.get("charging_rate_unit", "A"),
                "charging_schedule_period": [{"start_period": 0, "limit": 16.0}],
            },
        )

    @on(Action.get_configuration)
    async def on_get_configuration(self, key=None):
        await self._gate()
        self.requests.append(("GetConfiguration", {"key": key}))
        keys = key or list(self.configuration)
        known = [{"key": k, "readonly": False, "value": self.configuration[k]} for k in keys if k in self.configuration]
        unknown = [k for k in keys if k not in self.configuration]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    async def on_change_configuration(self, key, value):
        await self._gate()
        self.requests.append(("ChangeConfiguration", {"key": key, "value": value}))
        self.configuration[key] = value
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message, **kwargs):
        await self._gate()
        self.requests.append(("TriggerMessage", {"requested_message": requested_message}))
        return call_result.TriggerMessage(status="Accepted")

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag, **kwargs):
        await self._gate()
        self.requests.append(("RemoteStartTransaction", {"id_tag": id_tag, **kwargs}))
        return call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id):
        await self._gate()
        self.requests.append(("RemoteStopTransaction", {"transaction_id": transaction_id}))
        self.remote_stops.append(transaction_id)
        return call_result.RemoteStopTransaction(status="Accepted")


    @on(Action.reset)
    async def on_reset(self, type):  # noqa: A002 - the OCPP field's name
        await self._gate()
        self.requests.append(("Reset", {"type": type}))
        return call_result.Reset(status="Accepted")

    @on(Action.unlock_connector)
    async def on_unlock_connector(self, connector_id):
        await self._gate()
        self.requests.append(("UnlockConnector", {"connector_id": connector_id}))
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.change_availability)
    async def on_change_availability(self, connector_id, type):  # noqa: A002
        await self._gate()
        self.requests.append(("ChangeAvailability", {"connector_id": connector_id, "type": type}))
        return call_result.ChangeAvailability(status="Accepted")


class ConnectedCharger:
    """A ChargerPeer with its socket and reader task; use as an async context manager."""

    def __init__(self, url: str, charge_box_id: str, *, headers=None, subprotocols=("ocpp1.6",), peer_class=None):
        self.peer_class = peer_class or ChargerPeer
        self.url = url.rstrip("/") + "/" + charge_box_id
        self.charge_box_id = charge_box_id
        self.headers = headers
        self.subprotocols = list(subprotocols)
        self.websocket = None
        self.peer: ChargerPeer | None = None
        self.received: list[str] = []
        self.sent: list[str] = []
        self.log: list[tuple[str, str]] = []
        self._task: asyncio.Task | None = None

    async def connect(self) -> ConnectedCharger:
        self.websocket = await websockets.connect(
            self.url, subprotocols=self.subprotocols, additional_headers=self.headers, compression=None, open_timeout=20
        )
        self.peer = self.peer_class(self.charge_box_id, RecordingConnection(self.websocket, self.received, self.sent, self.log), response_timeout=20)
        self.peer.setup()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self):
        try:
            await self.peer.start()
        except websockets.ConnectionClosed:
            pass

    async def close(self):
        if self.websocket is not None:
            await self.websocket.close()
        if self._task is not None:
            self._task.cancel()

    async def __aenter__(self):
        return await self.connect()

    async def __aexit__(self, *exc):
        await self.close()

    async def call(self, payload, **kwargs):
        return await self.peer.call(payload, **kwargs)

    async def send_raw(self, raw: str | bytes):
        self.sent.append(raw)
        self.log.append(("out", raw))
        await self.websocket.send(raw)

    def answers_received(self) -> list:
        return [json.loads(raw) for raw in self.received if raw.startswith("[3") or raw.startswith("[4")]

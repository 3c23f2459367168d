"""A simulated CSMS: the `ocpp` package behind a `websockets` server on loopback. It accepts
every charger, records every frame per charger, issues transaction ids, can send its own
SetChargingProfile / ClearChargingProfile / RemoteStart / RemoteStop, and can go offline
(sockets closed, reconnects refused) and come back on the same port.

    csms = await SimulatedCsms().start()
    csms.url                                  # ws://127.0.0.1:<port>  (chargers append /<id>)
    await csms.set_charging_profile("CP1", 1, schedule_profile(7, 8.0))
    await csms.go_offline(); await csms.go_online()
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from datetime import UTC, datetime

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus

logger = logging.getLogger(__name__)


class _RecordingConnection:
    def __init__(self, websocket, log: list[tuple[str, str]]):
        self.websocket = websocket
        self.log = log

    async def recv(self):
        message = await self.websocket.recv()
        self.log.append(("in", message))
        return message

    async def send(self, message):
        self.log.append(("out", message))
        await self.websocket.send(message)


class _CsmsChargePoint(ChargePoint):
    csms: SimulatedCsms

    @on(Action.boot_notification)
    def on_boot(self, charge_point_vendor, charge_point_model, **kwargs):
        return call_result.BootNotification(
            current_time=datetime.now(UTC).isoformat(), interval=self.csms.heartbeat_interval_s, status=RegistrationStatus.accepted
        )

    @on(Action.heartbeat)
    def on_heartbeat(self):
        return call_result.Heartbeat(current_time=datetime.now(UTC).isoformat())

    @on(Action.status_notification)
    def on_status(self, connector_id, error_code, status, **kwargs):
        self.csms.statuses.setdefault(self.id, {})[connector_id] = status
        return call_result.StatusNotification()

    @on(Action.meter_values)
    def on_meter_values(self, connector_id, meter_value, **kwargs):
        return call_result.MeterValues()

    @on(Action.authorize)
    def on_authorize(self, id_tag):
        return call_result.Authorize(id_tag_info=self.csms.id_tag_info(id_tag))

    @on(Action.start_transaction)
    def on_start_transaction(self, connector_id, id_tag, meter_start, timestamp, **kwargs):
        transaction_id = next(self.csms.transaction_ids)
        self.csms.transactions[transaction_id] = self.id
        return call_result.StartTransaction(transaction_id=transaction_id, id_tag_info=self.csms.id_tag_info(id_tag))

    @on(Action.stop_transaction)
    def on_stop_transaction(self, meter_stop, timestamp, transaction_id, **kwargs):
        return call_result.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted})


class SimulatedCsms:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, heartbeat_interval_s: int = 300):
        self.host = host
        self.port = port
        self.heartbeat_interval_s = heartbeat_interval_s
        self.connections: dict[str, _CsmsChargePoint] = {}
        self.log: dict[str, list[tuple[str, str]]] = {}  # charge_box_id -> [("in" | "out", raw)]
        self.statuses: dict[str, dict[int, str]] = {}
        self.transactions: dict[int, str] = {}  # transaction_id -> charge_box_id
        self.transaction_ids = itertools.count(1)
        self.rejected_tags: set[str] = set()
        self.online = False
        self._server = None
        self._handlers: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def id_tag_info(self, id_tag: str) -> dict:
        return {"status": "Invalid" if id_tag in self.rejected_tags else "Accepted"}

    async def start(self) -> SimulatedCsms:
        self._server = await websockets.serve(
            self._handle, self.host, self.port, subprotocols=["ocpp1.6"], compression=None
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.online = True
        logger.info("sim_csms_serving port=%s", self.port)
        return self

    async def stop(self) -> None:
        """Close the listening socket and every connection; nothing is left running."""
        self.online = False
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        self.connections.clear()

    async def go_offline(self) -> None:
        """An outage: drop every charger, refuse reconnects until `go_online()`."""
        await self.stop()
        logger.info("sim_csms_offline port=%s", self.port)

    async def go_online(self) -> None:
        await self.start()

    async def _handle(self, websocket):
        charge_box_id = websocket.request.path.rstrip("/").rsplit("/", 1)[-1]
        log = self.log.setdefault(charge_box_id, [])
        charge_point = _CsmsChargePoint(charge_box_id, _RecordingConnection(websocket, log), response_timeout=10)
        charge_point.csms = self
        self.connections[charge_box_id] = charge_point
        task = asyncio.current_task()
        self._handlers.add(task)
        try:
            await charge_point.start()
        except (websockets.ConnectionClosed, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            if self.connections.get(charge_box_id) is charge_point:
                del self.connections[charge_box_id]

    # --- what a test or the demo reads ------------------------------------------------------

    def messages(self, charge_box_id: str, direction: str = "in") -> list[list]:
        """Every parsable frame of the charger in one direction, decoded."""
        decoded = []
        for way, raw in self.log.get(charge_box_id, []):
            if way != direction:
                continue
            try:
                decoded.append(json.loads(raw))
            except ValueError:
                continue
        return decoded

    def actions_received(self, charge_box_id: str) -> list[str]:
        return [m[2] for m in self.messages(charge_box_id) if isinstance(m, list) and len(m) == 4 and m[0] == 2]

    def calls_received(self, charge_box_id: str, action: str) -> list[dict]:
        return [m[3] for m in self.messages(charge_box_id) if isinstance(m, list) and len(m) == 4 and m[:1] == [2] and m[2] == action]

    # --- what the CSMS sends ----------------------------------------------------------------

    async def send(self, charge_box_id: str, payload):
        """A CALL to a connected charger; the ocpp package's answer dataclass. KeyError when
        the charger is not connected."""
        return await self.connections[charge_box_id].call(payload)

    async def set_charging_profile(self, charge_box_id: str, connector_id: int, profile: dict) -> str:
        answer = await self.send(charge_box_id, call.SetChargingProfile(connector_id=connector_id, cs_charging_profiles=profile))
        return answer.status

    async def clear_charging_profile(self, charge_box_id: str, **criteria) -> str:
        answer = await self.send(charge_box_id, call.ClearChargingProfile(**criteria))
        return answer.status

    async def remote_start(self, charge_box_id: str, id_tag: str = "SIMTAG", *, connector_id: int | None = 1, charging_profile: dict | None = None) -> str:
        answer = await self.send(
            charge_box_id, call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector_id, charging_profile=charging_profile)
        )
        return answer.status

    async def remote_stop(self, charge_box_id: str, transaction_id: int) -> str:
        answer = await self.send(charge_box_id, call.RemoteStopTransaction(transaction_id=transaction_id))
        return answer.status


__all__ = ["SimulatedCsms"]

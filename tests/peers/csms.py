"""A real CSMS for end-to-end tests: the third-party `ocpp` package behind a `websockets`
server on loopback, recording every raw frame it receives and sends per charger."""

from __future__ import annotations

import asyncio
import base64
import itertools
from datetime import UTC, datetime

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus

from tests.peers.waiting import wait_for


class RecordingConnection:
    """Wraps a websocket so the ocpp ChargePoint's traffic is recorded raw."""

    def __init__(self, websocket, received: list, sent: list, log: list | None = None):
        self.websocket = websocket
        self.received = received
        self.sent = sent
        self.log = log if log is not None else []  # ("in" | "out", raw) in order

    async def recv(self):
        message = await self.websocket.recv()
        self.received.append(message)
        self.log.append(("in", message))
        return message

    async def send(self, message):
        self.sent.append(message)
        self.log.append(("out", message))
        await self.websocket.send(message)


class FaultyConnection(RecordingConnection):
    """Lets a test make the CSMS drop the connection at a chosen point (one-shot faults)."""

    def __init__(self, websocket, received, sent, server: CsmsServer):
        super().__init__(websocket, received, sent)
        self.server = server
        self.calls_in = 0
        self.results_out = 0

    async def recv(self):
        while True:
            message = await self.websocket.recv()
            self.received.append(message)
            self.log.append(("in", message))
            if isinstance(message, str) and message.lstrip("[ ").startswith("2"):
                self.calls_in += 1
                if self.server.drop_on_call is not None and self.calls_in >= self.server.drop_on_call:
                    # Received but never answered: the answer is "lost" with the connection.
                    self.server.drop_on_call = None
                    await self.websocket.close()
                    continue
            return message

    async def send(self, message):
        if self.server.answer_gate is not None:
            await self.server.answer_gate.wait()
        await super().send(message)
        if isinstance(message, str) and message.lstrip("[ ").startswith("3"):
            self.results_out += 1
            if self.server.drop_after_answer is not None and self.results_out >= self.server.drop_after_answer:
                self.server.drop_after_answer = None
                await self.websocket.close()


class CsmsChargePoint(ChargePoint):
    """The CSMS's view of one charger."""

    server: CsmsServer

    @on(Action.boot_notification)
    def on_boot(self, charge_point_vendor, charge_point_model, **kwargs):
        return call_result.BootNotification(
            current_time=datetime.now(UTC).isoformat(), interval=self.server.boot_interval_s, status=self.server.boot_status
        )

    @on(Action.heartbeat)
    def on_heartbeat(self):
        return call_result.Heartbeat(current_time=datetime.now(UTC).isoformat())

    @on(Action.status_notification)
    def on_status(self, connector_id, error_code, status, **kwargs):
        return call_result.StatusNotification()

    @on(Action.meter_values)
    def on_meter_values(self, connector_id, meter_value, **kwargs):
        return call_result.MeterValues()

    @on(Action.authorize)
    def on_authorize(self, id_tag):
        return call_result.Authorize(id_tag_info=self.server.id_tag_info(id_tag))

    @on(Action.start_transaction)
    def on_start_transaction(self, connector_id, id_tag, meter_start, timestamp, **kwargs):
        transaction_id = next(self.server.transaction_ids)
        return call_result.StartTransaction(
            transaction_id=transaction_id, id_tag_info=self.server.id_tag_info(id_tag)
        )

    @on(Action.stop_transaction)
    def on_stop_transaction(self, meter_stop, timestamp, transaction_id, **kwargs):
        return call_result.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id, **kwargs):
        return call_result.DataTransfer(status="Accepted", data="ok")

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(self, status):
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, status):
        return call_result.FirmwareStatusNotification()


class CsmsServer:
    def __init__(self, *, passwords: dict[str, bytes] | None = None, ssl_context=None, compression: str | None = None):
        self.passwords = passwords
        self.ssl_context = ssl_context
        self.compression = compression
        self.extensions: dict[str, list[str]] = {}
        self.port = 0
        self.connections: dict[str, CsmsChargePoint] = {}
        self.received: dict[str, list[str]] = {}
        self.sent: dict[str, list[str]] = {}
        self.connect_count: dict[str, int] = {}
        self.paths: list[str] = []
        self.auth_headers: dict[str, str | None] = {}
        self.subprotocols: dict[str, str | None] = {}
        self.rejected_tags: set[str] = set()
        # The BootNotification answer.
        self.boot_interval_s = 300
        self.boot_status = RegistrationStatus.accepted
        # The close code each charger's last connection ended with, as this CSMS received it.
        self.close_codes: dict[str, int | None] = {}
        self.transaction_ids = itertools.count(1001)
        # One-shot faults, counted per connection: drop after sending the Nth CALLRESULT, or
        # drop on receiving the Nth CALL without answering it.
        self.drop_after_answer: int | None = None
        self.drop_on_call: int | None = None
        # While set and not yet released, the CSMS holds every answer back.
        self.answer_gate: asyncio.Event | None = None
        self.expiry: dict[str, str] = {}
        # While set and not yet released, the CSMS holds every opening handshake (a slow network).
        self.handshake_gate: asyncio.Event | None = None
        self.handshakes_in_progress = 0
        self.most_handshakes_at_once = 0
        self._server = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl_context else 'ws'}://127.0.0.1:{self.port}"

    def id_tag_status(self, id_tag: str) -> str:
        return "Invalid" if id_tag in self.rejected_tags else "Accepted"

    def id_tag_info(self, id_tag: str) -> dict:
        info = {"status": self.id_tag_status(id_tag)}
        if id_tag in self.expiry:
            info["expiryDate"] = self.expiry[id_tag]
        return info

    async def start(self, port: int = 0) -> CsmsServer:
        self._server = await websockets.serve(
            self._handle,
            "127.0.0.1",
            port or self.port,
            subprotocols=["ocpp1.6"],
            process_request=self._check_auth,
            compression=self.compression,
            ssl=self.ssl_context,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Go away as an outage would: refuse new connections and drop the current ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        self.connections.clear()

    async def _check_auth(self, connection, request):
        self.handshakes_in_progress += 1
        self.most_handshakes_at_once = max(self.most_handshakes_at_once, self.handshakes_in_progress)
        try:
            if self.handshake_gate is not None:
                await self.handshake_gate.wait()
        finally:
            self.handshakes_in_progress -= 1
        charge_box_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        self.auth_headers[charge_box_id] = request.headers.get("Authorization")
        if self.passwords is None:
            return None
        expected = self.passwords.get(charge_box_id)
        header = request.headers.get("Authorization", "")
        if expected is None or header != basic_auth(charge_box_id, expected):
            return connection.respond(401, "Unauthorized\n")
        return None

    async def _handle(self, websocket):
        path = websocket.request.path
        self.paths.append(path)
        charge_box_id = path.rstrip("/").rsplit("/", 1)[-1]
        self.subprotocols[charge_box_id] = websocket.subprotocol
        self.extensions[charge_box_id] = [extension.name for extension in websocket.protocol.extensions]
        self.connect_count[charge_box_id] = self.connect_count.get(charge_box_id, 0) + 1
        received = self.received.setdefault(charge_box_id, [])
        sent = self.sent.setdefault(charge_box_id, [])
        charge_point = CsmsChargePoint(charge_box_id, FaultyConnection(websocket, received, sent, self), response_timeout=10)
        charge_point.server = self
        self.connections[charge_box_id] = charge_point
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await charge_point.start()
        except (websockets.ConnectionClosed, asyncio.CancelledError):
            pass
        finally:
            self.close_codes[charge_box_id] = websocket.close_code
            self._tasks.discard(task)
            if self.connections.get(charge_box_id) is charge_point:
                del self.connections[charge_box_id]

    async def wait_connected(self, charge_box_id: str, timeout: float = 10.0) -> CsmsChargePoint:
        await wait_for(lambda: charge_box_id in self.connections, timeout, f"{charge_box_id} connected to CSMS")
        return self.connections[charge_box_id]

    def actions_received(self, charge_box_id: str) -> list[str]:
        import json

        actions = []
        for raw in self.received.get(charge_box_id, []):
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if isinstance(message, list) and len(message) == 4 and message[0] == 2:
                actions.append(message[2])
        return actions


def basic_auth(charge_box_id: str, password: bytes) -> str:
    return "Basic " + base64.b64encode(charge_box_id.encode() + b":" + password).decode()

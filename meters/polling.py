"""Modbus reads: pymodbus async clients -> MeterReading, or MeterUnavailable(reason).

A `ModbusLine` is one bus: a serial port (RTU), a Modbus TCP endpoint, or a serial-to-Ethernet
gateway spoken to in RTU framing over TCP. Meters on the same line share it (pymodbus sends one
request at a time). A `MeterReader` reads one meter on a line with its map's batched plan.

Every outside failure becomes `MeterUnavailable` with a reason an installer can act on. The
line reconnects by itself on the next read after a failure; nothing here sleeps or retries in
a loop: the poller calls again on its interval.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from meters.readings import MeterReading
from meters.registers import (
    SUNSPEC_BASE_ADDRESSES,
    SUNSPEC_END,
    DecodeError,
    MeterMap,
    ReadRequest,
    decode,
    is_sunspec_marker,
    plan_reads,
    registers_from_responses,
    sunspec_model_header,
)

logger = logging.getLogger(__name__)

TRANSPORTS = ("rtu", "tcp", "rtu_over_tcp")
_SUNSPEC_MAX_MODELS = 64

EXCEPTION_HINTS = {
    1: ("illegal function", "the meter does not support this function code: wrong model?"),
    2: ("illegal data address", "the meter has no such registers: wrong model or variant?"),
    3: ("illegal data value", "the meter refused the request length"),
    4: ("device failure", "the meter reports an internal failure"),
    5: ("acknowledge", "the meter is busy with a long operation"),
    6: ("device busy", "the meter is busy; it should answer again shortly"),
    10: ("gateway path unavailable", "the gateway has no route to that unit: check the unit id and gateway set-up"),
    11: ("gateway target failed to respond", "nothing answered behind the gateway: check the unit id, serial settings and wiring"),
}


class MeterUnavailable(Exception):
    """No reading this time; `reason` says why in words an installer can act on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class MeterRefused(MeterUnavailable):
    """The meter (or gateway) answered with a Modbus exception response."""

    def __init__(self, reason: str, exception_code: int):
        super().__init__(reason)
        self.exception_code = exception_code


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach a meter. `timeout_s` is how long one request waits for its answer."""

    transport: str
    host: str = ""
    port: int = 502
    serial_port: str = ""
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8
    timeout_s: float = 1.0

    @property
    def is_serial(self) -> bool:
        return self.transport == "rtu"

    def serial_settings(self) -> dict[str, int | str]:
        """The line settings, as pymodbus's serial client and pyserial both take them."""
        return {"baudrate": self.baudrate, "bytesize": self.bytesize, "parity": self.parity, "stopbits": self.stopbits}

    def describe(self) -> str:
        if self.is_serial:
            return f"{self.serial_port} at {self.baudrate} baud {self.bytesize}{self.parity}{self.stopbits}"
        framing = "RTU over TCP" if self.transport == "rtu_over_tcp" else "Modbus TCP"
        return f"{self.host}:{self.port} ({framing})"


def serial_port_problem(path: str) -> str:
    """Why a serial port cannot be opened, found before pymodbus tries ('' if none is seen).
    Only device paths are checked; pyserial URLs (rfc2217://, socket://) are left to it."""
    if "://" in path:
        return ""
    if not os.path.exists(path):
        return f"serial port {path} does not exist: is the RS-485 adapter plugged in (ls /dev/ttyUSB* /dev/serial/by-id)?"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"permission denied on {path}: add the user running LinkRay to the port's group (usually 'dialout')"
    return ""


class ModbusLine:
    """One pymodbus client for one bus, (re)connected on demand."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.client: AsyncModbusSerialClient | AsyncModbusTcpClient | None = None
        self._connect_lock = asyncio.Lock()
        self._request_lock = asyncio.Lock()  # one request at a time on the bus, and its byte count
        self._bytes_received = 0

    def _count_received(self, sending: bool, packet: bytes) -> bytes:
        # Bytes that arrive but never make a frame tell "garbled" from "silent".
        if not sending:
            self._bytes_received += len(packet)
        return packet

    def _new_client(self) -> AsyncModbusSerialClient | AsyncModbusTcpClient:
        connection = self.connection
        # retries=0 and no automatic reconnection: the poller's interval is the retry.
        if connection.is_serial:
            return AsyncModbusSerialClient(
                connection.serial_port,
                framer=FramerType.RTU,
                **connection.serial_settings(),
                timeout=connection.timeout_s,
                retries=0,
                reconnect_delay=0,
                trace_packet=self._count_received,
            )
        return AsyncModbusTcpClient(
            connection.host,
            port=connection.port,
            framer=FramerType.RTU if connection.transport == "rtu_over_tcp" else FramerType.SOCKET,
            timeout=connection.timeout_s,
            retries=0,
            reconnect_delay=0,
            trace_packet=self._count_received,
        )

    async def connect(self) -> None:
        async with self._connect_lock:
            if self.client is not None and self.client.connected:
                return
            self.close()
            if self.connection.is_serial and (problem := serial_port_problem(self.connection.serial_port)):
                raise MeterUnavailable(problem)
            client = self._new_client()
            try:
                connected = await client.connect()
            except Exception as error:  # termios.error, ValueError: settings the port refuses
                client.close()
                raise MeterUnavailable(f"cannot open {self.connection.describe()}: {error}") from None
            if not connected:
                client.close()
                raise MeterUnavailable(await self._connect_failure())
            self.client = client

    async def _connect_failure(self) -> str:
        """pymodbus only says False; find the reason the operating system gives."""
        connection = self.connection
        if connection.is_serial:
            try:
                import serial

                serial.Serial(connection.serial_port, **connection.serial_settings(), exclusive=True).close()
            except Exception as error:  # SerialException, termios.error, ValueError
                return f"cannot open serial port {connection.serial_port}: {error}"
            return f"cannot open serial port {connection.serial_port}"
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(connection.host, connection.port), timeout=connection.timeout_s
            )
            writer.close()
        except TimeoutError:
            return f"cannot connect to {connection.describe()}: no answer within {connection.timeout_s:g} s"
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)  # "Connection refused"
            return f"cannot connect to {connection.describe()}: {reason}"
        return f"cannot connect to {connection.describe()}"

    async def read(self, request: ReadRequest, unit_id: int) -> list[int]:
        """The registers of one request, or MeterUnavailable."""
        async with self._request_lock:
            return await self._read(request, unit_id)

    async def _read(self, request: ReadRequest, unit_id: int) -> list[int]:
        await self.connect()
        assert self.client is not None
        read = self.client.read_input_registers if request.register_type == "input" else self.client.read_holding_registers
        connection = self.connection
        self._bytes_received = 0
        try:
            response = await asyncio.wait_for(
                read(request.address, count=request.count, device_id=unit_id), timeout=connection.timeout_s * 2 + 1
            )
        except (ModbusIOException, TimeoutError) as error:
            self._after_silence()
            raise MeterUnavailable(self._no_answer(unit_id, str(error))) from None
        except (ConnectionException, OSError) as error:
            self.close()
            raise MeterUnavailable(f"connection to {connection.describe()} lost: {error}") from None
        except ModbusException as error:
            self.close()
            raise MeterUnavailable(f"garbled answer from unit {unit_id} on {connection.describe()}: {error}") from None
        if response.isError():
            code = getattr(response, "exception_code", 0)
            name, hint = EXCEPTION_HINTS.get(code, (f"code {code}", "unexpected exception code"))
            raise MeterRefused(
                f"unit {unit_id} refused {request.describe()} (function {request.function_code}) with exception {code} ({name}): {hint}",
                code,
            )
        registers = list(getattr(response, "registers", []) or [])
        if len(registers) != request.count:
            self._after_silence()
            raise MeterUnavailable(
                f"garbled answer from unit {unit_id}: asked for {request.count} registers at {request.address}, got {len(registers)}"
            )
        return registers

    def _after_silence(self) -> None:
        # On TCP a late answer would be taken for the next request's: start a fresh connection.
        # A serial port stays open (reopening it buys nothing; RTU answers come or do not).
        if not self.connection.is_serial:
            self.close()

    def _no_answer(self, unit_id: int, detail: str) -> str:
        connection = self.connection
        if "device id" in detail:
            return f"an answer came from another unit than {unit_id} on {connection.describe()}: two meters share this unit id?"
        if self._bytes_received:
            return (
                f"garbled answer from unit {unit_id} on {connection.describe()}: {self._bytes_received} bytes but no valid "
                "Modbus frame (bad CRC or framing): check the baud rate, parity, wiring and framing (Modbus TCP or RTU over TCP)"
            )
        if connection.is_serial or connection.transport == "rtu_over_tcp":
            return (
                f"no valid answer from unit {unit_id} on {connection.describe()} within {connection.timeout_s:g} s: "
                "check the unit id, baud rate, parity and A/B wiring"
            )
        return f"no answer from unit {unit_id} at {connection.describe()} within {connection.timeout_s:g} s: check the unit id"

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class MeterReader:
    """Reads one meter (its map and unit id) over a line, with the batched plan."""

    def __init__(self, line: ModbusLine, meter_map: MeterMap, unit_id: int):
        self.line = line
        self.meter_map = meter_map
        self.unit_id = unit_id
        self._resolved: MeterMap | None = None if meter_map.is_sunspec else meter_map
        self._gapless = False
        self.requests_last_poll = 0

    async def read(self, clock: Callable[[], datetime]) -> MeterReading:
        """One poll: every request of the plan, then decode. MeterUnavailable on failure."""
        self.requests_last_poll = 0
        meter_map = await self._resolve()
        while True:
            plan = plan_reads(meter_map, allow_gaps=not self._gapless)
            try:
                responses = [await self._read(request) for request in plan]
                break
            except MeterRefused as refused:
                if refused.exception_code != 2 or self._gapless or plan == plan_reads(meter_map, allow_gaps=False):
                    if self.meter_map.is_sunspec:
                        self._resolved = None  # another device answers there now? Look again next poll.
                    raise
                # Some meters refuse reads that span undocumented registers: read only the
                # documented ones from now on (more requests, but answers).
                self._gapless = True
                logger.warning("meter_plan_gapless model=%s unit_id=%s reason=%s", meter_map.key, self.unit_id, refused.reason)
        try:
            reading = decode(meter_map, registers_from_responses(plan, responses), measured_at=clock())
        except DecodeError as error:
            raise MeterUnavailable(f"garbled answer from unit {self.unit_id}: {error}") from None
        if len(reading.missing) == len(meter_map.values):
            raise MeterUnavailable(
                f"unit {self.unit_id} answered, but no value is plausible for model {meter_map.key}: wrong model, variant or unit id?"
            )
        return reading

    async def _read(self, request: ReadRequest) -> list[int]:
        self.requests_last_poll += 1
        return await self.line.read(request, self.unit_id)

    async def _resolve(self) -> MeterMap:
        """The map with absolute addresses: SunSpec meters are found by walking the models."""
        if self._resolved is not None:
            return self._resolved
        for base_address in SUNSPEC_BASE_ADDRESSES:
            try:
                marker = await self._read(ReadRequest("holding", base_address, 2))
            except MeterRefused:
                continue
            if not is_sunspec_marker(marker):
                continue
            address = base_address + 2
            for _ in range(_SUNSPEC_MAX_MODELS):
                model_id, length = sunspec_model_header(await self._read(ReadRequest("holding", address, 2)))
                if model_id in self.meter_map.sunspec_models:
                    self._resolved = self.meter_map.at_sunspec_model(model_id, address)
                    logger.info("sunspec_meter_found unit_id=%s model=%s address=%s", self.unit_id, model_id, address)
                    return self._resolved
                if model_id == SUNSPEC_END or length == 0 or address + 2 + length > 0xFFFF:
                    break
                address += 2 + length
            raise MeterUnavailable(
                f"unit {self.unit_id} is a SunSpec device without a meter model {list(self.meter_map.sunspec_models)}"
            )
        raise MeterUnavailable(
            f"no SunSpec marker 'SunS' at registers {', '.join(map(str, SUNSPEC_BASE_ADDRESSES))} of unit {self.unit_id}: "
            "not a SunSpec meter, or a wrong unit id"
        )


async def read_once(connection: Connection, meter_map: MeterMap, unit_id: int, clock: Callable[[], datetime]) -> tuple[MeterReading, int, float]:
    """Connect, read one meter once, close: (reading, requests, seconds). For meter_probe."""
    line = ModbusLine(connection)
    reader = MeterReader(line, meter_map, unit_id)
    started = time.perf_counter()
    try:
        reading = await reader.read(clock)
    finally:
        line.close()
    return reading, reader.requests_last_poll, time.perf_counter() - started

"""Meters for tests: pymodbus's real server answering with a model's registers on loopback, a
meter that never answers, one that answers garbage, a socat pty pair for RTU, and the
`simulate_meter` command as a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from meters.catalog import catalog
from meters.polling import Connection
from meters.registers import MeterMap
from meters.simulator import SimulatedMeter, bound_port, start_tcp_server
from tests.peers.linkray import ROOT, free_port
from tests.peers.waiting import wait_for_sync

# Values every shipped map can carry exactly (within its resolution): currents to 0.01 A,
# voltages to 0.1 V, whole watts, energies to 0.1 kWh, frequency to 0.1 Hz.
THREE_PHASE_VALUES = {
    "voltage_v.l1": 230.1,
    "voltage_v.l2": 231.2,
    "voltage_v.l3": 229.3,
    "current_a.l1": 10.5,
    "current_a.l2": 2.25,
    "current_a.l3": 7.75,
    "power_w.l1": 2416.0,
    "power_w.l2": -520.0,
    "power_w.l3": 1777.0,
    "total_power_w": 3673.0,
    "import_energy_wh": 12_345_600.0,
    "export_energy_wh": 234_500.0,
    "frequency_hz": 49.9,
}
SINGLE_PHASE_VALUES = {
    "voltage_v.l1": 229.8,
    "current_a.l1": 13.25,
    "power_w.l1": 3045.0,
    "total_power_w": 3045.0,
    "import_energy_wh": 4_321_000.0,
    "export_energy_wh": 100.0,
    "frequency_hz": 50.1,
}


def meter_map(key: str) -> MeterMap:
    return catalog().maps[key]


def known_values(meter_map: MeterMap) -> dict[str, float]:
    """The values a meter of this map can show, restricted to the quantities it has."""
    source = SINGLE_PHASE_VALUES if meter_map.phases == 1 else THREE_PHASE_VALUES
    return {quantity: value for quantity, value in source.items() if quantity in meter_map.quantities()}


class MeterPeer:
    """Simulated meters (one or several unit ids) behind one pymodbus TCP server on loopback."""

    def __init__(self, meters: list[SimulatedMeter], *, rtu_framing: bool = False, answer_unknown_units: bool = True, trace_packet=None):
        self.meters = meters
        self.rtu_framing = rtu_framing
        self.answer_unknown_units = answer_unknown_units
        self.trace_packet = trace_packet
        self.server = None
        self.port = 0

    @classmethod
    def of(cls, key: str, values: Mapping[str, float | None] | None = None, *, unit_id: int = 1, **kwargs) -> MeterPeer:
        model = meter_map(key)
        fixed = dict(known_values(model) if values is None else values)
        simulator_kwargs = {name: kwargs.pop(name) for name in ("sunspec_model", "fill_gaps") if name in kwargs}
        return cls([SimulatedMeter(model, lambda: fixed, unit_id=unit_id, **simulator_kwargs)], **kwargs)

    @property
    def meter(self) -> SimulatedMeter:
        return self.meters[0]

    async def start(self) -> MeterPeer:
        self.server = await start_tcp_server(
            self.meters,
            "127.0.0.1",
            self.port,
            rtu_framing=self.rtu_framing,
            answer_unknown_units=self.answer_unknown_units,
            trace_packet=self.trace_packet,
        )
        self.port = bound_port(self.server)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    def connection(self, timeout_s: float = 0.5) -> Connection:
        return Connection(
            transport="rtu_over_tcp" if self.rtu_framing else "tcp", host="127.0.0.1", port=self.port, timeout_s=timeout_s
        )

    async def __aenter__(self) -> MeterPeer:
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()


class SilentServer:
    """Accepts TCP connections and reads requests but never answers: a meter that vanished
    behind a gateway that keeps the socket open. With `garbage`, answers every request with
    bytes that are no Modbus frame."""

    def __init__(self, garbage: bytes | None = None):
        self.garbage = garbage
        self.requests = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._handlers.add(task)
        try:
            while data := await reader.read(512):
                self.requests += 1
                if self.garbage is not None:
                    writer.write(self.garbage)
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def connection(self, transport: str = "tcp", timeout_s: float = 0.3) -> Connection:
        return Connection(transport=transport, host="127.0.0.1", port=self.port, timeout_s=timeout_s)


class SerialPair:
    """Two linked pseudo-terminals made by socat: the meter opens one end, LinkRay the other."""

    def __init__(self, directory: Path):
        self.meter_end = str(directory / "ttyMeter")
        self.linkray_end = str(directory / "ttyLinkRay")
        self.process: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("socat") is not None

    def start(self) -> SerialPair:
        if not self.available():
            raise RuntimeError("socat is missing: install it with `apt-get install -y socat` (or run `make test` as root)")
        self.process = subprocess.Popen(
            [
                "socat",
                f"pty,raw,echo=0,link={self.meter_end}",
                f"pty,raw,echo=0,link={self.linkray_end}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_sync(
            lambda: os.path.exists(self.meter_end) and os.path.exists(self.linkray_end), 5.0, "socat pty pair"
        )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(5)


_SERVING = re.compile(r"serving .* on [^:]+:(\d+)|serving RTU on")


class SimulateMeterProcess:
    """`manage.py simulate_meter` as a subprocess, as an installer runs it (output to a file,
    so a chatty process never blocks on a full pipe)."""

    def __init__(self, *args: str, log_path: Path, env: dict[str, str] | None = None):
        self.args = args
        self.log_path = log_path
        self.env = env or {}
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 30.0) -> SimulateMeterProcess:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "simulate_meter", *self.args],
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            match = wait_for_sync(
                lambda: _SERVING.search(self.output()) or self.process.poll() is not None, timeout, "simulate_meter to serve"
            )
        except AssertionError:
            self.stop()
            raise
        if match is True:
            raise RuntimeError(f"simulate_meter exited with {self.process.returncode}: {self.output()}")
        self.port = int(match.group(1)) if match.group(1) else None
        return self

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


__all__ = [
    "THREE_PHASE_VALUES",
    "SINGLE_PHASE_VALUES",
    "MeterPeer",
    "SilentServer",
    "SerialPair",
    "SimulateMeterProcess",
    "free_port",
    "known_values",
    "meter_map",
]

"""A simulated meter: pymodbus's real server answering with a map's registers.

Used by `manage.py simulate_meter` (demos without hardware), the tests and the bench. The
registers are encoded from a values callable on every request, so what a client reads is
what the callable returns at that moment, in the model's types, word order and scales.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from linkray_site.electrical import Phases
from meters.registers import MeterMap, encode, plan_reads, sunspec_layout

logger = logging.getLogger(__name__)

SUNSPEC_SIMULATED_BASE = 40000
SUNSPEC_COMMON_MODEL_LENGTH = 66
SUNSPEC_METER_MODEL_LENGTH = 105

Values = Callable[[], Mapping[str, float | None]]


class SimulatedMeter:
    """One meter (one unit id) for a pymodbus server. Set `fault` to an ExcCodes member to
    make it answer every request with that exception."""

    def __init__(
        self, meter_map: MeterMap, values: Values, *, unit_id: int = 1, sunspec_model: int = 203, fill_gaps: bool = True
    ):
        """`fill_gaps=False` serves only the registers the map names, like a meter that
        refuses reads across undocumented registers."""
        self.unit_id = unit_id
        self.values = values
        self.fault: ExcCodes | None = None
        self.requests = 0
        self._image: dict[int, int] = {}
        if meter_map.is_sunspec:
            model_address = SUNSPEC_SIMULATED_BASE + 2 + 2 + SUNSPEC_COMMON_MODEL_LENGTH
            layout = sunspec_layout([(1, SUNSPEC_COMMON_MODEL_LENGTH), (sunspec_model, SUNSPEC_METER_MODEL_LENGTH)])
            self._image = {SUNSPEC_SIMULATED_BASE + offset: word for offset, word in enumerate(layout)}
            meter_map = meter_map.at_sunspec_model(sunspec_model, model_address)
        else:
            for request in plan_reads(meter_map, allow_gaps=fill_gaps):
                self._image.update(dict.fromkeys(request.addresses(), 0))
        self.meter_map = meter_map
        self._refresh()

    def _refresh(self) -> None:
        for (_, address), word in encode(self.meter_map, self.values()).items():
            self._image[address] = word

    def device(self) -> SimDevice:
        """The pymodbus device: input and holding registers share one address space."""
        addresses = sorted(self._image)
        blocks: list[SimData] = []
        run: list[int] = []
        for address in addresses:
            if run and address != run[-1] + 1:
                blocks.append(self._block(run))
                run = []
            run.append(address)
        blocks.append(self._block(run))
        return SimDevice(id=self.unit_id, simdata=blocks, action=self._on_request)

    def _block(self, addresses: list[int]) -> SimData:
        return SimData(address=addresses[0], values=[self._image[a] for a in addresses], datatype=DataType.REGISTERS)

    async def _on_request(self, function_code, start_address, address, count, registers, set_values):
        self.requests += 1
        if self.fault is not None:
            return self.fault
        try:
            self._refresh()
        except (ValueError, OverflowError):
            logger.exception("simulated_meter_values_rejected model=%s", self.meter_map.key)
            return ExcCodes.DEVICE_FAILURE
        for offset in range(len(registers)):
            word = self._image.get(start_address + offset)
            if word is not None:
                registers[offset] = word
        return None


class _UnitsOnTheLine:
    """pymodbus 3.16's SimCore answers a request for an unknown unit id with "device failure".
    A real RS-485 line is silent, and a TCP gateway answers "gateway target failed to respond":
    raising NoSuchIdException lets the server do either (ignore_missing_devices)."""

    def __init__(self, core):
        self._core = core

    def device_ids(self) -> list[int]:
        return self._core.device_ids()

    def _check(self, device_id: int) -> None:
        if device_id not in self._core.devices:
            raise NoSuchIdException(f"unit {device_id}")

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1):
        self._check(device_id)
        return await self._core.async_getValues(device_id, func_code, address, count)

    async def async_setValues(self, device_id: int, func_code: int, address: int, values):
        self._check(device_id)
        return await self._core.async_setValues(device_id, func_code, address, values)


async def _serve(server, where: str):
    server.context = _UnitsOnTheLine(server.context)
    try:
        await server.serve_forever(background=True)  # RuntimeError when it cannot listen
    except RuntimeError:
        server.transport = None
    if server.transport is None:
        await server.shutdown()
        raise OSError(f"cannot {where} (in use, missing, or not permitted)")
    return server


async def start_tcp_server(
    meters: list[SimulatedMeter],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    rtu_framing: bool = False,
    answer_unknown_units: bool = True,
    trace_packet: Callable[[bool, bytes], bytes] | None = None,
) -> ModbusTcpServer:
    """Serve the meters on host:port (0 picks a free port; see `bound_port`). With
    answer_unknown_units=False a wrong unit id gets silence, as on RS-485; otherwise the
    "gateway target failed to respond" exception a TCP gateway sends."""
    server = ModbusTcpServer(
        [meter.device() for meter in meters],
        framer=FramerType.RTU if rtu_framing else FramerType.SOCKET,
        address=(host, port),
        ignore_missing_devices=not answer_unknown_units,
        trace_packet=trace_packet,
    )
    return await _serve(server, f"listen on {host}:{port}")


async def start_serial_server(
    meters: list[SimulatedMeter], serial_port: str, *, baudrate: int = 9600, parity: str = "N", stopbits: int = 1
) -> ModbusSerialServer:
    """Serve the meters as RTU slaves on a serial port (a pty in tests); unknown units: silence."""
    server = ModbusSerialServer(
        [meter.device() for meter in meters],
        framer=FramerType.RTU,
        port=serial_port,
        baudrate=baudrate,
        parity=parity,
        stopbits=stopbits,
        ignore_missing_devices=True,
    )
    return await _serve(server, f"open serial port {serial_port}")


def bound_port(server: ModbusTcpServer) -> int:
    return server.transport.sockets[0].getsockname()[1]


@dataclass
class SimulatedSite:
    """A grid connection: a base load plus the current the chargers draw, at 230 V, 50 Hz.
    Energy is integrated between calls (import when power is positive)."""

    base_current_a: Phases = field(default_factory=lambda: Phases(6.0, 4.0, 5.0))
    charging_current_a: Phases = field(default_factory=lambda: Phases(0.0, 0.0, 0.0))
    voltage_v: float = 230.0
    frequency_hz: float = 50.0
    import_energy_wh: float = 1_000_000.0
    export_energy_wh: float = 0.0
    clock: Callable[[], float] = time.monotonic
    _last_at: float | None = None

    def values(self) -> dict[str, float]:
        currents = [
            (base or 0.0) + (charging or 0.0)
            for base, charging in zip(self.base_current_a.as_tuple(), self.charging_current_a.as_tuple())
        ]
        powers = [self.voltage_v * current for current in currents]
        total_power_w = sum(powers)
        now = self.clock()
        if self._last_at is not None:
            energy_wh = total_power_w * (now - self._last_at) / 3600
            if energy_wh >= 0:
                self.import_energy_wh += energy_wh
            else:
                self.export_energy_wh -= energy_wh
        self._last_at = now
        values: dict[str, float] = {
            "total_power_w": total_power_w,
            "import_energy_wh": self.import_energy_wh,
            "export_energy_wh": self.export_energy_wh,
            "frequency_hz": self.frequency_hz,
        }
        for phase, current, power in zip(("l1", "l2", "l3"), currents, powers):
            values[f"voltage_v.{phase}"] = self.voltage_v
            values[f"current_a.{phase}"] = current
            values[f"power_w.{phase}"] = power
        return values

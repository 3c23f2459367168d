"""The simulated grid meter: pymodbus's real TCP server (meters.simulator) answering with a
shipped register map (SDM630 by default), its values computed at every read as

    base load per phase + what the chargers actually draw on each site phase - PV feed-in

Currents are magnitudes (what a meter shows); power per phase is signed, negative = export.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from pymodbus.constants import ExcCodes

from meters.catalog import catalog
from meters.simulator import SimulatedMeter, bound_port, start_tcp_server

logger = logging.getLogger(__name__)

SITE_PHASES = ("L1", "L2", "L3")
PhaseCurrents = Mapping[str, float]  # site phase ("L1".."L3") -> A


class _SilenceableMeter(SimulatedMeter):
    """meters.simulator's meter that can also keep quiet: requests are read but not
    answered while silenced (a meter gone behind a gateway that keeps the socket open)."""

    def __init__(self, *args, **kwargs):
        self.speaking = asyncio.Event()
        self.speaking.set()
        super().__init__(*args, **kwargs)

    async def _on_request(self, *args):
        await self.speaking.wait()
        return await super()._on_request(*args)


class DrawsCurrent(Protocol):
    def current_draw_a(self) -> dict[str, float]: ...


def per_phase(value: float | Mapping[str, float] | tuple[float, float, float]) -> dict[str, float]:
    """3.0 -> every phase 3 A; (1, 2, 3) -> L1..L3; {"L2": 5} -> L2 5 A, others 0."""
    if isinstance(value, int | float):
        return dict.fromkeys(SITE_PHASES, float(value))
    if isinstance(value, Mapping):
        unknown = set(value) - set(SITE_PHASES)
        if unknown:
            raise ValueError(f"unknown phases {sorted(unknown)}; expected {SITE_PHASES}")
        return {phase: float(value.get(phase, 0.0)) for phase in SITE_PHASES}
    try:
        values = tuple(value)
    except TypeError as error:
        raise ValueError(f"expected A per phase, got {value!r}") from error
    if len(values) != 3:
        raise ValueError(f"expected three per-phase values, got {values!r}")
    return dict(zip(SITE_PHASES, map(float, values)))


class GridMeter:
    """A grid meter on loopback. `base_load_a` is a per-phase value (see `per_phase`) or a
    callable returning one, read at every request; `pv_feed_in_a` likewise (A per phase fed
    in). `chargers` are anything with `current_draw_a()`."""

    def __init__(
        self,
        chargers: Iterable[DrawsCurrent] = (),
        *,
        base_load_a: float | Mapping[str, float] | Callable[[], object] = 0.0,
        pv_feed_in_a: float | Mapping[str, float] | Callable[[], object] = 0.0,
        meter_map_key: str = "sdm630",
        unit_id: int = 1,
        voltage_v: float = 230.0,
        frequency_hz: float = 50.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.chargers = list(chargers)
        self.base_load_a = base_load_a
        self.pv_feed_in_a = pv_feed_in_a
        self.voltage_v = voltage_v
        self.frequency_hz = frequency_hz
        self.host = host
        self.port = port
        self.import_energy_wh = 1_000_000.0
        self.export_energy_wh = 0.0
        self._last_read_s: float | None = None
        self._quantities: set[str] | None = None
        meter_map = catalog().maps[meter_map_key]
        self._quantities = set(meter_map.quantities())
        # Built on zeros: a bad base load shows at the first read (as a Modbus exception), not here.
        self.simulated = _SilenceableMeter(meter_map, dict, unit_id=unit_id)
        self.simulated.values = self.values
        self.server = None

    @property
    def unit_id(self) -> int:
        return self.simulated.unit_id

    @property
    def requests(self) -> int:
        return self.simulated.requests

    def _resolve(self, value) -> dict[str, float]:
        return per_phase(value() if callable(value) else value)

    def grid_current_a(self) -> dict[str, float]:
        """Signed net current per site phase now (import positive)."""
        base = self._resolve(self.base_load_a)
        pv = self._resolve(self.pv_feed_in_a)
        charging = self.charging_current_a()
        return {phase: base[phase] - pv[phase] + charging[phase] for phase in SITE_PHASES}

    def charging_current_a(self) -> dict[str, float]:
        """Per site phase, what the chargers draw now (no base load, no PV)."""
        total = dict.fromkeys(SITE_PHASES, 0.0)
        for charger in self.chargers:
            for phase, current_a in charger.current_draw_a().items():
                total[phase] += current_a
        return total

    def values(self) -> dict[str, float]:
        """The meter's quantities now, as meters.simulator encodes them."""
        net = self.grid_current_a()
        powers_w = {phase: self.voltage_v * current_a for phase, current_a in net.items()}
        total_power_w = sum(powers_w.values())
        now_s = time.monotonic()
        if self._last_read_s is not None:
            energy_wh = total_power_w * (now_s - self._last_read_s) / 3600
            if energy_wh >= 0:
                self.import_energy_wh += energy_wh
            else:
                self.export_energy_wh -= energy_wh
        self._last_read_s = now_s
        values = {
            "total_power_w": total_power_w,
            "import_energy_wh": self.import_energy_wh,
            "export_energy_wh": self.export_energy_wh,
            "frequency_hz": self.frequency_hz,
        }
        for phase in SITE_PHASES:
            name = phase.lower()
            values[f"voltage_v.{name}"] = self.voltage_v
            values[f"current_a.{name}"] = abs(net[phase])
            values[f"power_w.{name}"] = powers_w[phase]
        return {name: value for name, value in values.items() if name in self._quantities}

    async def start(self) -> GridMeter:
        """Serve on host:port (port 0 the first time picks a free one; a restart reuses it)."""
        self.server = await start_tcp_server([self.simulated], self.host, self.port)
        self.port = bound_port(self.server)
        logger.info("sim_meter_serving port=%s unit_id=%s", self.port, self.unit_id)
        return self

    async def stop(self) -> None:
        """The meter is gone: connections refused until `start()` again (same port)."""
        self.speak()
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    @property
    def running(self) -> bool:
        return self.server is not None

    def silence(self) -> None:
        """Keep the socket open but answer nothing (clients time out) until `speak()`."""
        self.simulated.speaking.clear()

    def speak(self) -> None:
        self.simulated.speaking.set()

    def fail(self, code: ExcCodes | None = ExcCodes.DEVICE_FAILURE) -> None:
        """Answer every request with a Modbus exception (None: answer normally again)."""
        self.simulated.fault = code


__all__ = ["GridMeter", "per_phase", "SITE_PHASES"]

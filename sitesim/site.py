"""A whole site: a grid meter, chargers connected to LinkRay (or straight to a CSMS), an
optional CSMS behind LinkRay, and a recorder of the grid currents over time.

    site = Site(linkray_url, chargers=[SimulatedCharger("CP1", kind="ac1", phases=("L2",))],
                base_load_a=(10, 4, 4), csms=SimulatedCsms())
    await site.start()
    ...   # LinkRay polls site.meter.port, unit 1, map sdm630
    site.grid_current_a(); site.recorder.max_current_a(); site.energy_delivered_wh()
    await site.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sitesim.charger import SimulatedCharger
from sitesim.csms import SimulatedCsms
from sitesim.meter import SITE_PHASES, GridMeter

logger = logging.getLogger(__name__)


@dataclass
class GridRecorder:
    """Samples the grid currents every `interval_s` while running: (monotonic s, {phase: A})."""

    read: Callable[[], Mapping[str, float]]
    interval_s: float = 0.05
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    _task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sim-grid-recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def sample(self) -> None:
        self.samples.append((time.monotonic(), dict(self.read())))

    async def _run(self) -> None:
        while True:
            try:
                self.sample()
            except ValueError as error:  # a base-load callable gave something that is no current
                logger.warning("sim_recorder_sample_skipped error=%s", error)
            await asyncio.sleep(self.interval_s)

    def clear(self) -> None:
        self.samples.clear()

    def _since(self, since_s: float | None) -> list[tuple[float, dict[str, float]]]:
        return [s for s in self.samples if since_s is None or s[0] >= since_s]

    def max_current_a(self, since_s: float | None = None) -> dict[str, float]:
        """Per phase, the highest current sampled (since `since_s`, a time.monotonic())."""
        samples = self._since(since_s)
        return {phase: max((values[phase] for _, values in samples), default=0.0) for phase in SITE_PHASES}

    def time_above_s(self, limit_a: float, phase: str | None = None, since_s: float | None = None) -> float:
        """Seconds during which the phase (any phase if None) was above `limit_a`: each
        sample's state holds until the next sample."""
        samples = self._since(since_s)
        total_s = 0.0
        for (at_s, values), (next_at_s, _) in zip(samples, samples[1:]):
            phases = SITE_PHASES if phase is None else (phase,)
            if any(values[p] > limit_a for p in phases):
                total_s += next_at_s - at_s
        return total_s


class Site:
    def __init__(
        self,
        linkray_url: str | None,
        chargers: Iterable[SimulatedCharger] = (),
        *,
        base_load_a=0.0,
        pv_feed_in_a=0.0,
        csms: SimulatedCsms | None = None,
        meter: GridMeter | None = None,
        meter_map_key: str = "sdm630",
        meter_port: int = 0,
        record_interval_s: float = 0.05,
    ):
        """`linkray_url` is where chargers connect (`ws://host:port/ocpp`); None connects them
        straight to `csms` (no LinkRay)."""
        self.chargers = list(chargers)
        self.csms = csms
        self.linkray_url = linkray_url
        self.meter = meter or GridMeter(
            self.chargers, base_load_a=base_load_a, pv_feed_in_a=pv_feed_in_a, meter_map_key=meter_map_key, port=meter_port
        )
        self.meter.chargers = self.chargers  # one list: a charger added to the site loads the meter
        self.recorder = GridRecorder(self.grid_current_a, record_interval_s)

    def charger(self, charge_box_id: str) -> SimulatedCharger:
        return next(c for c in self.chargers if c.charge_box_id == charge_box_id)

    @property
    def charger_url(self) -> str:
        if self.linkray_url is not None:
            return self.linkray_url
        if self.csms is None:
            raise ValueError("a site needs a LinkRay URL or a CSMS to connect its chargers to")
        return self.csms.url

    async def start(self) -> Site:
        """`start_peers()` then `connect_chargers()`."""
        await self.start_peers()
        await self.connect_chargers()
        return self

    async def start_peers(self) -> Site:
        """CSMS (if any, and not yet online), meter and recorder: what LinkRay must know the
        ports of (`site.csms.url`, `site.meter.port`) before it starts."""
        try:
            if self.csms is not None and not self.csms.online:
                await self.csms.start()
            if not self.meter.running:
                await self.meter.start()
            if not self.recorder.running:
                self.recorder.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def connect_chargers(self, timeout_s: float = 10.0) -> Site:
        """Every charger connected to `charger_url` and booted."""
        try:
            await asyncio.gather(*(charger.start(self.charger_url, timeout_s) for charger in self.chargers))
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        """Stop everything it started: no task, socket or listening port is left behind."""
        await asyncio.gather(*(charger.stop() for charger in self.chargers), return_exceptions=True)
        await self.recorder.stop()
        await self.meter.stop()
        if self.csms is not None:
            await self.csms.stop()

    async def __aenter__(self) -> Site:
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    def grid_current_a(self) -> dict[str, float]:
        """The signed net current per site phase now, as the meter would read it."""
        return self.meter.grid_current_a()

    def charging_current_a(self) -> dict[str, float]:
        """Per site phase, what the chargers draw now (the grid current without base load and PV)."""
        return self.meter.charging_current_a()

    def energy_delivered_wh(self) -> dict[str, float]:
        """Per charger, the energy of its current (or last) transaction."""
        return {charger.charge_box_id: charger.energy_delivered_wh for charger in self.chargers}

    def set_base_load_a(self, value) -> None:
        """A base-load step: a per-phase value (3.0, (10, 4, 4), {"L1": 20}) or a callable."""
        self.meter.base_load_a = value


__all__ = ["GridRecorder", "Site"]

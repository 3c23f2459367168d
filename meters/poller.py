"""Poll meters and publish what they measured: the one code path for both configurations.

`MeterPoller.poll(config)` reads one meter, turns success or failure into its MeterStatus (kept
in meters.live for balancing and pages) and feeds the 10 s history. The embedded default calls
it from one asyncio task per meter (meters.loop); the scale-out configuration calls
`poll_due(now)` from a Celery beat task (meters.tasks). A failing meter costs at most its own
timeout; other meters are polled by their own tasks (embedded) or concurrently (Celery).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache

from meters import live, services
from meters.catalog import Catalog, catalog
from meters.polling import Connection, MeterReader, MeterUnavailable, ModbusLine
from meters.readings import HistoryAccumulator, MeterStatus, is_due

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """What the poller needs of one Meter row (a change to any field restarts its polling)."""

    meter_id: int
    name: str
    model_key: str
    role: str
    connection: Connection
    unit_id: int
    poll_interval_s: float
    stale_after_s: float


def utc_now() -> datetime:
    return datetime.now(UTC)


def _line_key(connection: Connection) -> Connection:
    # Meters on one bus share its client whatever their own answer timeouts.
    return replace(connection, timeout_s=0.0)


class MeterPoller:
    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = utc_now,
        history_bucket_s: int | None = None,
        catalog_source: Callable[[], Catalog] = catalog,
    ):
        self.clock = clock
        self.history_bucket_s = history_bucket_s or settings.LINKRAY_METER_HISTORY_BUCKET_S
        self.catalog_source = catalog_source
        self.configs: dict[int, MeterConfig] = {}
        self._lines: dict[Connection, ModbusLine] = {}
        self._readers: dict[int, tuple[MeterConfig, MeterReader]] = {}
        self._history: dict[int, HistoryAccumulator] = {}

    # --- configuration ---------------------------------------------------------------------

    def apply(self, configs: list[MeterConfig]) -> None:
        """Adopt the enabled meters: forget removed ones, rebuild changed ones, close idle
        lines, and publish which meter is the grid meter."""
        wanted = {config.meter_id: config for config in configs}
        for meter_id, (config, _) in list(self._readers.items()):
            if wanted.get(meter_id) != config:
                del self._readers[meter_id]
        for meter_id in set(self.configs) - set(wanted):
            live.forget_status(meter_id)
            self._history.pop(meter_id, None)
        timeouts: dict[Connection, float] = {}
        for config in wanted.values():
            key = _line_key(config.connection)
            timeouts[key] = max(timeouts.get(key, 0.0), config.connection.timeout_s)
        for key, line in list(self._lines.items()):
            if timeouts.get(key) != line.connection.timeout_s:
                line.close()
                del self._lines[key]
                self._readers = {
                    meter_id: entry for meter_id, entry in self._readers.items() if entry[1].line is not line
                }
        self.configs = wanted
        grid = sorted(config.meter_id for config in configs if config.role == "grid")
        live.put_grid_meter_id(grid[0] if grid else None)

    def _reader(self, config: MeterConfig) -> MeterReader:
        entry = self._readers.get(config.meter_id)
        if entry is not None and entry[0] == config:
            return entry[1]
        meter_map = self.catalog_source().get(config.model_key)
        if meter_map is None:
            raise MeterUnavailable(
                f"unknown meter model {config.model_key!r}: no such map in meters/maps or the custom maps folder"
            )
        key = _line_key(config.connection)
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = ModbusLine(config.connection)
        reader = MeterReader(line, meter_map, config.unit_id)
        self._readers[config.meter_id] = (config, reader)
        return reader

    # --- polling ---------------------------------------------------------------------------

    async def poll(self, config: MeterConfig) -> MeterStatus:
        """Read one meter once and publish its status; never raises for meter trouble."""
        previous = live.get_status(config.meter_id) or MeterStatus(config.meter_id, config.role, config.stale_after_s)
        previous = replace(previous, role=config.role, stale_after_s=config.stale_after_s)
        started = time.perf_counter()
        reader = None
        try:
            reader = self._reader(config)
            reading = await reader.read(self.clock)
        except MeterUnavailable as error:
            status = previous.after_failure(error.reason, self.clock(), time.perf_counter() - started)
            if error.reason != previous.error:
                logger.warning("meter_unavailable meter=%s reason=%s", config.name, error.reason)
        except Exception as error:  # a bug must not stop this meter's polling or hide its state
            logger.exception("meter_poll_failed meter=%s", config.name)
            status = previous.after_failure(f"internal error: {error!r}", self.clock(), time.perf_counter() - started)
        else:
            status = previous.after_success(reading, self.clock(), time.perf_counter() - started, reader.requests_last_poll)
            if previous.consecutive_failures:
                logger.info("meter_recovered meter=%s failed_polls=%d", config.name, previous.consecutive_failures)
            if reading.missing and set(reading.missing) != set(previous.reading.missing if previous.reading else ()):
                logger.warning("meter_values_missing meter=%s quantities=%s", config.name, ",".join(reading.missing))
        live.put_status(status)
        if status.error == "" and status.reading is not None:
            await self._record_history(config, status)
        return status

    async def _record_history(self, config: MeterConfig, status: MeterStatus) -> None:
        accumulator = self._history.get(config.meter_id)
        if accumulator is None:
            accumulator = self._history[config.meter_id] = HistoryAccumulator(self.history_bucket_s)
        closed = accumulator.add(status.reading)
        if closed is None:
            return
        try:
            await database_sync_to_async(services.record_history_bucket)(config.meter_id, closed)
        except Exception:
            logger.exception("meter_history_write_failed meter=%s", config.name)

    async def flush_history(self) -> None:
        """Write the open buckets (at shutdown)."""
        for meter_id, accumulator in list(self._history.items()):
            bucket = accumulator.take()
            if bucket is not None:
                await database_sync_to_async(services.record_history_bucket)(meter_id, bucket)

    async def poll_due(self, now: datetime, configs: list[MeterConfig]) -> list[MeterStatus]:
        """Scale-out: poll, concurrently, the meters whose interval has passed and that no
        other worker is polling right now (a cache lock per meter)."""
        self.apply(configs)
        due = []
        for config in configs:
            status = live.get_status(config.meter_id)
            if not is_due(status.last_poll_at if status else None, config.poll_interval_s, now):
                continue
            # Redis cache timeouts are whole seconds; the lock outlives the poll's worst case.
            lock_s = int(config.connection.timeout_s * 8 + 5)
            if cache.add(_lock_key(config.meter_id), True, timeout=lock_s):
                due.append(config)
        try:
            return list(await asyncio.gather(*(self.poll(config) for config in due)))
        finally:
            cache.delete_many([_lock_key(config.meter_id) for config in due])

    def close(self) -> None:
        for line in self._lines.values():
            line.close()
        self._lines.clear()
        self._readers.clear()


def _lock_key(meter_id: int) -> str:
    return f"meters:polling:{meter_id}"

"""Embedded default: meter polling as asyncio tasks inside `manage.py serve`.

`run_meter_polling` re-reads the meter table every LINKRAY_METER_CONFIG_RELOAD_S and keeps one
task per enabled meter, each on its own interval, so a meter that times out delays nobody
else. Celery beat runs the same MeterPoller.poll in the scale-out configuration (meters.tasks).
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from meters import selectors, services
from meters.poller import MeterConfig, MeterPoller, utc_now

logger = logging.getLogger(__name__)


class PollingSupervisor:
    """One polling task per meter; restarted when the meter's configuration changes."""

    def __init__(self, poller: MeterPoller):
        self.poller = poller
        self.tasks: dict[int, tuple[MeterConfig, asyncio.Task]] = {}

    def apply(self, configs: list[MeterConfig]) -> None:
        self.poller.apply(configs)
        wanted = {config.meter_id: config for config in configs}
        for meter_id, (config, task) in list(self.tasks.items()):
            if wanted.get(meter_id) != config or task.done():
                task.cancel()
                del self.tasks[meter_id]
        for meter_id, config in wanted.items():
            if meter_id not in self.tasks:
                task = asyncio.get_running_loop().create_task(self._poll_forever(config), name=f"meter-{meter_id}")
                self.tasks[meter_id] = (config, task)

    async def _poll_forever(self, config: MeterConfig) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                await self.poller.poll(config)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("meter_poll_failed meter=%s", config.name)
            # Keep the cadence; after a slow poll start again at once instead of bursting.
            next_at = max(next_at + config.poll_interval_s, loop.time())
            await asyncio.sleep(next_at - loop.time())

    async def stop(self) -> None:
        tasks = [task for _, task in self.tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()
        self.poller.close()


async def run_meter_polling(poller: MeterPoller | None = None, reload_interval_s: float | None = None) -> None:
    """Poll every enabled meter forever (LINKRAY_EMBEDDED_TASKS)."""
    supervisor = PollingSupervisor(poller or MeterPoller())
    reload_interval_s = reload_interval_s or settings.LINKRAY_METER_CONFIG_RELOAD_S
    try:
        while True:
            try:
                configs = await database_sync_to_async(selectors.enabled_meter_configs)()
            except Exception:
                # Database briefly locked or not migrated yet: keep polling what we know.
                logger.exception("meter_config_load_failed")
            else:
                supervisor.apply(configs)
            await asyncio.sleep(reload_interval_s)
    finally:
        await supervisor.stop()
        try:
            await supervisor.poller.flush_history()
        except Exception:
            logger.exception("meter_history_flush_failed")


async def run_history_pruning() -> None:
    """Drop history past its retention, hourly (LINKRAY_EMBEDDED_TASKS)."""
    while True:
        try:
            await database_sync_to_async(services.prune_history)(utc_now(), settings.LINKRAY_METER_HISTORY_RETENTION_H)
        except Exception:
            logger.exception("meter_history_prune_failed")
        await asyncio.sleep(3600)

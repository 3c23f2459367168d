"""Scale-out: Celery beat runs meter polling (every second) and history pruning (hourly).

The task calls the same MeterPoller as the embedded loop. Each worker process keeps one
event loop and one poller across task runs, so Modbus connections stay open between polls;
a cache lock per meter keeps two workers from polling the same meter at once.
"""

from __future__ import annotations

import asyncio
import threading
import time

from celery import shared_task
from channels.db import database_sync_to_async
from django.conf import settings

from meters import selectors, services
from meters.poller import MeterConfig, MeterPoller, utc_now

_lock = threading.Lock()
_runner: asyncio.Runner | None = None
_poller: MeterPoller | None = None
_configs: list[MeterConfig] = []
_configs_loaded_at: float | None = None


async def _poll_due() -> int:
    global _poller, _configs, _configs_loaded_at
    if _poller is None:
        _poller = MeterPoller()
    if _configs_loaded_at is None or time.monotonic() - _configs_loaded_at >= settings.LINKRAY_METER_CONFIG_RELOAD_S:
        _configs = await database_sync_to_async(selectors.enabled_meter_configs)()
        _configs_loaded_at = time.monotonic()
    return len(await _poller.poll_due(utc_now(), _configs))


@shared_task(name="meters.poll_due")
def poll_due_meters_task() -> int:
    """Poll the meters that are due; returns how many were polled."""
    global _runner
    with _lock:
        if _runner is None:
            _runner = asyncio.Runner()
        polled = _runner.run(_poll_due())
    if polled:
        from balancing.tasks import request_cycle_if_over_limit

        request_cycle_if_over_limit()  # balancing reacts to an over-limit reading at once
    return polled


@shared_task(name="meters.prune_history")
def prune_history_task() -> int:
    return services.prune_history(utc_now(), settings.LINKRAY_METER_HISTORY_RETENTION_H)

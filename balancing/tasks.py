"""Scale-out: Celery beat runs the control cycle every second (the task keeps the site's
control period) and the gateway asks for a cycle at once on a transaction start or stop. The
same `balancing.control.run_cycle` as the embedded loop; a cache lock makes sure only one
worker runs a cycle at a time, and LinkRay's CALLs reach the chargers through the channel layer.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time

from celery import shared_task
from django.core.cache import cache

from balancing import control
from meters import selectors as meter_selectors
from meters.poller import utc_now

logger = logging.getLogger(__name__)

LOCK_KEY = "balancing.cycle.lock"
LAST_CYCLE_KEY = "balancing.cycle.last_at"
# Longer than any cycle (sends wait at most the CALL timeout): a crashed worker's lock expires.
LOCK_TIMEOUT_S = 30

_lock = threading.Lock()
_runner: asyncio.Runner | None = None


def _run(coroutine):
    global _runner
    with _lock:
        if _runner is None:
            _runner = asyncio.Runner()
        return _runner.run(coroutine)


def run_cycle_once(*, on_demand: bool = False) -> str:
    """Run one cycle unless another worker holds the lock or (for beat) the period has not
    passed; returns what happened."""
    token = secrets.token_hex(8)
    if not cache.add(LOCK_KEY, token, timeout=LOCK_TIMEOUT_S):
        return "busy"
    try:
        last_at = cache.get(LAST_CYCLE_KEY)
        period_s = (control.last_site_status() or {}).get("control_period_s") or 1.0
        if not on_demand and last_at is not None and time.time() - last_at < period_s * 0.9:
            return "not due"
        cache.set(LAST_CYCLE_KEY, time.time(), timeout=3600)
        _run(control.run_cycle(utc_now()))
        return "ran"
    finally:
        if cache.get(LOCK_KEY) == token:
            cache.delete(LOCK_KEY)


@shared_task(name="balancing.run_cycle")
def run_cycle_task(on_demand: bool = False) -> str:
    try:
        return run_cycle_once(on_demand=on_demand)
    except Exception:
        logger.exception("balancing_cycle_failed")
        return "failed"


def request_cycle(charge_box_id: str, effect) -> None:
    """Gateway effect listener (scale-out server processes): a transaction started or stopped."""
    from gateway import observe

    if isinstance(effect, observe.TransactionStarted | observe.TransactionStopped):
        try:
            run_cycle_task.apply_async(kwargs={"on_demand": True}, expires=5)
        except Exception as error:
            logger.warning("balancing_cycle_request_failed charge_box_id=%s error=%s", charge_box_id, error)


def request_cycle_if_over_limit() -> bool:
    """After a meter poll (scale-out): a grid reading over the limit in force asks for a cycle
    at once instead of waiting for beat's next tick."""
    from balancing.loop import reading_over_limit

    reading = meter_selectors.grid_reading(utc_now())
    if reading is None or not reading_over_limit(reading, control.last_site_status()):
        return False
    try:
        run_cycle_task.apply_async(kwargs={"on_demand": True}, expires=5)
    except Exception as error:
        logger.warning("balancing_cycle_request_failed reason=grid_over_limit error=%s", error)
        return False
    return True

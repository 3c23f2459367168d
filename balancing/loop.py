"""Embedded default: the control loop as a supervised asyncio task inside `manage.py serve`.

Runs `balancing.control.run_cycle` every control period (SiteSettings.control_period_s, re-read
every cycle) and at once when a transaction starts or stops, or when a new grid reading is over
the limit in force. A failed cycle is logged and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging

from balancing import control
from gateway import observe
from gateway.runtime import runtime
from linkray_site.metrics import OverLimitTally
from meters import selectors as meter_selectors
from meters.poller import utc_now

logger = logging.getLogger(__name__)

# How often the loop looks for a new grid reading over the limit between cycles.
_WATCH_INTERVAL_S = 0.1


def reading_over_limit(reading, site_status: dict | None) -> bool:
    """Any phase over the limit in force minus the margin (as the last cycle saw them)."""
    status = site_status or {}
    limit_a = status.get("limit_in_force_a")
    if limit_a is None:
        return False
    margin_a = status.get("margin_a") or 0.0
    return any(current_a is not None and current_a > limit_a - margin_a for current_a in reading.current_a.as_tuple())


class BalancingLoop:
    def __init__(self):
        self.wake = asyncio.Event()
        self.period_s = 1.0
        self._last_reading_at = None
        # Seconds over the site limit, for /metrics (linkray_site_over_limit_seconds).
        self.over_limit = OverLimitTally()

    def tally_over_limit(self) -> None:
        reading = meter_selectors.grid_reading(utc_now())
        over = reading is not None and reading_over_limit(reading, control.last_site_status())
        self.over_limit.observe(over, asyncio.get_running_loop().time())

    def on_effect(self, charge_box_id: str, effect) -> None:
        if isinstance(effect, observe.TransactionStarted | observe.TransactionStopped):
            logger.info("balancing_woken charge_box_id=%s by=%s", charge_box_id, type(effect).__name__)
            self.wake.set()

    def new_reading_over_limit(self) -> bool:
        """A grid reading not seen before that is over the limit in force (minus margin)."""
        reading = meter_selectors.grid_reading(utc_now())
        if reading is None or reading.measured_at == self._last_reading_at:
            return False
        self._last_reading_at = reading.measured_at
        return reading_over_limit(reading, control.last_site_status())

    async def wait_for_next(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.period_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 or self.wake.is_set():
                break
            try:
                await asyncio.wait_for(self.wake.wait(), min(_WATCH_INTERVAL_S, remaining))
            except asyncio.TimeoutError:
                if self.new_reading_over_limit():
                    logger.info("balancing_woken by=grid_over_limit")
                    break
        self.wake.clear()

    async def run(self) -> None:
        runtime.effect_listeners.append(self.on_effect)
        try:
            while True:
                try:
                    result = await control.run_cycle(utc_now())
                    self.period_s = result.period_s
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("balancing_cycle_failed")
                try:
                    self.tally_over_limit()
                except Exception:
                    logger.exception("balancing_over_limit_tally_failed")
                await self.wait_for_next()
        finally:
            if self.on_effect in runtime.effect_listeners:
                runtime.effect_listeners.remove(self.on_effect)


async def run_balancing() -> None:
    """LINKRAY_EMBEDDED_TASKS entry point."""
    await BalancingLoop().run()

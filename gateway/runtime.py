"""Per-process gateway runtime: the sessions of the chargers connected to this process, the
journal buffer, and the flusher that writes both to the database in batches.

One instance per server process (`runtime`). Consumers register their sessions here; code in
the same process reaches a charger through it, code in other processes through the channel
layer (gateway.commands).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from datetime import UTC, datetime

from channels.db import database_sync_to_async
from django.conf import settings

from gateway import observe, services
from gateway.journal import JournalBuffer, prune_journal, write_journal_entries

logger = logging.getLogger(__name__)


class GatewayRuntime:
    def __init__(self):
        self.sessions: dict = {}
        self.journal = JournalBuffer(settings.LINKRAY_JOURNAL_BUFFER_MAX)
        self._dirty: dict[str, object] = {}
        self._effects: list[tuple[str, observe.Effect]] = []
        self._flusher: asyncio.Task | None = None
        self._flush_lock: asyncio.Lock | None = None
        self._reported_drops = 0
        # idTag -> (status, expiry) the CSMS stated since the last flush, so an outage right
        # after an Authorize still finds the answer (the database copy lags by one flush).
        self._recent_authorizations: dict[str, tuple[str, object]] = {}
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        # Called (without blocking) with (charge_box_id, effect) as traffic implies it: balancing
        # wakes its control loop on a transaction start or stop.
        self.effect_listeners: list = []

    # --- SessionHooks ----------------------------------------------------------------------

    def state_changed(self, session) -> None:
        self._dirty[session.charge_box_id] = session

    def effects(self, session, effects: list[observe.Effect]) -> None:
        for effect in effects:
            self._effects.append((session.charge_box_id, effect))
            if isinstance(effect, observe.AuthorizationSeen):
                self._recent_authorizations[effect.id_tag] = (effect.status, effect.expiry_date)
            for listener in self.effect_listeners:
                try:
                    listener(session.charge_box_id, effect)
                except Exception:
                    logger.exception("effect_listener_failed charge_box_id=%s", session.charge_box_id)

    def recent_authorization(self, id_tag: str) -> tuple[str, object] | None:
        return self._recent_authorizations.get(id_tag)

    # --- sessions --------------------------------------------------------------------------

    def register(self, session) -> object | None:
        """Make `session` the charger's; returns the session it replaces, if any."""
        self.ensure_started()
        previous = self.sessions.get(session.charge_box_id)
        self.sessions[session.charge_box_id] = session
        return previous

    def unregister(self, session) -> None:
        if self.sessions.get(session.charge_box_id) is session:
            del self.sessions[session.charge_box_id]

    # --- flushing --------------------------------------------------------------------------

    def ensure_started(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flush_lock = asyncio.Lock()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever(), name="gateway-flusher")

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(min(settings.LINKRAY_JOURNAL_FLUSH_INTERVAL_S, settings.LINKRAY_STATE_FLUSH_INTERVAL_S))
            try:
                await self.flush()
            except Exception:
                # The database may be briefly locked or gone; the buffers keep their bound and
                # the next round tries again.
                logger.exception("gateway_flush_failed")

    async def flush(self) -> None:
        """Write the journal buffer, changed charger states and their effects."""
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:
            entries = self.journal.take()
            dirty, self._dirty = self._dirty, {}
            effects, self._effects = self._effects, []
            written_authorizations, self._recent_authorizations = self._recent_authorizations, {}
            states = [session.state for session in dirty.values()]
            if self.journal.dropped != self._reported_drops:
                logger.warning("journal_entries_dropped total=%d", self.journal.dropped)
                self._reported_drops = self.journal.dropped
            if entries:
                await database_sync_to_async(write_journal_entries)(entries)
            if states or effects:
                try:
                    await database_sync_to_async(services.save_charger_states)(states, effects)
                except Exception:
                    # Keep answering from memory until a later flush succeeds.
                    self._recent_authorizations = {**written_authorizations, **self._recent_authorizations}
                    self._effects = effects + self._effects
                    raise

    async def shutdown(self, *, code: int = 1001, wait_s: float = 3.0) -> None:
        """Stop serving: close every charger and CSMS leg with `code` (1001 "going away", so
        chargers reconnect at once to the next LinkRay), wait a bounded time for the close
        handshakes, then write what is buffered."""
        if self._flusher is not None:
            self._flusher.cancel()
        sessions = list(self.sessions.values())
        chargers = sum(1 for session in sessions if not session.headless)
        csms_legs = sum(1 for session in sessions if session.upstream is not None and session.upstream.connected)
        logger.info("shutdown_started chargers=%d csms_legs=%d code=%d", chargers, csms_legs, code)

        async def close_one(session) -> None:
            try:
                await session.close(code)
                if not session.headless:
                    await session.close_charger_leg(code)
            except Exception:
                logger.exception("session_close_failed charge_box_id=%s", session.charge_box_id)

        await asyncio.gather(*(close_one(session) for session in sessions))
        # The consumers unregister once their charger has answered the close frame.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while any(not session.headless for session in self.sessions.values()) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        left = sum(1 for session in self.sessions.values() if not session.headless)
        logger.info(
            "shutdown_closed chargers=%d csms_legs=%d code=%d chargers_without_close_answer=%d",
            chargers,
            csms_legs,
            code,
            left,
        )
        await self.flush()


runtime = GatewayRuntime()


async def run_journal_pruning() -> None:
    """Embedded default: prune the journal hourly (Celery beat does it in scale-out)."""
    while True:
        try:
            await database_sync_to_async(prune_journal)(
                datetime.now(UTC), settings.LINKRAY_JOURNAL_RETENTION_DAYS, settings.LINKRAY_JOURNAL_MAX_ROWS
            )
        except Exception:
            logger.exception("journal_prune_failed")
        await asyncio.sleep(3600)

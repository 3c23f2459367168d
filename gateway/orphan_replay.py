"""Orphan replay: hand the CSMS the queued messages of a charger that does not come back.

Normally a charger's backlog is replayed on its own CSMS leg when it reconnects. A charger that
stays away (broken by the same power cut, unplugged, replaced) would keep its billing messages
forever; after LINKRAY_ORPHAN_REPLAY_AFTER_S, LinkRay opens the CSMS leg itself, with the
charger's last Authorization header, replays the queue, and closes the leg again. A real
connection of the charger takes over at once (it replaces the headless session).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache

from gateway import offline_store
from gateway.consumers import session_config, upstream_config
from gateway.offline_runtime import attach_offline
from gateway.runtime import runtime
from gateway.session import ChargerSession
from gateway.state import ChargerState
from gateway.upstream import UpstreamLink, charger_url, escape_charge_box_id

logger = logging.getLogger(__name__)

_LEASE_S = 600


class _NoCharger:
    """The charger leg of a headless session: CSMS CALLs find nobody and time out."""

    async def send_frame(self, raw) -> None:
        logger.debug("orphan_frame_dropped")

    async def close(self, code: int = 1000) -> None:
        return None


class _EffectsOnly:
    """Hooks of a headless session: what answers teach (the authorization cache) is kept; its
    model is not written over the charger's persisted one."""

    def state_changed(self, session) -> None:
        return None

    def effects(self, session, effects) -> None:
        runtime.effects(session, effects)

    def recent_authorization(self, id_tag):
        return runtime.recent_authorization(id_tag)


def _alive_key(process_id: str) -> str:
    return f"gateway.alive.{process_id}"


async def run_orphan_replay() -> None:
    """Per server process: say this process is alive, and look for orphaned backlogs."""
    interval = settings.LINKRAY_ORPHAN_CHECK_INTERVAL_S
    while True:
        try:
            await cache.aset(_alive_key(runtime.process_id), True, max(3 * interval, 1.0))
            await replay_orphans_once()
        except Exception:
            logger.exception("orphan_replay_check_failed")
        await asyncio.sleep(interval)


async def replay_orphans_once() -> None:
    now = datetime.now(UTC)
    orphans = await database_sync_to_async(offline_store.orphaned_backlogs)(
        now - timedelta(seconds=settings.LINKRAY_ORPHAN_REPLAY_AFTER_S)
    )
    for orphan in orphans:
        if orphan.charge_box_id in runtime.sessions:
            continue
        if orphan.served_by and await cache.aget(_alive_key(orphan.served_by)):
            continue  # connected to a live process (this one or another)
        base_url = orphan.upstream_url or settings.LINKRAY_CSMS_URL
        if not base_url:
            continue
        # One process at a time per charger (scale-out): a lease in the shared cache.
        if not await cache.aadd(f"gateway.orphan.{orphan.charge_box_id}", True, _LEASE_S):
            continue
        asyncio.ensure_future(_replay_orphan(orphan, base_url))


async def _replay_orphan(orphan: offline_store.Orphan, base_url: str) -> None:
    cbid = orphan.charge_box_id
    session = ChargerSession(
        cbid, _NoCharger(), journal=runtime.journal, hooks=_EffectsOnly(), config=session_config(), state=ChargerState(cbid)
    )
    session.headless = True
    upstream = UpstreamLink(
        upstream_config(charger_url(base_url, escape_charge_box_id(cbid)), orphan.authorization or None),
        on_frame=session.on_csms_frame,
        on_up=session.csms_up,
        on_down=session.csms_down,
        charge_box_id=cbid,
    )
    session.attach_upstream(upstream)
    try:
        await attach_offline(session)
        if cbid in runtime.sessions:
            return  # the charger came back meanwhile
        try:
            await upstream.connect(start_reading=False)
        except Exception as error:
            logger.info("orphan_replay_unreachable charge_box_id=%s error=%s", cbid, str(error) or type(error).__name__)
            return
        runtime.register(session)
        logger.warning("orphan_replay_started charge_box_id=%s backlog=%d", cbid, session.offline.backlog)
        upstream.start_reading()
        await session.csms_up()
        deadline = asyncio.get_running_loop().time() + _LEASE_S
        while session.offline.backlog and upstream.connected and not session.closed:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        logger.warning(
            "orphan_replay_ended charge_box_id=%s replayed=%d left=%d", cbid, session.offline.replayed, session.offline.backlog
        )
    except Exception:
        logger.exception("orphan_replay_failed charge_box_id=%s", cbid)
    finally:
        runtime.unregister(session)
        await session.close()
        await cache.adelete(f"gateway.orphan.{cbid}")

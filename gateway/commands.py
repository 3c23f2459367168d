"""send_call: the one way LinkRay code sends its own CALL to a charger.

In the process holding the charger's socket this goes straight to its session. From any other
process (a Celery worker, another server process, a management command) it travels through
the channel layer to whichever process holds the charger, which answers on a reply channel.
The CALL obeys the charger's one-outstanding-CALL rule and its answer never reaches the CSMS.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from gateway.events import charger_group
from gateway.models import Charger
from gateway.runtime import runtime
from gateway.session import CallErrorReceived, CallTimedOut, ChargerNotConnected, CommandError

__all__ = [
    "CallErrorReceived",
    "CallTimedOut",
    "ChargerNotConnected",
    "CommandError",
    "send_call",
    "send_call_sync",
]

# Extra time for the hop through the channel layer on top of the CALL's own timeout.
_LAYER_MARGIN_S = 5.0


async def send_call(
    charge_box_id: str, action: str, payload: dict[str, Any], *, timeout_s: float | None = None
) -> dict[str, Any]:
    """Send `action` with `payload` to the charger; return the CALLRESULT payload.

    Raises ChargerNotConnected, CallTimedOut or CallErrorReceived (all CommandError).
    """
    timeout_s = timeout_s or settings.LINKRAY_CALL_TIMEOUT_S
    session = runtime.sessions.get(charge_box_id)
    if session is not None and not session.headless:
        return await session.call(action, payload, timeout_s=timeout_s)
    if settings.LINKRAY_EMBEDDED or session is not None:
        raise ChargerNotConnected(f"{charge_box_id} is not connected")
    connected = await database_sync_to_async(
        Charger.objects.filter(charge_box_id=charge_box_id, charger_connected=True).exists
    )()
    if not connected:
        raise ChargerNotConnected(f"{charge_box_id} is not connected")
    return await _call_through_layer(charge_box_id, action, payload, timeout_s)


async def _call_through_layer(charge_box_id: str, action: str, payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    layer = get_channel_layer()
    # The default prefix, as the charger consumers' channels have: channels-redis serves all
    # of a process's channels of one prefix with one blocking pop, under a lock shared by every
    # prefix; a reply channel of its own prefix waited behind that pop forever once this
    # process also held a charger.
    reply_channel = await layer.new_channel()
    request_id = uuid.uuid4().hex
    await layer.group_send(
        charger_group(charge_box_id),
        {
            "type": "gateway.call",
            "request_id": request_id,
            "reply_channel": reply_channel,
            "action": action,
            "payload": payload,
            "timeout_s": timeout_s,
        },
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s * 2 + _LAYER_MARGIN_S  # it may queue behind one CALL
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise ChargerNotConnected(f"no LinkRay process answered for {charge_box_id}")
        try:
            reply = await asyncio.wait_for(layer.receive(reply_channel), remaining)
        except asyncio.TimeoutError:
            raise ChargerNotConnected(f"no LinkRay process answered for {charge_box_id}") from None
        if reply.get("request_id") != request_id:
            continue
        if reply.get("ok"):
            return reply.get("payload") or {}
        error = reply.get("error")
        if error == "call_error":
            raise CallErrorReceived(reply.get("error_code", "GenericError"), reply.get("description", ""), {})
        if error == "timeout":
            raise CallTimedOut(reply.get("description", ""))
        if error == "not_connected":
            raise ChargerNotConnected(reply.get("description", ""))
        raise CommandError(reply.get("description", "remote call failed"))


def send_call_sync(charge_box_id: str, action: str, payload: dict[str, Any], *, timeout_s: float | None = None) -> dict[str, Any]:
    """For synchronous callers (Celery tasks, management commands)."""
    return async_to_sync(send_call)(charge_box_id, action, payload, timeout_s=timeout_s)

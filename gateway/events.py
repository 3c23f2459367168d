"""Channel-layer messages of the gateway (for other processes reaching a charger)."""

from __future__ import annotations

import hashlib
from typing import Any, TypedDict


class GatewayCall(TypedDict):
    """gateway.call: ask the process holding a charger to send one of LinkRay's CALLs."""

    type: str  # "gateway.call"
    request_id: str
    reply_channel: str
    action: str
    payload: dict[str, Any]
    timeout_s: float


class GatewayCallReply(TypedDict, total=False):
    type: str  # "gateway.call.reply"
    request_id: str
    ok: bool
    payload: dict[str, Any]
    error: str  # "call_error", "timeout", "not_connected"
    error_code: str
    description: str


def charger_group(charge_box_id: str) -> str:
    # Group names allow only ASCII letters, digits, '-', '.', '_' (<100 chars); ids may hold anything.
    return "charger." + hashlib.sha1(charge_box_id.encode("utf-8")).hexdigest()

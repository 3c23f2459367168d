"""The gateway relays OCPP 1.6J both ways, byte for byte, between real peers."""

from __future__ import annotations

import asyncio
import json

import pytest
from ocpp.v16 import call
from tests.peers.charger import ConnectedCharger
from tests.peers.waiting import wait_for


async def test_charger_frames_reach_the_csms_byte_for_byte(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-1") as charger:
        await csms.wait_connected("CP-1")
        # Odd but valid JSON: spacing, key order, escapes and non-ASCII must survive untouched.
        raw = '[2, "id-1",  "BootNotification", {"chargePointVendor":"Ä\\u00e9x", "chargePointModel" : "M 1"}]'
        await charger.send_raw(raw)
        await wait_for(lambda: raw in csms.received["CP-1"], what="boot at the CSMS")
        answer = await wait_for(lambda: [m for m in charger.received if '"id-1"' in m], what="boot answer")
        assert answer[0] == csms.sent["CP-1"][-1]
        assert json.loads(answer[0])[2]["status"] == "Accepted"

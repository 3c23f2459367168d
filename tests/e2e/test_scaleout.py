"""Scale-out: several `manage.py serve` processes on the machine's real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call
from tests.peers.charger import ConnectedCharger
from tests.peers.linkray import api_call
from tests.peers.waiting import wait_for


@pytest.mark.parametrize("stack", ["scaleout"], indirect=True)
async def test_a_charger_on_one_process_is_reached_from_another(stack):
    csms = await stack.start_csms()
    token = "scaleout-test-token"
    first = stack.start_linkray(env={"LINKRAY_API_TOKEN": token}, name="a")
    second = stack.start_linkray(env={"LINKRAY_API_TOKEN": token}, name="b")
    async with ConnectedCharger(first.url, "CP-FAR") as charger:
        await csms.wait_connected("CP-FAR")
        await wait_for(
            lambda: stack.query("SELECT charger_connected FROM gateway_charger WHERE charge_box_id=%s", ("CP-FAR",)) == [(True,)],
            what="charger registered",
        )
        result = await asyncio.to_thread(
            api_call, second.http_url, token, "CP-FAR", "GetConfiguration", {"key": ["ChargeProfileMaxStackLevel"]}
        )
        assert result["payload"]["configurationKey"][0]["value"] == "8"
        assert ("GetConfiguration", {"key": ["ChargeProfileMaxStackLevel"]}) in charger.peer.requests
        # LinkRay's own answer stayed inside LinkRay.
        assert not any("ChargeProfileMaxStackLevel" in raw for raw in csms.received.get("CP-FAR", []))


@pytest.mark.parametrize("stack", ["scaleout"], indirect=True)
async def test_a_newer_connection_on_another_process_closes_the_old_one(stack):
    csms = await stack.start_csms()
    first = stack.start_linkray(name="a")
    second = stack.start_linkray(name="b")
    old = await ConnectedCharger(first.url, "CP-MOVE").connect()
    await csms.wait_connected("CP-MOVE")
    await wait_for(lambda: "charger_connected charge_box_id=CP-MOVE" in first.log(), what="first connection")
    async with ConnectedCharger(second.url, "CP-MOVE") as new:
        await wait_for(lambda: old.websocket.state.name == "CLOSED", what="old socket closed")
        assert old.websocket.close_code == 4000
        await wait_for(lambda: csms.connect_count["CP-MOVE"] == 2 and "CP-MOVE" in csms.connections, what="one CSMS leg")
        assert (await new.call(call.Heartbeat())).current_time

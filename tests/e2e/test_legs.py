"""The two legs: TLS to the CSMS (security profile 2), per-charger upstream URLs, and
websocket compression chosen per leg."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from ocpp.v16 import call
from tests.peers.charger import ConnectedCharger
from tests.peers.csms import CsmsServer, basic_auth
from tests.peers.tls import make_server_tls
from tests.peers.waiting import wait_for


async def test_wss_csms_is_verified_against_the_configured_ca_bundle(stack, tmp_path):
    context, ca_bundle = make_server_tls(tmp_path / "tls")
    csms = await stack.start_csms(ssl_context=context, passwords={"CP-TLS": b"tls-password-16byt"})
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_CA_BUNDLE": str(ca_bundle)})
    header = basic_auth("CP-TLS", b"tls-password-16byt")
    async with ConnectedCharger(linkray.url, "CP-TLS", headers={"Authorization": header}) as charger:
        await csms.wait_connected("CP-TLS")
        assert csms.url.startswith("wss://")
        assert (await charger.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))).status == "Accepted"
        assert "BootNotification" in csms.actions_received("CP-TLS")


async def test_wss_csms_with_an_unknown_certificate_is_not_trusted(stack, tmp_path):
    context, _ = make_server_tls(tmp_path / "tls")
    csms = await stack.start_csms(ssl_context=context)
    linkray = stack.start_linkray()  # system CAs only: the test CA is unknown
    async with ConnectedCharger(linkray.url, "CP-UNTRUSTED") as charger:
        # Served locally, never connected upstream.
        assert (await charger.call(call.Heartbeat())).current_time
        await wait_for(lambda: "csms_unreachable charge_box_id=CP-UNTRUSTED" in linkray.log(), what="TLS failure logged")
        assert "CP-UNTRUSTED" not in csms.connect_count


async def test_a_charger_can_have_its_own_upstream_url(stack):
    site_csms = await stack.start_csms()
    own_csms = await CsmsServer().start()
    try:
        linkray = stack.start_linkray()
        stack.query(
            "INSERT INTO gateway_charger (charge_box_id, upstream_url, upstream_authorization, served_by, balancing_enabled, "
            "vendor, model, serial_number, firmware_version, charger_connected, csms_state, state, created_at) VALUES "
            "(%s, %s, '', '', false, '', '', '', '', false, 'closed', '{}', CURRENT_TIMESTAMP)",
            ("CP-OWN", own_csms.url),
        )
        async with ConnectedCharger(linkray.url, "CP-OWN") as charger, ConnectedCharger(linkray.url, "CP-SITE"):
            await own_csms.wait_connected("CP-OWN")
            await site_csms.wait_connected("CP-SITE")
            await charger.call(call.Heartbeat())
            assert "Heartbeat" in own_csms.actions_received("CP-OWN")
            assert "CP-OWN" not in site_csms.connect_count
    finally:
        await own_csms.stop()


@pytest.mark.parametrize("enabled", [True, False])
async def test_compression_is_negotiated_per_leg_only_when_configured(stack, enabled):
    csms = await stack.start_csms(compression="deflate")
    flag = "yes" if enabled else "no"
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_COMPRESSION": flag, "LINKRAY_CHARGER_COMPRESSION": flag})
    websocket = await websockets.connect(f"{linkray.url}/CP-Z", subprotocols=["ocpp1.6"], compression="deflate")
    try:
        await csms.wait_connected("CP-Z")
        charger_leg = [extension.name for extension in websocket.protocol.extensions]
        expected = ["permessage-deflate"] if enabled else []
        assert charger_leg == expected
        assert csms.extensions["CP-Z"] == expected
        await websocket.send('[2,"z-1","Heartbeat",{}]')
        assert '"z-1"' in await websocket.recv()
    finally:
        await websocket.close()


async def test_a_slow_csms_does_not_keep_the_charger_waiting(stack):
    csms = await stack.start_csms()
    csms.handshake_gate = asyncio.Event()  # the CSMS leg's handshake hangs
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_ADMIT_WAIT_S": "0.3"})
    async with ConnectedCharger(linkray.url, "CP-SLOW") as charger:
        assert "CP-SLOW" not in csms.connections
        assert (await charger.call(call.Heartbeat())).current_time  # served meanwhile
        csms.handshake_gate.set()
        await csms.wait_connected("CP-SLOW")
        await wait_for(lambda: "replay_finished charge_box_id=CP-SLOW" in linkray.log() or "CP-SLOW" in csms.connections, what="leg up")
        await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        await wait_for(lambda: "StatusNotification" in csms.actions_received("CP-SLOW"), what="relayed live")


async def test_a_charger_the_slow_csms_finally_refuses_is_disconnected(stack):
    csms = await stack.start_csms(passwords={"CP-LATE": b"right-password-1234"})
    csms.handshake_gate = asyncio.Event()
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_ADMIT_WAIT_S": "0.3"})
    header = basic_auth("CP-LATE", b"wrong-password-12345")
    async with ConnectedCharger(linkray.url, "CP-LATE", headers={"Authorization": header}) as charger:
        csms.handshake_gate.set()
        await wait_for(lambda: charger.websocket.state.name == "CLOSED", what="charger disconnected")
        assert charger.websocket.close_code == 4003
        assert "charger_refused charge_box_id=CP-LATE reason=csms_refused" in linkray.log()

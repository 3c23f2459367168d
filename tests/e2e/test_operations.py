"""Running LinkRay for real, and what running it between independent OCPP implementations
found: wrong paths, wrong passwords during an outage, SIGTERM, replayed answers."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
import websockets
from ocpp.v16 import call

from tests.e2e.test_offline import csms_outage, now_iso, set_offline_policy
from tests.peers.charger import ConnectedCharger
from tests.peers.csms import basic_auth
from tests.peers.waiting import wait_for


def http_get(url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def handshake_status(url: str) -> int | None:
    """The HTTP status a websocket handshake to `url` is refused with (None if accepted)."""
    try:
        async with websockets.connect(url, subprotocols=["ocpp1.6"], open_timeout=10):
            return None
    except websockets.exceptions.InvalidStatus as error:
        return error.response.status_code


# --- wrong paths -----------------------------------------------------------------------------


async def test_a_wrong_path_gets_404_and_a_charger_refused_line_never_a_traceback(stack):
    await stack.start_csms()
    linkray = stack.start_linkray()
    base = f"ws://127.0.0.1:{linkray.port}"
    for path in ("/CP1", "/ocpp16/CP1", "/ocpp/", "/ocpp/a/b"):
        assert await handshake_status(base + path) == 404, path
        await wait_for(lambda path=path: f"charger_refused reason=wrong_path path={path} " in linkray.log(), what=path)
    assert "Traceback" not in linkray.log()
    # `/ocpp/a/b` was not taken as charger `b` (nor `a/b`).
    assert stack.query("SELECT charge_box_id FROM gateway_charger") == []
    # The escaped form is a charger, and still works.
    assert await handshake_status(base + "/ocpp/a%2Fb") is None


# --- wrong password during an outage -----------------------------------------------------------


async def test_a_wrong_password_from_an_outage_closes_the_charger_when_the_csms_answers_401(stack):
    csms = await stack.start_csms(passwords={"CP-PW": b"right-password-1234"})
    port = csms.port
    await csms.stop()
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{port}"})
    set_offline_policy(stack, "accept_all")
    header = basic_auth("CP-PW", b"wrong-password-12345")
    charger = await ConnectedCharger(linkray.url, "CP-PW", headers={"Authorization": header}).connect()
    try:
        await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        await csms.start(port)
        await wait_for(lambda: charger.websocket.state.name == "CLOSED", 20, "charger closed")
        assert charger.websocket.close_code == 4003
        log = linkray.log()
        assert "charger_refused charge_box_id=CP-PW reason=csms_refused status=401 when=reconnect queued=1" in log
        # It stops trying: no endless csms_reconnect_refused lines.
        assert log.count("csms_reconnect_refused charge_box_id=CP-PW") == 1
        # The queue is kept, and the operator sees why it cannot be delivered.
        assert stack.query("SELECT action FROM gateway_queuedmessage WHERE charge_box_id=%s", ("CP-PW",)) == [
            ("StatusNotification",)
        ]
        await wait_for(lambda: (stack.charger_state("CP-PW") or {}).get("csms_refused") == "HTTP 401", what="reason kept")
        # Coming back with the same password now meets the CSMS's own answer.
        assert await handshake_status_with(linkray.url + "/CP-PW", header) == 401
    finally:
        await charger.close()


async def handshake_status_with(url: str, authorization: str) -> int | None:
    try:
        async with websockets.connect(
            url, subprotocols=["ocpp1.6"], additional_headers={"Authorization": authorization}, open_timeout=10
        ):
            return None
    except websockets.exceptions.InvalidStatus as error:
        return error.response.status_code


# --- SIGTERM ---------------------------------------------------------------------------------


async def test_sigterm_closes_chargers_and_csms_legs_with_going_away_and_says_so(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-TERM1") as first, ConnectedCharger(linkray.url, "CP-TERM2") as second:
        await csms.wait_connected("CP-TERM1")
        await csms.wait_connected("CP-TERM2")
        # In a thread: the chargers (on this loop) answer LinkRay's close frames meanwhile.
        assert await asyncio.to_thread(linkray.stop) == 0
        for charger in (first, second):
            await wait_for(lambda charger=charger: charger.websocket.state.name == "CLOSED", what="charger closed")
            assert charger.websocket.close_code == 1001
        await wait_for(lambda: len(csms.close_codes) == 2, what="CSMS legs closed")
        assert csms.close_codes == {"CP-TERM1": 1001, "CP-TERM2": 1001}
        log = linkray.log()
        assert "shutdown_started chargers=2 csms_legs=2 code=1001" in log
        assert "shutdown_closed chargers=2 csms_legs=2 code=1001 chargers_without_close_answer=0" in log


# --- the live model during an outage ---------------------------------------------------------


async def test_a_charger_first_connecting_during_an_outage_shows_since_when_the_csms_is_down(stack):
    csms = await stack.start_csms()
    port = csms.port
    await csms.stop()
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{port}"})
    async with ConnectedCharger(linkray.url, "CP-NEW"):
        await wait_for(
            lambda: (stack.query("SELECT csms_state FROM gateway_charger WHERE charge_box_id=%s", ("CP-NEW",)) or [(None,)])[0][0]
            == "down",
            what="leg down",
        )
        [(down_since,)] = stack.query("SELECT csms_down_since FROM gateway_charger WHERE charge_box_id=%s", ("CP-NEW",))
        assert down_since is not None
        assert (stack.charger_state("CP-NEW") or {}).get("csms_down_since")


# --- replayed answers ------------------------------------------------------------------------


async def test_a_stop_after_a_rejected_id_tag_on_replay_reaches_the_csms_as_deauthorized(stack):
    csms = await stack.start_csms()
    port = csms.port
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-DEAUTH") as charger:
        await csms.wait_connected("CP-DEAUTH")
        await charger.call(call.Authorize(id_tag="BLOCKED"))
        await csms_outage(csms, linkray, "CP-DEAUTH")
        start = await charger.call(call.StartTransaction(connector_id=1, id_tag="BLOCKED", meter_start=0, timestamp=now_iso()))
        csms.rejected_tags.add("BLOCKED")
        await csms.start(port)
        await wait_for(lambda: charger.peer.remote_stops == [start.transaction_id], 20, "LinkRay stopped it")
        # The charger does what chargers do after a RemoteStopTransaction.
        await charger.call(
            call.StopTransaction(meter_stop=50, timestamp=now_iso(), transaction_id=start.transaction_id, reason="Remote")
        )
        stops = [json.loads(raw)[3] for raw in csms.received["CP-DEAUTH"] if '"StopTransaction"' in raw]
        assert [stop["reason"] for stop in stops] == ["DeAuthorized"]
        assert "stop_reason_rewritten charge_box_id=CP-DEAUTH" in linkray.log()


async def test_the_csms_answer_to_a_replayed_boot_sets_the_chargers_heartbeat_interval(stack):
    csms = await stack.start_csms()
    port = csms.port
    csms.boot_interval_s = 30
    await csms.stop()
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{port}"})
    async with ConnectedCharger(linkray.url, "CP-BOOT") as charger:
        boot = await charger.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        assert boot.interval == 300  # LinkRay's offline answer
        await csms.start(port)
        await wait_for(lambda: ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "30"}) in charger.peer.requests, 20)
        assert charger.peer.configuration["HeartbeatInterval"] == "30"
        # Logged once the charger's answer is back at LinkRay, a moment after the charger sent it.
        await wait_for(
            lambda: "replayed_boot_applied charge_box_id=CP-BOOT status=Accepted heartbeat_interval_s=30" in linkray.log(),
            10,
            "the boot follow-up logged",
        )


async def test_a_pending_answer_to_a_replayed_boot_makes_the_charger_boot_again(stack):
    csms = await stack.start_csms()
    port = csms.port
    csms.boot_status = "Pending"
    csms.boot_interval_s = 1
    await csms.stop()
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{port}"})
    async with ConnectedCharger(linkray.url, "CP-PEND") as charger:
        await charger.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await csms.start(port)
        await wait_for(lambda: ("TriggerMessage", {"requested_message": "BootNotification"}) in charger.peer.requests, 20)
        assert "replayed_boot_not_accepted charge_box_id=CP-PEND status=Pending boot_again_after_s=1" in linkray.log()


async def test_a_replay_that_gets_no_answer_is_counted_on_the_queued_message(stack):
    csms = await stack.start_csms()
    port = csms.port
    await csms.stop()
    # Slow reconnects after the drop, so the counted row can be read before the next replay.
    linkray = stack.start_linkray(
        env={"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{port}", "LINKRAY_CSMS_RECONNECT_MIN_S": "6", "LINKRAY_CSMS_RECONNECT_MAX_S": "6"}
    )
    async with ConnectedCharger(linkray.url, "CP-ATT") as charger:
        await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        assert stack.query("SELECT attempts FROM gateway_queuedmessage WHERE charge_box_id=%s", ("CP-ATT",)) == [(0,)]
        csms.drop_on_call = 1  # receives the replayed message, never answers, drops
        await csms.start(port)
        await wait_for(
            lambda: stack.query("SELECT attempts FROM gateway_queuedmessage WHERE charge_box_id=%s", ("CP-ATT",)) == [(1,)],
            20,
            "attempt counted",
        )
        await wait_for(lambda: csms.actions_received("CP-ATT").count("StatusNotification") == 2, 30, "delivered on retry")
        await wait_for(
            lambda: stack.query("SELECT count(*) FROM gateway_queuedmessage WHERE charge_box_id=%s", ("CP-ATT",)) == [(0,)],
            what="queue empty",
        )


# --- running it for real ---------------------------------------------------------------------


async def test_health_readiness_metrics_and_json_logs_on_a_running_server(stack):
    await stack.start_csms()
    linkray = stack.start_linkray(env={"LINKRAY_LOG_FORMAT": "json"})
    async with ConnectedCharger(linkray.url, "CP-OPS") as charger:
        await charger.call(call.Heartbeat())
        assert http_get(linkray.http_url + "/healthz") == (200, '{"status": "ok"}')
        status, body = http_get(linkray.http_url + "/readyz")
        assert status == 200, body
        assert json.loads(body)["checks"] == {"database": "ok", "channel_layer": "ok", "meter": "not_configured", "csms": "ok"}
        assert http_get(linkray.http_url + "/metrics")[0] == 401
        token = (linkray.data_dir / "api_token").read_text().strip()
        status, text = http_get(linkray.http_url + "/metrics", {"Authorization": f"Bearer {token}"})
        assert status == 200
        assert "linkray_chargers_connected 1.0" in text
        assert 'linkray_frames_relayed_total{action="Heartbeat",direction="charger>csms",message_type="call"} 1.0' in text
        assert 'linkray_csms_legs{state="connected"} 1.0' in text
        assert "linkray_relay_round_trip_seconds_count 1.0" in text
    lines = [line for line in linkray.log().splitlines() if line.startswith("{")]
    gateway_lines = [json.loads(line) for line in lines if json.loads(line)["logger"].startswith("gateway")]
    assert any(line["event"] == "charger_connected" and line["charge_box_id"] == "CP-OPS" for line in gateway_lines)
    assert all("charge_box_id" in line for line in gateway_lines)

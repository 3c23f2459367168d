"""The gateway relays OCPP 1.6J both ways, byte for byte, between real peers (the third-party
`ocpp` package as charger and CSMS), and understands what it relays."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from ocpp.v16 import call
from tests.peers.charger import ConnectedCharger
from tests.peers.csms import basic_auth
from tests.peers.waiting import wait_for


def frames_with_id(frames: list[str], unique_id: str) -> list[str]:
    return [raw for raw in frames if isinstance(raw, str) and f'"{unique_id}"' in raw]


async def test_charger_frames_reach_the_csms_byte_for_byte(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-1") as charger:
        await csms.wait_connected("CP-1")
        # Odd but valid JSON: spacing, key order, escapes and non-ASCII must survive untouched.
        raw = '[2, "id-1",  "BootNotification", {"chargePointVendor":"Ä\\u00e9x", "chargePointModel" : "M 1"}]'
        await charger.send_raw(raw)
        await wait_for(lambda: raw in csms.received["CP-1"], what="boot at the CSMS")
        answer = await wait_for(lambda: frames_with_id(charger.received, "id-1"), what="boot answer")
        assert answer[0] == csms.sent["CP-1"][-1]
        assert json.loads(answer[0])[2]["status"] == "Accepted"


async def test_csms_frames_reach_the_charger_byte_for_byte(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-2") as charger:
        connection = await csms.wait_connected("CP-2")
        raw = '[2,"csms-7" , "TriggerMessage",{ "requestedMessage":"Heartbeat" , "connectorId" : 1}]'
        await connection._connection.send(raw)
        await wait_for(lambda: raw in charger.received, what="trigger at the charger")
        answer = await wait_for(lambda: frames_with_id(csms.received["CP-2"], "csms-7"), what="trigger answer at CSMS")
        assert answer[0] in charger.sent


async def test_typed_calls_both_ways_with_the_ocpp_package(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-3") as charger:
        connection = await csms.wait_connected("CP-3")
        boot = await charger.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="Wallbox"))
        assert boot.status == "Accepted" and boot.interval == 300
        heartbeat = await charger.call(call.Heartbeat())
        assert heartbeat.current_time
        configuration = await connection.call(call.GetConfiguration(key=["ChargeProfileMaxStackLevel"]))
        assert configuration.configuration_key[0]["value"] == "8"


async def test_trailing_slash_and_escaped_ids_keep_their_identity_upstream(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP%20A%2FB/") as charger:
        await wait_for(lambda: "/CP%20A%2FB" in csms.paths, what="escaped path at CSMS")
        await charger.call(call.Heartbeat())
    detail = await wait_for(lambda: stack.query("SELECT charge_box_id FROM gateway_charger"), what="charger row")
    assert ("CP A/B",) in detail


async def test_charger_without_ocpp16_subprotocol_is_refused_with_a_logged_reason(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{linkray.url}/CP-X", subprotocols=["ocpp2.0.1"])
    assert refused.value.response.status_code == 403
    await wait_for(lambda: "no_ocpp1.6_subprotocol" in linkray.log(), what="refusal log line")
    assert "CP-X" not in csms.connect_count


async def test_basic_auth_header_is_passed_through_unchanged(stack):
    csms = await stack.start_csms(passwords={"CP-AUTH": b"s3cret-password-16b"})
    linkray = stack.start_linkray()
    header = basic_auth("CP-AUTH", b"s3cret-password-16b")
    async with ConnectedCharger(linkray.url, "CP-AUTH", headers={"Authorization": header}) as charger:
        await csms.wait_connected("CP-AUTH")
        assert csms.auth_headers["CP-AUTH"] == header
        assert (await charger.call(call.Heartbeat())).current_time


async def test_charger_the_csms_refuses_is_refused_too(stack):
    csms = await stack.start_csms(passwords={"CP-AUTH": b"s3cret-password-16b"})
    linkray = stack.start_linkray()
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(
            f"{linkray.url}/CP-AUTH",
            subprotocols=["ocpp1.6"],
            additional_headers={"Authorization": basic_auth("CP-AUTH", b"wrong-password-xxxx")},
        )
    await wait_for(lambda: "csms_refused" in linkray.log(), what="refusal log line")
    assert csms.auth_headers["CP-AUTH"] == basic_auth("CP-AUTH", b"wrong-password-xxxx")  # it asked the CSMS
    assert "CP-AUTH" not in csms.connections


async def test_linkray_call_waits_for_an_outstanding_csms_call_and_its_answer_stays_local(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-Q") as charger:
        connection = await csms.wait_connected("CP-Q")
        charger.peer.answer_gate = asyncio.Event()  # the charger takes its time answering
        csms_call = asyncio.create_task(connection.call(call.GetConfiguration(key=["ChargingScheduleMaxPeriods"])))
        await wait_for(lambda: any("GetConfiguration" in raw for raw in charger.received), what="CSMS call at charger")
        own_call = asyncio.create_task(
            asyncio.to_thread(stack.manage, "charger_call", "CP-Q", "GetConfiguration", '{"key": ["StopTransactionOnInvalidId"]}', "--server", linkray.http_url)
        )
        await wait_for(lambda: "call_queued charge_box_id=CP-Q origin=linkray" in linkray.log(), 30, "LinkRay call queued")
        charger.peer.answer_gate.set()
        csms_answer = await asyncio.wait_for(csms_call, 20)
        assert csms_answer.configuration_key[0]["key"] == "ChargingScheduleMaxPeriods"
        result = await asyncio.wait_for(own_call, 60)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["configurationKey"][0]["value"] == "true"
        # The charger never had two CALLs outstanding, and LinkRay's answer never reached the CSMS.
        outstanding = 0
        for direction, raw in charger.log:
            message = json.loads(raw)
            if direction == "in" and message[0] == 2:
                outstanding += 1
                assert outstanding == 1, "two CALLs outstanding at the charger"
            elif direction == "out" and message[0] in (3, 4):
                outstanding -= 1
        own_ids = [json.loads(raw)[1] for raw in charger.received if "StopTransactionOnInvalidId" in raw]
        assert own_ids and not any(frames_with_id(csms.received["CP-Q"], own_id) for own_id in own_ids)


async def test_csms_call_waits_for_an_outstanding_linkray_call(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-R") as charger:
        connection = await csms.wait_connected("CP-R")
        charger.peer.answer_gate = asyncio.Event()
        own_call = asyncio.create_task(
            asyncio.to_thread(stack.manage, "charger_call", "CP-R", "TriggerMessage", '{"requestedMessage": "Heartbeat"}', "--server", linkray.http_url)
        )
        await wait_for(lambda: any("TriggerMessage" in raw for raw in charger.received), 30, "LinkRay call at charger")
        csms_call = asyncio.create_task(connection.call(call.GetConfiguration(key=["ChargeProfileMaxStackLevel"])))
        await wait_for(lambda: "call_queued charge_box_id=CP-R origin=csms" in linkray.log(), what="CSMS call queued")
        assert not any("GetConfiguration" in raw for raw in charger.received)
        charger.peer.answer_gate.set()
        assert (await asyncio.wait_for(csms_call, 20)).configuration_key[0]["value"] == "8"
        result = await asyncio.wait_for(own_call, 60)
        assert json.loads(result.stdout)["status"] == "Accepted"


async def test_charger_disconnect_closes_the_csms_leg(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    charger = await ConnectedCharger(linkray.url, "CP-D").connect()
    await csms.wait_connected("CP-D")
    await charger.close()
    await wait_for(lambda: "CP-D" not in csms.connections, what="CSMS leg closed")
    await wait_for(lambda: stack.query("SELECT charger_connected FROM gateway_charger WHERE charge_box_id=%s", ("CP-D",)) == [(False,)] or stack.query("SELECT charger_connected FROM gateway_charger WHERE charge_box_id=%s", ("CP-D",)) == [(0,)], what="charger marked offline")


async def test_csms_leg_reconnects_while_the_charger_stays_connected(stack):
    csms = await stack.start_csms()
    port = csms.port
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-U") as charger:
        await csms.wait_connected("CP-U")
        await csms.stop()
        await wait_for(lambda: "csms_disconnected charge_box_id=CP-U" in linkray.log(), what="LinkRay saw the drop")
        # Served locally meanwhile; the charger's socket never closes.
        assert (await charger.call(call.Heartbeat())).current_time
        await csms.start(port)
        await csms.wait_connected("CP-U", timeout=20)
        assert csms.connect_count["CP-U"] == 2
        await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        await wait_for(lambda: "StatusNotification" in csms.actions_received("CP-U"), what="live relay again")
        assert charger.websocket.state.name == "OPEN"


async def test_malformed_frames_from_one_charger_do_not_disturb_another(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-BAD") as bad, ConnectedCharger(linkray.url, "CP-GOOD") as good:
        await csms.wait_connected("CP-BAD")
        await csms.wait_connected("CP-GOOD")
        garbage = ["not json at all", '[2,"x"]', '[9,"id-9",{}]', '{"a": 1}', "[2, 5, 6, 7]", '[3,"nobody-asked",{}]']
        for raw in garbage:
            await bad.send_raw(raw)
            assert (await good.call(call.Heartbeat())).current_time
        await bad.send_raw(b'[2,"bin-1","Heartbeat",{}]')
        await wait_for(lambda: all(raw in csms.received["CP-BAD"] for raw in garbage), what="garbage relayed as-is")
        # Oversized frames are refused with a CALLERROR and a clear log line.
        await bad.send_raw('[2,"big-1","DataTransfer",{"vendorId":"x","data":"' + "y" * 300_000 + '"}]')
        error = await wait_for(lambda: frames_with_id(bad.received, "big-1"), what="oversize CALLERROR")
        assert json.loads(error[0])[:3] == [4, "big-1", "FormationViolation"]
        assert "reason=oversized" in linkray.log()
        assert not any("big-1" in raw for raw in csms.received["CP-BAD"] if isinstance(raw, str))
        # The misbehaving charger is still connected and served.
        assert (await bad.call(call.Heartbeat())).current_time
        assert (await good.call(call.Heartbeat())).current_time


async def test_live_model_follows_the_relayed_traffic(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-M") as charger:
        await csms.wait_connected("CP-M")
        await charger.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="DC-50", firmware_version="1.2.3"))
        await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        start = await charger.call(call.StartTransaction(connector_id=1, id_tag="TAG", meter_start=100, timestamp="2026-11-25T10:00:00Z"))
        await charger.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=start.transaction_id,
                meter_value=[
                    {
                        "timestamp": "2026-11-25T10:01:00Z",
                        "sampledValue": [
                            {"value": "10.5", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                            {"value": "11", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
                            {"value": "12", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
                            {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"},
                            {"value": "1.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
                        ],
                    }
                ],
            )
        )

        def model():
            state = stack.charger_state("CP-M") or {}
            meter = state.get("connectors", {}).get("1", {}).get("meter", {})
            return state if meter.get("energy_wh") == 1500 else None

        state = await wait_for(model, what="model flushed")
        assert (state["vendor"], state["firmware_version"]) == ("ACME", "1.2.3")
        assert stack.query("SELECT vendor FROM gateway_charger WHERE charge_box_id=%s", ("CP-M",)) == [("ACME",)]
        connector = state["connectors"]["1"]
        assert connector["status"] == "Charging"
        assert connector["meter"]["current_a"] == {"l1": 10.5, "l2": 11.0, "l3": 12.0}
        assert connector["meter"]["power_w"] == 7400
        assert state["transactions"][str(start.transaction_id)]["id_tag"] == "TAG"
        assert state["csms_state"] == "connected"


async def test_every_frame_lands_in_the_journal(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-J") as charger:
        await csms.wait_connected("CP-J")
        await charger.call(call.Heartbeat())
        rows = await wait_for(
            lambda: stack.query("SELECT direction, action, raw FROM gateway_journalentry WHERE charge_box_id=%s ORDER BY id", ("CP-J",)),
            what="journal rows",
        )
        assert rows[0][:2] == ("charger>csms", "Heartbeat")
        assert rows[0][2] == charger.sent[0]
        await wait_for(lambda: len(stack.query("SELECT id FROM gateway_journalentry WHERE charge_box_id=%s", ("CP-J",))) == 2, what="answer journaled")
        assert stack.query("SELECT direction, action FROM gateway_journalentry WHERE charge_box_id=%s ORDER BY id", ("CP-J",))[1] == ("csms>charger", "Heartbeat")


async def test_new_authorization_key_is_used_when_the_csms_leg_reconnects(stack):
    csms = await stack.start_csms(passwords={"CP-KEY": b"old-password-16byte"})
    port = csms.port
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-KEY", headers={"Authorization": basic_auth("CP-KEY", b"old-password-16byte")}) as charger:
        connection = await csms.wait_connected("CP-KEY")
        new_key = b"new-password-20bytes"
        result = await connection.call(call.ChangeConfiguration(key="AuthorizationKey", value=new_key.hex()))
        assert result.status == "Accepted"
        await csms.stop()
        csms.passwords["CP-KEY"] = new_key
        await csms.start(port)
        await csms.wait_connected("CP-KEY", timeout=20)
        assert csms.auth_headers["CP-KEY"] == basic_auth("CP-KEY", new_key)
        assert (await charger.call(call.Heartbeat())).current_time


async def test_site_can_refuse_unknown_charge_box_ids(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-KNOWN"):
        await csms.wait_connected("CP-KNOWN")
    stack.query(
        "INSERT INTO gateway_gatewaysettings (id, accept_unknown_chargers, offline_authorization) VALUES (1, false, 'cache') "
        "ON CONFLICT (id) DO UPDATE SET accept_unknown_chargers = excluded.accept_unknown_chargers"
    )
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(f"{linkray.url}/CP-STRANGER", subprotocols=["ocpp1.6"])
    await wait_for(lambda: "charger_refused charge_box_id=CP-STRANGER reason=unknown" in linkray.log(), what="log line")
    assert "CP-STRANGER" not in csms.connect_count
    async with ConnectedCharger(linkray.url, "CP-KNOWN") as charger:  # known chargers still welcome
        assert (await charger.call(call.Heartbeat())).current_time


async def test_nul_characters_from_a_charger_are_relayed_and_do_not_break_persistence(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-NUL") as charger:
        await csms.wait_connected("CP-NUL")
        raw = '[2,"nul-1","StatusNotification",{"connectorId":1,"errorCode":"OtherError","status":"Faulted","info":"a\\u0000b"}]'
        await charger.send_raw(raw)
        await wait_for(lambda: raw in csms.received["CP-NUL"], what="relayed unchanged")
        invalid = '[2,"nul-2","DataTransfer",{"vendorId":"x\u0000"}]'  # a raw NUL is not valid JSON
        await charger.send_raw(invalid)
        await wait_for(lambda: invalid in csms.received["CP-NUL"], what="relayed unchanged")

        def status():
            state = stack.charger_state("CP-NUL") or {}
            return state.get("connectors", {}).get("1", {}).get("status")

        await wait_for(lambda: status() == "Faulted", what="model persisted")
        await wait_for(lambda: stack.query("SELECT count(*) FROM gateway_journalentry WHERE unique_id=%s", ("nul-1",)) == [(2,)], what="journaled")
        await wait_for(lambda: stack.query("SELECT count(*) FROM gateway_journalentry WHERE raw LIKE %s", ("%nul-2%",)) == [(1,)], what="raw NUL journaled")


async def test_a_charger_reconnecting_replaces_its_old_connection(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    old = await ConnectedCharger(linkray.url, "CP-AGAIN").connect()
    await csms.wait_connected("CP-AGAIN")
    async with ConnectedCharger(linkray.url, "CP-AGAIN") as new:
        await wait_for(lambda: old.websocket.state.name == "CLOSED", what="old socket closed")
        await wait_for(lambda: csms.connect_count["CP-AGAIN"] == 2, what="new CSMS leg")
        assert (await new.call(call.Heartbeat())).current_time
        assert "Heartbeat" in csms.actions_received("CP-AGAIN")


async def test_a_clean_stop_writes_the_journal_and_marks_chargers_offline(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray(env={"LINKRAY_JOURNAL_FLUSH_INTERVAL_S": "60", "LINKRAY_STATE_FLUSH_INTERVAL_S": "60"})
    async with ConnectedCharger(linkray.url, "CP-STOP") as charger:
        await csms.wait_connected("CP-STOP")
        await charger.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="M"))
        assert await asyncio.to_thread(linkray.stop) == 0  # SIGTERM, long before the next flush
    assert stack.query("SELECT count(*) FROM gateway_journalentry WHERE charge_box_id=%s", ("CP-STOP",)) == [(2,)]
    rows = stack.query("SELECT vendor, charger_connected FROM gateway_charger WHERE charge_box_id=%s", ("CP-STOP",))
    assert rows[0][0] == "ACME" and not rows[0][1]

"""Back-office outage: chargers keep working, the CSMS gets every billing message later,
complete, in order, once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from ocpp.v16 import call
from tests.peers.charger import ConnectedCharger
from tests.peers.csms import basic_auth
from tests.peers.waiting import wait_for


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def calls_of(raw_frames: list[str]) -> list[tuple[str, dict]]:
    result = []
    for raw in raw_frames:
        message = json.loads(raw)
        if message[0] == 2:
            result.append((message[2], message[3]))
    return result


def meter_values(connector_id: int, transaction_id: int, energy_wh: int) -> call.MeterValues:
    return call.MeterValues(
        connector_id=connector_id,
        transaction_id=transaction_id,
        meter_value=[
            {
                "timestamp": now_iso(),
                "sampledValue": [
                    {"value": str(energy_wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                    {"value": "15.5", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                ],
            }
        ],
    )


async def test_whole_transaction_during_outage_reaches_csms_in_order_with_one_transaction_id(stack):
    csms = await stack.start_csms()
    port = csms.port
    await csms.stop()  # the CSMS is down before the charger boots
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{port}"})
    async with ConnectedCharger(linkray.url, "CP-OFF") as charger:
        boot = await charger.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        assert boot.status == "Accepted"
        await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
        start = await charger.call(
            call.StartTransaction(connector_id=1, id_tag="TAG1", meter_start=1000, timestamp=now_iso())
        )
        local_id = start.transaction_id
        assert local_id >= 2_000_000_000
        for energy in (1500, 2000):
            await charger.call(meter_values(1, local_id, energy))
        await charger.call(call.StopTransaction(meter_stop=2500, timestamp=now_iso(), transaction_id=local_id))

        await csms.start(port)
        await wait_for(lambda: "replay_finished charge_box_id=CP-OFF" in linkray.log(), 20, "replay finished")
        received = calls_of(csms.received["CP-OFF"])
        assert [action for action, _ in received] == [
            "BootNotification",
            "StatusNotification",
            "StartTransaction",
            "MeterValues",
            "MeterValues",
            "StopTransaction",
        ]
        csms_id = transaction_ids_sent_by_csms(csms, "CP-OFF")[0]
        assert all(payload["transactionId"] == csms_id for action, payload in received if action in ("MeterValues", "StopTransaction"))
        # Live again: a new transaction goes straight through with the CSMS's id.
        start2 = await charger.call(call.StartTransaction(connector_id=1, id_tag="TAG1", meter_start=2500, timestamp=now_iso()))
        assert start2.transaction_id < 2_000_000_000


async def csms_outage(csms, linkray, charge_box_id: str) -> None:
    """The CSMS goes away; returns once LinkRay has seen this charger's leg drop."""
    await csms.stop()
    await wait_for(lambda: f"csms_disconnected charge_box_id={charge_box_id}" in linkray.log(), what="outage seen")


def set_offline_policy(stack, policy: str) -> None:
    stack.query(
        "INSERT INTO gateway_gatewaysettings (id, accept_unknown_chargers, offline_authorization) VALUES (1, true, %s) "
        "ON CONFLICT (id) DO UPDATE SET offline_authorization = excluded.offline_authorization",
        (policy,),
    )


def transaction_ids_sent_by_csms(csms, charge_box_id: str) -> list[int]:
    ids = []
    for raw in csms.sent.get(charge_box_id, []):
        message = json.loads(raw)
        if message[0] == 3 and "transactionId" in message[2]:
            ids.append(message[2]["transactionId"])
    return ids


async def test_csms_answers_nothing_while_down_but_every_charger_call_is_answered(stack):
    csms = await stack.start_csms()
    port = csms.port
    await csms.stop()
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{port}", "LINKRAY_OFFLINE_HEARTBEAT_INTERVAL_S": "120"})
    set_offline_policy(stack, "accept_all")
    async with ConnectedCharger(linkray.url, "CP-ANS") as charger:
        boot = await charger.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        assert (boot.status, boot.interval) == ("Accepted", 120) and boot.current_time
        assert (await charger.call(call.Heartbeat())).current_time
        await charger.call(call.StatusNotification(connector_id=0, error_code="NoError", status="Available"))
        await charger.call(meter_values(1, 0, 10))
        await charger.call(call.DiagnosticsStatusNotification(status="Idle"))
        await charger.call(call.FirmwareStatusNotification(status="Idle"))
        assert (await charger.call(call.DataTransfer(vendor_id="acme", data="x"))).status == "Accepted"
        assert (await charger.call(call.Authorize(id_tag="ANY"))).id_tag_info["status"] == "Accepted"
        # Kept for the CSMS, in order: all but Heartbeat and Authorize.
        rows = stack.query("SELECT action FROM gateway_queuedmessage WHERE charge_box_id=%s ORDER BY id", ("CP-ANS",))
        assert [row[0] for row in rows] == [
            "BootNotification",
            "StatusNotification",
            "MeterValues",
            "DiagnosticsStatusNotification",
            "FirmwareStatusNotification",
            "DataTransfer",
        ]


async def test_offline_authorization_follows_the_cache_and_the_csms_expiry_dates(stack):
    csms = await stack.start_csms()
    csms.expiry["OLD"] = "2020-01-01T00:00:00Z"
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-AUTHZ") as charger:
        await csms.wait_connected("CP-AUTHZ")
        for tag in ("KNOWN", "OLD"):
            await charger.call(call.Authorize(id_tag=tag))
        await wait_for(lambda: len(stack.query("SELECT id_tag FROM gateway_authorizationcacheentry")) == 2, what="cache learned")
        await csms_outage(csms, linkray, "CP-AUTHZ")
        assert (await charger.call(call.Authorize(id_tag="KNOWN"))).id_tag_info["status"] == "Accepted"
        assert (await charger.call(call.Authorize(id_tag="OLD"))).id_tag_info["status"] == "Expired"
        assert (await charger.call(call.Authorize(id_tag="STRANGER"))).id_tag_info["status"] == "Invalid"
        start = await charger.call(call.StartTransaction(connector_id=1, id_tag="STRANGER", meter_start=0, timestamp=now_iso()))
        assert start.id_tag_info["status"] == "Invalid"
        set_offline_policy(stack, "reject")
        assert (await charger.call(call.Authorize(id_tag="KNOWN"))).id_tag_info["status"] == "Invalid"


async def test_meter_values_during_an_outage_reach_the_csms_with_original_timestamps(stack):
    """OCA TC_036: connection loss during a transaction."""
    csms = await stack.start_csms()
    port = csms.port
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-36") as charger:
        await csms.wait_connected("CP-36")
        start = await charger.call(call.StartTransaction(connector_id=1, id_tag="T", meter_start=0, timestamp=now_iso()))
        await csms_outage(csms, linkray, "CP-36")
        sent = []
        for energy in (100, 200, 300):
            request = meter_values(1, start.transaction_id, energy)
            sent.append(request.meter_value[0]["timestamp"])
            await charger.call(request)
        await csms.start(port)
        await wait_for(lambda: csms.actions_received("CP-36").count("MeterValues") == 3, 20, "meter values replayed")
        replayed = [payload for action, payload in calls_of(csms.received["CP-36"]) if action == "MeterValues"]
        assert [p["meterValue"][0]["timestamp"] for p in replayed] == sent
        assert all(p["transactionId"] == start.transaction_id for p in replayed)


async def test_offline_start_gets_the_csms_id_in_every_later_message_both_ways(stack):
    """OCA TC_037: start transaction while offline."""
    csms = await stack.start_csms()
    port = csms.port
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-37") as charger:
        connection = await csms.wait_connected("CP-37")
        await charger.call(call.Authorize(id_tag="T37"))
        await csms_outage(csms, linkray, "CP-37")
        start = await charger.call(call.StartTransaction(connector_id=1, id_tag="T37", meter_start=0, timestamp=now_iso()))
        assert start.id_tag_info["status"] == "Accepted"  # from the cache
        local_id = start.transaction_id
        await csms.start(port)
        connection = await csms.wait_connected("CP-37", 20)
        csms_id = (await wait_for(lambda: transaction_ids_sent_by_csms(csms, "CP-37"), 20, "start replayed and answered"))[-1]
        await wait_for(lambda: "replay_finished charge_box_id=CP-37" in linkray.log(), 20, "replay finished")
        # Live messages of the offline transaction carry the CSMS's id upstream...
        await charger.call(meter_values(1, local_id, 500))
        await wait_for(lambda: "MeterValues" in csms.actions_received("CP-37"), what="live meter values")
        live = [p for a, p in calls_of(csms.received["CP-37"]) if a == "MeterValues"][-1]
        assert live["transactionId"] == csms_id
        # ...and the CSMS's id becomes the charger's local id downstream.
        await connection.call(
            call.SetChargingProfile(
                connector_id=1,
                cs_charging_profiles={
                    "chargingProfileId": 5,
                    "transactionId": csms_id,
                    "stackLevel": 1,
                    "chargingProfilePurpose": "TxProfile",
                    "chargingProfileKind": "Relative",
                    "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}]},
                },
            )
        )
        assert charger.peer.profiles[-1]["transaction_id"] == local_id
        await connection.call(call.RemoteStopTransaction(transaction_id=csms_id))
        assert charger.peer.remote_stops == [local_id]
        await charger.call(call.StopTransaction(meter_stop=600, timestamp=now_iso(), transaction_id=local_id))
        await wait_for(lambda: "StopTransaction" in csms.actions_received("CP-37"), what="stop relayed")
        stop = [p for a, p in calls_of(csms.received["CP-37"]) if a == "StopTransaction"][-1]
        assert stop["transactionId"] == csms_id


async def test_stop_while_offline_reaches_the_csms_once(stack):
    """OCA TC_038: stop transaction while offline."""
    csms = await stack.start_csms()
    port = csms.port
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-38") as charger:
        await csms.wait_connected("CP-38")
        start = await charger.call(call.StartTransaction(connector_id=1, id_tag="T", meter_start=0, timestamp=now_iso()))
        await csms_outage(csms, linkray, "CP-38")
        stopped = now_iso()
        await charger.call(call.StopTransaction(meter_stop=900, timestamp=stopped, transaction_id=start.transaction_id, reason="Local"))
        await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Finishing"))
        await csms.start(port)
        await wait_for(lambda: "replay_finished charge_box_id=CP-38" in linkray.log(), 20, "replay finished")
        actions = csms.actions_received("CP-38")
        assert actions == ["StartTransaction", "StopTransaction", "StatusNotification"]
        stop = [p for a, p in calls_of(csms.received["CP-38"]) if a == "StopTransaction"][0]
        assert (stop["transactionId"], stop["meterStop"], stop["timestamp"]) == (start.transaction_id, 900, stopped)


async def test_rejected_id_tag_on_replay_stops_the_transaction_as_the_charger_would_have(stack):
    """OCA TC_037/TC_039 variant: the CSMS rejects the idTag of an offline start."""
    csms = await stack.start_csms()
    port = csms.port
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-INV") as charger:
        await csms.wait_connected("CP-INV")
        await charger.call(call.Authorize(id_tag="BLOCKED-SOON"))
        await csms_outage(csms, linkray, "CP-INV")
        start = await charger.call(call.StartTransaction(connector_id=1, id_tag="BLOCKED-SOON", meter_start=0, timestamp=now_iso()))
        assert start.id_tag_info["status"] == "Accepted"
        csms.rejected_tags.add("BLOCKED-SOON")  # blocked in the back office during the outage
        await csms.start(port)
        await wait_for(lambda: charger.peer.remote_stops == [start.transaction_id], 20, "transaction stopped")
        assert ("GetConfiguration", {"key": ["StopTransactionOnInvalidId"]}) in charger.peer.requests
        assert "offline_transaction_rejected charge_box_id=CP-INV" in linkray.log()
        # The charger's own answer and LinkRay's CALLs never reach the CSMS.
        assert "RemoteStopTransaction" not in "".join(csms.received["CP-INV"])


async def test_rejected_id_tag_without_stop_on_invalid_id_only_stops_the_energy(stack):
    csms = await stack.start_csms()
    port = csms.port
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-INV2") as charger:
        charger.peer.configuration["StopTransactionOnInvalidId"] = "false"
        await csms.wait_connected("CP-INV2")
        await charger.call(call.Authorize(id_tag="TAG-B"))
        await csms_outage(csms, linkray, "CP-INV2")
        start = await charger.call(call.StartTransaction(connector_id=1, id_tag="TAG-B", meter_start=0, timestamp=now_iso()))
        csms.rejected_tags.add("TAG-B")
        await csms.start(port)
        await wait_for(lambda: charger.peer.profiles, 20, "0 A profile")
        profile = charger.peer.profiles[-1]
        assert profile["transaction_id"] == start.transaction_id
        assert profile["charging_schedule"]["charging_schedule_period"][0]["limit"] == 0
        assert charger.peer.remote_stops == []


async def test_sigkill_in_the_middle_of_an_outage_loses_nothing(stack):
    csms = await stack.start_csms()
    port = csms.port
    await csms.stop()
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{port}"})
    set_offline_policy(stack, "accept_all")
    charger = await ConnectedCharger(linkray.url, "CP-KILL").connect()
    start = await charger.call(call.StartTransaction(connector_id=1, id_tag="T", meter_start=0, timestamp=now_iso()))
    await charger.call(meter_values(1, start.transaction_id, 100))
    linkray.kill()  # power cut: no shutdown hooks run
    await charger.close()
    linkray.start()
    charger = await ConnectedCharger(linkray.url, "CP-KILL").connect()
    try:
        await charger.call(meter_values(1, start.transaction_id, 200))
        await charger.call(call.StopTransaction(meter_stop=300, timestamp=now_iso(), transaction_id=start.transaction_id))
        await csms.start(port)
        await wait_for(lambda: "StopTransaction" in csms.actions_received("CP-KILL"), 20, "replayed stop")
        received = calls_of(csms.received["CP-KILL"])
        assert [a for a, _ in received] == ["StartTransaction", "MeterValues", "MeterValues", "StopTransaction"]
        csms_id = transaction_ids_sent_by_csms(csms, "CP-KILL")[0]
        assert [p["transactionId"] for a, p in received[1:]] == [csms_id] * 3
        energies = [p["meterValue"][0]["sampledValue"][0]["value"] for a, p in received if a == "MeterValues"]
        assert energies == ["100", "200"]
    finally:
        await charger.close()


async def _queue_messages(charger, count: int) -> list[str]:
    timestamps = []
    for index in range(count):
        request = call.StatusNotification(
            connector_id=1, error_code="NoError", status="Available", info=f"message-{index}", timestamp=now_iso()
        )
        await charger.call(request)
        timestamps.append(f"message-{index}")
    return timestamps


async def test_csms_dropping_during_replay_resumes_without_duplicates(stack):
    csms = await stack.start_csms()
    port = csms.port
    await csms.stop()
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{port}"})
    async with ConnectedCharger(linkray.url, "CP-DROP") as charger:
        expected = await _queue_messages(charger, 8)
        csms.drop_after_answer = 3  # answers the third replayed message, then drops
        await csms.start(port)
        await wait_for(lambda: "replay_finished charge_box_id=CP-DROP" in linkray.log(), 30, "replay finished")
        infos = [p["info"] for a, p in calls_of(csms.received["CP-DROP"]) if a == "StatusNotification"]
        assert infos == expected
        assert csms.connect_count["CP-DROP"] == 2


async def test_message_whose_answer_was_lost_is_resent_once(stack):
    csms = await stack.start_csms()
    port = csms.port
    await csms.stop()
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{port}"})
    async with ConnectedCharger(linkray.url, "CP-LOST") as charger:
        expected = await _queue_messages(charger, 5)
        csms.drop_on_call = 3  # the third message arrives, its answer never leaves
        await csms.start(port)
        await wait_for(lambda: "replay_finished charge_box_id=CP-LOST" in linkray.log(), 30, "replay finished")
        infos = [p["info"] for a, p in calls_of(csms.received["CP-LOST"]) if a == "StatusNotification"]
        assert infos == expected[:3] + expected[2:]


async def test_live_charger_calls_during_replay_queue_behind_it(stack):
    csms = await stack.start_csms()
    port = csms.port
    await csms.stop()
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{port}"})
    async with ConnectedCharger(linkray.url, "CP-ORDER") as charger:
        expected = await _queue_messages(charger, 3)
        csms.answer_gate = asyncio.Event()  # the CSMS is slow to answer the first replayed message
        await csms.start(port)
        await wait_for(lambda: len(csms.received.get("CP-ORDER", [])) >= 1, 20, "replay started")
        await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging", info="live"))
        csms.answer_gate.set()
        await wait_for(lambda: "replay_finished charge_box_id=CP-ORDER" in linkray.log(), 30, "replay finished")
        infos = [p.get("info") for a, p in calls_of(csms.received["CP-ORDER"]) if a == "StatusNotification"]
        assert infos == expected + ["live"]


async def test_without_a_csms_linkray_serves_chargers_alone(stack):
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_URL": ""})
    set_offline_policy(stack, "accept_all")
    async with ConnectedCharger(linkray.url, "CP-ALONE") as charger:
        assert (await charger.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))).status == "Accepted"
        start = await charger.call(call.StartTransaction(connector_id=1, id_tag="T", meter_start=0, timestamp=now_iso()))
        assert start.id_tag_info["status"] == "Accepted"
        assert stack.query("SELECT count(*) FROM gateway_queuedmessage") == [(0,)]


async def test_a_charger_that_never_comes_back_still_gets_its_messages_to_the_csms(stack):
    csms = await stack.start_csms()
    port = csms.port
    await csms.stop()
    env = {"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{port}", "LINKRAY_ORPHAN_REPLAY_AFTER_S": "0.5", "LINKRAY_ORPHAN_CHECK_INTERVAL_S": "0.2"}
    linkray = stack.start_linkray(env=env)
    set_offline_policy(stack, "accept_all")
    header = basic_auth("CP-GONE", b"gone-password-16byte")
    charger = await ConnectedCharger(linkray.url, "CP-GONE", headers={"Authorization": header}).connect()
    start = await charger.call(call.StartTransaction(connector_id=1, id_tag="T", meter_start=0, timestamp=now_iso()))
    await charger.call(call.StopTransaction(meter_stop=50, timestamp=now_iso(), transaction_id=start.transaction_id))
    linkray.kill()  # the power cut takes the charger with it: it never reconnects
    await charger.close()
    linkray.start()
    await csms.start(port)
    await wait_for(lambda: "StopTransaction" in csms.actions_received("CP-GONE"), 30, "orphan replay")
    assert csms.actions_received("CP-GONE") == ["StartTransaction", "StopTransaction"]
    assert csms.auth_headers["CP-GONE"] == header
    await wait_for(lambda: "CP-GONE" not in csms.connections, what="leg closed after the replay")
    assert stack.query("SELECT count(*) FROM gateway_queuedmessage") == [(0,)]


async def test_a_malformed_call_while_the_csms_is_away_gets_a_callerror(stack):
    csms = await stack.start_csms()
    port = csms.port
    await csms.stop()
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{port}"})
    async with ConnectedCharger(linkray.url, "CP-MAL") as charger:
        await charger.send_raw('[2,"mal-1","MeterValues",{"connectorId":1,"meterValue":[}]')
        error = await wait_for(lambda: [raw for raw in charger.received if '"mal-1"' in raw], what="CALLERROR")
        assert json.loads(error[0])[:3] == [4, "mal-1", "FormationViolation"]
        assert (await charger.call(call.Heartbeat())).current_time

"""Back-office outage: chargers keep working, the CSMS gets every billing message later,
complete, in order, once."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ocpp.v16 import call
from tests.peers.charger import ConnectedCharger
from tests.peers.csms import CsmsServer
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
        await wait_for(lambda: "StopTransaction" in csms.actions_received("CP-OFF"), 20, "replayed stop")
        received = calls_of(csms.received["CP-OFF"])
        assert [action for action, _ in received] == [
            "BootNotification",
            "StatusNotification",
            "StartTransaction",
            "MeterValues",
            "MeterValues",
            "StopTransaction",
        ]
        csms_id = json.loads(
            next(raw for raw in csms.sent["CP-OFF"] if '"transactionId"' in raw)
        )[2]["transactionId"]
        assert all(payload["transactionId"] == csms_id for action, payload in received if action in ("MeterValues", "StopTransaction"))
        # Live again: a new transaction goes straight through with the CSMS's id.
        start2 = await charger.call(call.StartTransaction(connector_id=1, id_tag="TAG1", meter_start=2500, timestamp=now_iso()))
        assert start2.transaction_id < 2_000_000_000

"""The smart-charging cases of the OCA OCPP 1.6 compliance test cases (central
SetChargingProfile of each purpose, stack levels, GetCompositeSchedule, ClearChargingProfile)
pass through LinkRay untouched, and LinkRay's model learns the profiles the CSMS installed."""

from __future__ import annotations

from ocpp.v16 import call
from tests.peers.charger import ConnectedCharger
from tests.peers.waiting import wait_for

SCHEDULE_A = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}, {"startPeriod": 3600, "limit": 8.5, "numberPhases": 1}]}
SCHEDULE_W = {"chargingRateUnit": "W", "duration": 7200, "startSchedule": "2026-11-25T00:00:00Z", "minChargingRate": 1400.0, "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}]}


def csms_profiles(stack, charge_box_id):
    state = stack.charger_state(charge_box_id)
    if state is None:
        return None
    return sorted((p["connector_id"], p["charging_profile_id"], p["stack_level"], p["purpose"]) for p in state.get("csms_profiles", []))


async def test_central_smart_charging_cases_pass_through_untouched(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray()
    async with ConnectedCharger(linkray.url, "CP-SC") as charger:
        connection = await csms.wait_connected("CP-SC")
        start = await charger.call(call.StartTransaction(connector_id=1, id_tag="T", meter_start=0, timestamp="2026-11-25T10:00:00Z"))
        requests = [
            # TC_056-like: TxDefaultProfile on the whole charger and on one connector.
            call.SetChargingProfile(connector_id=0, cs_charging_profiles={"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Recurring", "recurrencyKind": "Daily", "chargingSchedule": {**SCHEDULE_A, "startSchedule": "2026-11-25T00:00:00Z"}}),
            call.SetChargingProfile(connector_id=1, cs_charging_profiles={"chargingProfileId": 2, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute", "validFrom": "2026-11-01T00:00:00Z", "validTo": "2027-11-01T00:00:00Z", "chargingSchedule": SCHEDULE_W}),
            # TC_057-like: TxProfile for the running transaction.
            call.SetChargingProfile(connector_id=1, cs_charging_profiles={"chargingProfileId": 3, "transactionId": start.transaction_id, "stackLevel": 2, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative", "chargingSchedule": SCHEDULE_A}),
            # ChargePointMaxProfile on connector 0.
            call.SetChargingProfile(connector_id=0, cs_charging_profiles={"chargingProfileId": 4, "stackLevel": 0, "chargingProfilePurpose": "ChargePointMaxProfile", "chargingProfileKind": "Absolute", "chargingSchedule": {**SCHEDULE_A, "startSchedule": "2026-11-25T00:00:00Z"}}),
            # TC_072-like stacking: a higher stack level of the same purpose beside the first.
            call.SetChargingProfile(connector_id=0, cs_charging_profiles={"chargingProfileId": 5, "stackLevel": 3, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute", "chargingSchedule": {**SCHEDULE_A, "startSchedule": "2026-11-25T00:00:00Z", "duration": 600}}),
        ]
        for request in requests:
            result = await connection.call(request)
            assert result.status == "Accepted"
        await wait_for(lambda: csms_profiles(stack, "CP-SC") and len(csms_profiles(stack, "CP-SC")) == 5, what="profiles in the model")
        # TC_066-like: GetCompositeSchedule.
        composite = await connection.call(call.GetCompositeSchedule(connector_id=1, duration=3600, charging_rate_unit="A"))
        assert composite.status == "Accepted" and composite.charging_schedule["charging_schedule_period"][0]["limit"] == 16.0
        # Replacing by (stackLevel, purpose) on the same connector.
        await connection.call(call.SetChargingProfile(connector_id=0, cs_charging_profiles={"chargingProfileId": 6, "stackLevel": 3, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute", "chargingSchedule": {**SCHEDULE_A, "startSchedule": "2026-11-25T00:00:00Z"}}))
        await wait_for(lambda: (0, 6, 3, "TxDefaultProfile") in (csms_profiles(stack, "CP-SC") or []) and (0, 5, 3, "TxDefaultProfile") not in csms_profiles(stack, "CP-SC"), what="replacement")
        # TC_067-like: ClearChargingProfile by id, then by purpose and stack level.
        assert (await connection.call(call.ClearChargingProfile(id=2))).status == "Accepted"
        assert (await connection.call(call.ClearChargingProfile(connector_id=0, charging_profile_purpose="TxDefaultProfile", stack_level=0))).status == "Accepted"
        await wait_for(lambda: csms_profiles(stack, "CP-SC") == [(0, 4, 0, "ChargePointMaxProfile"), (0, 6, 3, "TxDefaultProfile"), (1, 3, 2, "TxProfile")], what="cleared in model")
        # The TxProfile ends with its transaction.
        await charger.call(call.StopTransaction(meter_stop=10, timestamp="2026-11-25T11:00:00Z", transaction_id=start.transaction_id))
        await wait_for(lambda: (1, 3, 2, "TxProfile") not in (csms_profiles(stack, "CP-SC") or [(1, 3, 2, "TxProfile")]), what="TxProfile dropped")

        # Every CSMS frame reached the charger byte for byte, and every answer came back unchanged.
        csms_calls = [raw for raw in csms.sent["CP-SC"] if raw.startswith("[2")]
        assert csms_calls and all(raw in charger.received for raw in csms_calls)
        charger_answers = [raw for raw in charger.sent if raw.startswith("[3")]
        assert all(raw in csms.received["CP-SC"] for raw in charger_answers)

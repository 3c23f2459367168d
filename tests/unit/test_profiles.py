from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import ocpp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import observe, profiles
from gateway.frames import Call, CallResult
from gateway.state import ChargerState, InstalledProfile

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
SCHEMA = json.loads((Path(ocpp.__file__).parent / "v16" / "schemas" / "SetChargingProfile.json").read_text())


def installed(purpose, limit, *, connector_id=0, stack_level=0, unit="A", kind="Absolute", profile_id=1, **extra):
    schedule = {"chargingRateUnit": unit, "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
    if kind != "Relative":
        schedule["startSchedule"] = "2026-12-01T00:00:00Z"
    schedule.update(extra.pop("schedule", {}))
    profile = {
        "chargingProfileId": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": schedule,
        **extra,
    }
    return InstalledProfile(connector_id, profile_id, stack_level, purpose, extra.get("transactionId"), profile)


def test_the_balancing_profile_is_a_valid_charge_point_max_profile_on_connector_0():
    request = profiles.balancing_profile_request(16.04, "A", stack_level=5, now=NOW)
    jsonschema.validate(request, SCHEMA)
    profile = request["csChargingProfiles"]
    assert request["connectorId"] == 0
    assert profile["chargingProfilePurpose"] == "ChargePointMaxProfile" and profile["stackLevel"] == 5
    assert profiles.is_linkray_profile_id(profile["chargingProfileId"])
    assert profile["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 16}]
    assert profile["chargingSchedule"]["startSchedule"] < NOW.isoformat()


def test_limits_are_rounded_down_to_a_tenth_so_the_charger_never_gets_more():
    request = profiles.balancing_profile_request(7.19, "W", stack_level=1, now=NOW)
    assert request["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 7.1


def test_the_stop_energy_profile_is_a_zero_amp_tx_profile_for_one_transaction():
    request = profiles.stop_energy_request(2, 77)
    jsonschema.validate(request, SCHEMA)
    assert request["csChargingProfiles"]["transactionId"] == 77
    assert request["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 0


def test_the_stack_level_is_the_highest_the_charger_allows_or_a_conservative_default():
    assert profiles.balancing_stack_level(6) == 6
    assert profiles.balancing_stack_level(None) == profiles.DEFAULT_MAX_STACK_LEVEL


def test_the_composite_is_the_minimum_of_charge_point_max_and_tx_default():
    held = [installed("ChargePointMaxProfile", 20), installed("TxDefaultProfile", 8, profile_id=2)]
    assert profiles.composite_limit_a(held, 1, NOW) == 8


def test_a_tx_profile_overrides_tx_default_for_its_transaction_only():
    held = [
        installed("TxDefaultProfile", 8, profile_id=2),
        installed("TxProfile", 12, connector_id=1, profile_id=3, kind="Relative", transactionId=5),
    ]
    assert profiles.composite_limit_a(held, 1, NOW, transaction_id=5) == 12
    assert profiles.composite_limit_a(held, 1, NOW, transaction_id=6) == 8


def test_the_highest_stack_level_in_force_wins_within_a_purpose():
    held = [
        installed("TxDefaultProfile", 8, stack_level=0, profile_id=2),
        installed("TxDefaultProfile", 16, stack_level=2, profile_id=3, schedule={"duration": 3600}),
    ]
    assert profiles.composite_limit_a(held, 1, NOW) == 8  # the level-2 profile ended after an hour
    fresh = [held[0], installed("TxDefaultProfile", 16, stack_level=2, profile_id=3)]
    assert profiles.composite_limit_a(fresh, 1, NOW) == 16


def test_profiles_outside_their_validity_do_not_count():
    later = (NOW + timedelta(hours=1)).isoformat()
    held = [installed("TxDefaultProfile", 8, validFrom=later)]
    assert profiles.composite_limit_a(held, 1, NOW) is None


def test_watt_limits_are_converted_at_the_nominal_voltage():
    held = [installed("ChargePointMaxProfile", 11040, unit="W")]
    assert profiles.composite_limit_a(held, 1, NOW, phase_count=3, voltage_v=230) == pytest.approx(16)


def test_recurring_daily_profiles_follow_the_time_of_day():
    schedule = {
        "startSchedule": "2026-11-01T00:00:00Z",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}, {"startPeriod": 9 * 3600, "limit": 6}],
    }
    held = [installed("TxDefaultProfile", 0, kind="Recurring", recurrencyKind="Daily", schedule=schedule)]
    assert profiles.composite_limit_a(held, 1, NOW) == 6
    assert profiles.composite_limit_a(held, 1, NOW - timedelta(hours=2)) == 10


def test_linkray_s_own_profiles_never_count_as_csms_caps():
    own = installed("ChargePointMaxProfile", 6, profile_id=profiles.BALANCING_PROFILE_ID)
    assert profiles.composite_limit_a([own], 1, NOW) is None


def test_the_charger_cap_sums_busy_connectors_under_charge_point_max():
    held = [installed("TxDefaultProfile", 8), installed("ChargePointMaxProfile", 12, profile_id=9)]
    transactions = {1: (1, NOW), 2: (2, NOW)}
    assert profiles.charger_cap_a(held, transactions, NOW) == 12
    assert profiles.charger_cap_a(held[:1], transactions, NOW) == 16
    assert profiles.charger_cap_a([], transactions, NOW) is None


def test_the_rate_unit_follows_configuration_then_what_the_charger_allows():
    assert profiles.rate_unit_for("ac3", None, None) == "A"
    assert profiles.rate_unit_for("dc", ("A", "W"), None) == "W"
    assert profiles.rate_unit_for("dc", ("A",), None) == "A"
    assert profiles.rate_unit_for("ac1", ("W",), None) == "W"
    assert profiles.rate_unit_for("ac1", ("W",), "A") == "A"
    assert profiles.parse_allowed_rate_units("Current, Power") == ("A", "W")
    assert profiles.parse_allowed_rate_units("nonsense") is None
    assert profiles.parse_max_stack_level("4") == 4 and profiles.parse_max_stack_level("x") is None


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_any_installed_profile_content_gives_a_limit_or_none_never_an_error(content):
    record = InstalledProfile(0, 1, 0, "ChargePointMaxProfile", None, content if isinstance(content, dict) else {"x": content})
    limit = profiles.composite_limit_a([record], 1, NOW)
    assert limit is None or limit >= 0


def test_the_model_records_profiles_linkray_installed_and_what_the_charger_told():
    state = ChargerState("CP-1")
    request = profiles.balancing_profile_request(10, "A", stack_level=3, now=NOW)
    observe.observe_linkray_exchange(
        state, Call("lr-1", "SetChargingProfile", request, ""), CallResult("lr-1", {"status": "Accepted"}, ""), NOW
    )
    answer = {
        "configurationKey": [
            {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "8"},
            {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Current"},
        ]
    }
    observe.observe_linkray_exchange(state, Call("lr-2", "GetConfiguration", {}, ""), CallResult("lr-2", answer, ""), NOW)
    assert [profile.charging_profile_id for profile in state.linkray_profiles] == [profiles.BALANCING_PROFILE_ID]
    assert state.csms_profiles == []
    assert (state.max_stack_level, state.allowed_rate_units) == (8, ("A",))
    again = ChargerState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again.linkray_profiles == state.linkray_profiles
    assert (again.max_stack_level, again.allowed_rate_units) == (8, ("A",))

"""gateway.state: the charger model survives its JSON snapshot, and old or partial snapshots
load with defaults. Pure: no Django, no sockets."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.state import ChargerState, ConnectorState, InstalledProfile, MeterSnapshot, Phases, Transaction

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
maybe_at = st.none() | aware_datetimes
readings = st.none() | st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
words = st.text(max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False) | words,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(words, children, max_size=3),
    max_leaves=8,
)
phases = st.builds(Phases, readings, readings, readings)
meters = st.builds(
    MeterSnapshot,
    current_a=phases,
    voltage_v=phases,
    power_w=readings,
    energy_wh=readings,
    offered_current_a=readings,
    soc_percent=readings,
    measured_at=maybe_at,
)


@st.composite
def connectors(draw) -> dict[int, ConnectorState]:
    ids = draw(st.sets(st.integers(0, 8), max_size=3))
    return {
        connector_id: ConnectorState(
            connector_id=connector_id,
            status=draw(st.sampled_from(["Unknown", "Available", "Charging", "SuspendedEV"])),
            error_code=draw(words),
            info=draw(words),
            vendor_error_code=draw(words),
            status_at=draw(maybe_at),
            meter=draw(meters),
        )
        for connector_id in ids
    }


@st.composite
def transactions(draw) -> dict[int, Transaction]:
    ids = draw(st.sets(st.integers(-5, 10**9), max_size=3))
    return {
        transaction_id: Transaction(
            transaction_id=transaction_id,
            connector_id=draw(st.integers(1, 8)),
            id_tag=draw(words),
            meter_start_wh=draw(st.integers(0, 10**9)),
            started_at=draw(maybe_at),
            csms_transaction_id=draw(st.none() | st.integers(1, 10**9)),
            id_tag_status=draw(st.sampled_from(["Accepted", "Invalid", "Blocked"])),
        )
        for transaction_id in ids
    }


profiles = st.builds(
    InstalledProfile,
    connector_id=st.integers(0, 8),
    charging_profile_id=st.integers(0, 10**6),
    stack_level=st.integers(0, 9),
    purpose=st.sampled_from(["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"]),
    transaction_id=st.none() | st.integers(1, 10**6),
    profile=st.dictionaries(words, json_values, max_size=4),
)

states = st.builds(
    ChargerState,
    charge_box_id=st.text(min_size=1, max_size=20),
    vendor=words,
    model=words,
    serial_number=words,
    firmware_version=words,
    boot=st.dictionaries(words, st.one_of(words, st.integers(-1000, 1000)), max_size=4),
    boot_status=st.sampled_from(["", "Accepted", "Pending", "Rejected"]),
    heartbeat_interval_s=st.none() | st.integers(0, 86400),
    last_boot_at=maybe_at,
    last_seen_at=maybe_at,
    charger_connected=st.booleans(),
    csms_state=st.sampled_from(["down", "up", "closed"]),
    csms_down_since=maybe_at,
    connectors=connectors(),
    transactions=transactions(),
    csms_profiles=st.lists(profiles, max_size=3),
)


@given(states)
def test_a_state_survives_its_snapshot(state):
    assert ChargerState.from_dict(state.to_dict()) == state


@given(states)
def test_a_snapshot_survives_a_trip_through_json_text(state):
    snapshot = state.to_dict()
    assert ChargerState.from_dict(json.loads(json.dumps(snapshot, allow_nan=False))) == state


def test_a_snapshot_stores_datetimes_as_iso_text_and_keys_as_strings():
    state = ChargerState("CP-1", last_seen_at=AT)
    state.connector(2).status_at = AT
    snapshot = state.to_dict()
    assert snapshot["last_seen_at"] == "2026-03-01T12:00:00+00:00"
    assert list(snapshot["connectors"]) == ["2"]
    assert snapshot["connectors"]["2"]["status_at"] == "2026-03-01T12:00:00+00:00"


def test_a_snapshot_with_only_the_charge_box_id_loads_with_defaults():
    assert ChargerState.from_dict({"charge_box_id": "CP-1"}) == ChargerState("CP-1")


def test_a_snapshot_with_empty_collections_set_to_null_loads_with_defaults():
    data = {"charge_box_id": "CP-1", "connectors": None, "transactions": None, "csms_profiles": None}
    assert ChargerState.from_dict(data) == ChargerState("CP-1")


def test_a_connector_with_only_its_id_loads_with_defaults():
    state = ChargerState.from_dict({"charge_box_id": "CP-1", "connectors": {"1": {"connector_id": 1}}})
    assert state.connectors == {1: ConnectorState(1)}


def test_a_connector_meter_with_missing_phases_loads_as_unknown_readings():
    data = {
        "charge_box_id": "CP-1",
        "connectors": {"1": {"connector_id": "1", "meter": {"current_a": {"l2": 7.5}, "power_w": 1700.0}}},
    }
    meter = ChargerState.from_dict(data).connectors[1].meter
    assert meter.current_a == Phases(None, 7.5, None)
    assert meter.voltage_v == Phases()
    assert meter.power_w == 1700.0
    assert meter.measured_at is None


def test_a_transaction_with_only_its_ids_loads_with_defaults():
    data = {"charge_box_id": "CP-1", "transactions": {"9": {"transaction_id": 9, "connector_id": 2}}}
    assert ChargerState.from_dict(data).transactions == {
        9: Transaction(transaction_id=9, connector_id=2, id_tag="", meter_start_wh=0, started_at=None)
    }


@pytest.mark.parametrize("value", ["yesterday", "", None, 17])
def test_an_unreadable_stored_datetime_loads_as_none(value):
    assert ChargerState.from_dict({"charge_box_id": "CP-1", "last_seen_at": value}).last_seen_at is None


def test_a_stored_datetime_with_a_z_suffix_loads_as_utc():
    assert ChargerState.from_dict({"charge_box_id": "CP-1", "last_boot_at": "2026-03-01T12:00:00Z"}).last_boot_at == AT


def test_unknown_top_level_keys_are_ignored():
    assert ChargerState.from_dict({"charge_box_id": "CP-1", "from_a_newer_version": 1}) == ChargerState("CP-1")


def test_a_stored_profile_without_a_transaction_id_loads_with_none():
    data = {
        "charge_box_id": "CP-1",
        "csms_profiles": [
            {"connector_id": 1, "charging_profile_id": 4, "stack_level": 0, "purpose": "TxDefaultProfile", "profile": {}}
        ],
    }
    [profile] = ChargerState.from_dict(data).csms_profiles
    assert profile.transaction_id is None


def test_connector_creates_a_connector_once_and_returns_it_after():
    state = ChargerState("CP-1")
    first = state.connector(3)
    first.status = "Charging"
    assert state.connector(3) is first
    assert list(state.connectors) == [3]


def test_phases_read_as_a_tuple_in_line_order():
    assert Phases(1.0, None, 3.0).as_tuple() == (1.0, None, 3.0)

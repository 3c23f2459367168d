"""The simulated charger's own OCPP 1.6 profile stacking (sitesim/profiles.py): what it keeps,
what it clears, and the limit the profiles add up to at a moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitesim.profiles import (
    ACCEPTED,
    CHARGE_POINT_MAX,
    REJECTED,
    TX,
    TX_DEFAULT,
    UNKNOWN,
    Electrics,
    ProfileError,
    ProfileStore,
    parse_profile,
    schedule_profile,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ELECTRICS = Electrics(voltage_v=230, phase_count=3, max_stack_level=8, allowed_rate_units="Current,Power")
TRANSACTION_ID = 42


def profile(connector_id=1, charging_profile_id=1, limit=16.0, **kwargs):
    return parse_profile(connector_id, schedule_profile(charging_profile_id, limit, **kwargs), now=NOW)


def store_with(*profiles, transaction_id=TRANSACTION_ID) -> ProfileStore:
    store = ProfileStore()
    for each in profiles:
        status, reason = store.install(each, ELECTRICS, active_transaction_id=transaction_id)
        assert status == ACCEPTED, reason
    return store


def limit_now(store, connector_id=1, now=NOW, started_at=NOW - timedelta(minutes=5), electrics=ELECTRICS):
    return store.limit_a(connector_id, now, electrics, transaction_started_at=started_at)


# --- stacking within a purpose ---------------------------------------------------------------


def test_no_profile_means_no_limit():
    assert limit_now(ProfileStore()) is None


def test_the_highest_stack_level_wins_within_a_purpose():
    store = store_with(profile(0, 1, 10.0, stack_level=1), profile(0, 2, 20.0, stack_level=3))
    assert limit_now(store) == 20.0


def test_an_expired_higher_profile_hands_back_to_the_lower_one():
    expired = profile(0, 2, 20.0, stack_level=3, valid_to_at=NOW - timedelta(seconds=1))
    store = store_with(profile(0, 1, 10.0, stack_level=1), expired)
    assert limit_now(store) == 10.0


def test_a_profile_valid_only_from_later_is_not_yet_in_force():
    later = profile(0, 2, 20.0, stack_level=3, valid_from_at=NOW + timedelta(hours=1))
    store = store_with(profile(0, 1, 10.0, stack_level=1), later)
    assert limit_now(store) == 10.0
    assert limit_now(store, now=NOW + timedelta(hours=2)) == 20.0


def test_a_higher_profile_past_its_duration_gives_way_to_the_lower_one():
    short = profile(0, 2, 20.0, stack_level=3, start_schedule_at=NOW - timedelta(minutes=10), duration_s=300)
    store = store_with(profile(0, 1, 10.0, stack_level=1), short)
    assert limit_now(store) == 10.0
    assert limit_now(store, now=NOW - timedelta(minutes=8)) == 20.0


# --- combining purposes ------------------------------------------------------------------------


def test_a_tx_profile_replaces_the_tx_default_even_when_higher():
    store = store_with(profile(0, 1, 10.0, purpose=TX_DEFAULT, stack_level=8), profile(1, 2, 20.0, purpose=TX))
    assert limit_now(store) == 20.0


def test_a_tx_profile_counts_only_while_a_transaction_runs():
    store = store_with(profile(0, 1, 10.0, purpose=TX_DEFAULT), profile(1, 2, 20.0, purpose=TX))
    assert limit_now(store, started_at=None) == 10.0


def test_a_connectors_own_tx_default_wins_over_the_charger_wide_one():
    store = store_with(profile(0, 1, 10.0, stack_level=5), profile(1, 2, 20.0, stack_level=1))
    assert limit_now(store) == 20.0
    assert limit_now(store, connector_id=2) == 10.0


def test_the_charge_point_maximum_caps_the_transaction_limit():
    store = store_with(profile(0, 1, 20.0), profile(0, 2, 12.0, purpose=CHARGE_POINT_MAX))
    assert limit_now(store) == 12.0


def test_the_transaction_limit_applies_under_a_looser_charge_point_maximum():
    store = store_with(profile(0, 1, 8.0), profile(0, 2, 32.0, purpose=CHARGE_POINT_MAX))
    assert limit_now(store) == 8.0


def test_a_power_limit_becomes_amperes_at_the_chargers_voltage_and_phase_count():
    store = store_with(profile(0, 1, 11_040.0, rate_unit="W"))
    assert limit_now(store) == pytest.approx(16.0)
    single_phase = Electrics(voltage_v=230, phase_count=1)
    assert limit_now(store, electrics=single_phase) == pytest.approx(48.0)


# --- schedules ---------------------------------------------------------------------------------


def periods_payload(kind, periods, **schedule):
    payload = schedule_profile(1, 0.0, kind=kind)
    payload["charging_schedule"]["charging_schedule_period"] = [{"start_period": s, "limit": limit} for s, limit in periods]
    payload["charging_schedule"].update(schedule)
    if kind == "Recurring":
        payload["recurrency_kind"] = "Daily"
    return payload


def test_a_relative_schedule_counts_from_the_transaction_start():
    relative = parse_profile(1, periods_payload("Relative", [(0, 6.0), (600, 16.0)]), now=NOW)
    store = store_with(relative)
    assert limit_now(store, started_at=NOW - timedelta(minutes=5)) == 6.0
    assert limit_now(store, started_at=NOW - timedelta(minutes=15)) == 16.0
    assert limit_now(store, started_at=None) is None


def test_an_absolute_schedule_follows_its_periods_from_its_start():
    start = NOW - timedelta(hours=1)
    absolute = parse_profile(1, periods_payload("Absolute", [(0, 6.0), (1800, 10.0), (7200, 32.0)], start_schedule=start.isoformat()), now=NOW)
    store = store_with(absolute)
    assert limit_now(store, now=start + timedelta(minutes=10)) == 6.0
    assert limit_now(store) == 10.0
    assert limit_now(store, now=start - timedelta(minutes=1)) is None


def test_a_daily_recurring_schedule_repeats_every_day():
    midnight = datetime(2026, 1, 1, tzinfo=UTC)
    daily = parse_profile(
        0, periods_payload("Recurring", [(0, 10.0), (8 * 3600, 20.0)], start_schedule=midnight.isoformat()), now=NOW
    )
    store = store_with(daily)
    assert limit_now(store, now=datetime(2026, 12, 2, 7, 0, tzinfo=UTC)) == 10.0
    assert limit_now(store, now=datetime(2026, 12, 2, 9, 0, tzinfo=UTC)) == 20.0


# --- installing and clearing -------------------------------------------------------------------


def test_a_profile_with_the_same_id_replaces_the_installed_one():
    store = store_with(profile(0, 7, 10.0, stack_level=1), profile(0, 7, 20.0, stack_level=2))
    assert [p.limit_at(NOW) for p in store.profiles] == [(20.0, "A")]


def test_a_profile_with_the_same_stack_level_and_purpose_replaces_the_installed_one():
    store = store_with(profile(0, 1, 10.0, stack_level=2), profile(0, 2, 20.0, stack_level=2))
    assert [p.charging_profile_id for p in store.profiles] == [2]


def test_the_same_stack_level_and_purpose_on_another_connector_replaces_unless_slots_are_per_connector():
    store = store_with(profile(0, 1, 10.0, stack_level=2), profile(1, 2, 20.0, stack_level=2))
    assert [p.charging_profile_id for p in store.profiles] == [2]
    per_connector = Electrics(slot_per_connector=True)
    store = ProfileStore()
    for each in (profile(0, 1, 10.0, stack_level=2), profile(1, 2, 20.0, stack_level=2)):
        store.install(each, per_connector, active_transaction_id=None)
    assert [p.charging_profile_id for p in store.profiles] == [1, 2]


def test_profiles_of_different_purposes_at_the_same_level_stay_side_by_side():
    store = store_with(profile(0, 1, 10.0, stack_level=2), profile(0, 2, 20.0, stack_level=2, purpose=CHARGE_POINT_MAX))
    assert len(store.profiles) == 2


@pytest.mark.parametrize(
    ("connector_id", "kwargs", "transaction_id", "reason"),
    [
        (1, {"purpose": TX}, None, "without an active transaction"),
        (1, {"purpose": TX, "transaction_id": 7}, TRANSACTION_ID, "not the active"),
        (0, {"purpose": TX}, TRANSACTION_ID, "connector > 0"),
        (1, {"purpose": CHARGE_POINT_MAX}, None, "only on connector 0"),
        (0, {"stack_level": 9}, None, "outside 0..8"),
    ],
)
def test_a_profile_against_the_rules_is_rejected_and_not_stored(connector_id, kwargs, transaction_id, reason):
    store = ProfileStore()
    status, why = store.install(profile(connector_id, 1, 10.0, **kwargs), ELECTRICS, active_transaction_id=transaction_id)
    assert (status, store.profiles) == (REJECTED, [])
    assert reason in why


def test_a_power_profile_is_rejected_by_a_charger_that_takes_only_current():
    store = ProfileStore()
    current_only = Electrics(allowed_rate_units="Current")
    status, _ = store.install(profile(0, 1, 7000.0, rate_unit="W"), current_only, active_transaction_id=None)
    assert status == REJECTED


def test_a_tx_profile_ends_with_its_transaction():
    store = store_with(profile(0, 1, 10.0), profile(1, 2, 20.0, purpose=TX))
    store.end_transaction(1)
    assert [p.purpose for p in store.profiles] == [TX_DEFAULT]


@pytest.fixture
def mixed_store():
    return store_with(
        profile(0, 1, 10.0, stack_level=1),
        profile(1, 2, 12.0, stack_level=2),
        profile(0, 3, 32.0, purpose=CHARGE_POINT_MAX, stack_level=1),
        profile(1, 4, 16.0, purpose=TX, stack_level=1),
    )


@pytest.mark.parametrize(
    ("criteria", "left"),
    [
        ({"charging_profile_id": 3}, [1, 2, 4]),
        ({"charging_profile_id": 3, "connector_id": 1}, [1, 2, 4]),  # the id alone decides
        ({"connector_id": 0}, [2, 4]),
        ({"purpose": TX_DEFAULT}, [3, 4]),
        ({"stack_level": 1}, [2]),
        ({"connector_id": 1, "purpose": TX_DEFAULT}, [1, 3, 4]),
        ({}, []),
    ],
)
def test_clearing_removes_exactly_the_profiles_matching_every_criterion(mixed_store, criteria, left):
    assert mixed_store.clear(**criteria) == ACCEPTED
    assert sorted(p.charging_profile_id for p in mixed_store.profiles) == left


def test_clearing_nothing_that_matches_answers_unknown(mixed_store):
    assert mixed_store.clear(charging_profile_id=99) == UNKNOWN
    assert mixed_store.clear(connector_id=2, purpose=TX) == UNKNOWN
    assert len(mixed_store.profiles) == 4


# --- properties --------------------------------------------------------------------------------

purposes = st.sampled_from([TX_DEFAULT, CHARGE_POINT_MAX, TX])
limits = st.integers(0, 640).map(lambda tenths: tenths / 10)
installs = st.lists(
    st.tuples(st.integers(1, 6), purposes, st.integers(0, 8), limits, st.sampled_from([0, 1])), max_size=12
)


def install_all(sequence):
    store = ProfileStore()
    for profile_id, purpose, stack_level, limit, connector_id in sequence:
        if purpose == CHARGE_POINT_MAX:
            connector_id = 0
        if purpose == TX:
            connector_id = 1
        store.install(
            profile(connector_id, profile_id, limit, purpose=purpose, stack_level=stack_level),
            ELECTRICS,
            active_transaction_id=TRANSACTION_ID,
        )
    return store


@given(installs)
def test_at_most_one_profile_per_id_and_per_stack_level_and_purpose(sequence):
    store = install_all(sequence)
    ids = [p.charging_profile_id for p in store.profiles]
    slots = [(p.stack_level, p.purpose) for p in store.profiles]
    assert len(ids) == len(set(ids))
    assert len(slots) == len(set(slots))


def top(store, purpose, connector_ids):
    candidates = [p for p in store.profiles if p.purpose == purpose and p.connector_id in connector_ids]
    return max(candidates, key=lambda p: p.stack_level).periods[0].limit if candidates else None


@given(installs)
def test_the_composite_is_the_minimum_of_the_transaction_limit_and_the_charge_point_maximum(sequence):
    store = install_all(sequence)
    transaction = top(store, TX, (1,))
    if transaction is None:
        transaction = top(store, TX_DEFAULT, (1,))
    if transaction is None:
        transaction = top(store, TX_DEFAULT, (0,))
    maximum = top(store, CHARGE_POINT_MAX, (0,))
    expected = [limit for limit in (transaction, maximum) if limit is not None]
    assert limit_now(store) == (min(expected) if expected else None)


@given(installs)
def test_the_composite_never_exceeds_any_charge_point_maximum_in_force(sequence):
    store = install_all(sequence)
    maximum = top(store, CHARGE_POINT_MAX, (0,))
    composite = limit_now(store)
    if maximum is not None:
        assert composite <= maximum


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
profile_like = st.fixed_dictionaries(
    {},
    optional={
        "charging_profile_id": json_values,
        "stack_level": json_values,
        "charging_profile_purpose": purposes | json_values,
        "charging_profile_kind": st.sampled_from(["Absolute", "Recurring", "Relative"]) | json_values,
        "recurrency_kind": st.sampled_from(["Daily", "Weekly"]) | json_values,
        "valid_from": json_values,
        "charging_schedule": st.fixed_dictionaries(
            {},
            optional={
                "charging_rate_unit": st.sampled_from(["A", "W"]) | json_values,
                "charging_schedule_period": st.lists(
                    st.fixed_dictionaries(
                        {}, optional={"start_period": json_values, "limit": json_values, "number_phases": json_values}
                    ),
                    max_size=3,
                )
                | json_values,
                "start_schedule": json_values,
                "duration": json_values,
            },
        )
        | json_values,
    },
)


@given(st.integers(-2, 3), profile_like | json_values)
def test_any_payload_parses_or_raises_profile_error(connector_id, payload):
    try:
        parsed = parse_profile(connector_id, payload, now=NOW)
    except ProfileError:
        return
    assert parsed.periods and all(p.limit >= 0 for p in parsed.periods)
    store = ProfileStore()
    store.install(parsed, ELECTRICS, active_transaction_id=TRANSACTION_ID)
    limit_now(store)  # evaluating any accepted profile does not crash


def test_an_installed_profile_is_found_by_its_id_and_a_cleared_one_is_not():
    store = store_with(profile(0, 7, 10.0, stack_level=1, purpose=CHARGE_POINT_MAX), profile(1, 8, 20.0))

    assert store.find(7).periods[0].limit == 10.0
    assert store.find(8).purpose == TX_DEFAULT
    assert store.find(9) is None
    store.clear(charging_profile_id=7)
    assert store.find(7) is None

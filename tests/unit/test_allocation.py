"""balancing.allocation: the site's capacity shared per phase among the controlled chargers.
Pure; hypothesis properties first, then worked examples."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancing.allocation import (
    LEND_HEADROOM_A,
    ChargerInput,
    Reason,
    SiteLimits,
    allocate,
)

V = 230.0
TOLERANCE_A = 1e-6
NOW_S = 10_000.0

wirings = {
    "ac1": st.sampled_from([(0,), (1,), (2,)]),
    "ac3": st.permutations((0, 1, 2)).map(tuple),
    "dc": st.just((0, 1, 2)),
}
maybe_times = st.none() | st.floats(min_value=0, max_value=NOW_S)


@st.composite
def charger_inputs(draw, index):
    kind = draw(st.sampled_from(["ac1", "ac3", "dc"]))
    return ChargerInput(
        charge_box_id=f"CP{index:03d}",
        kind=kind,
        wiring=draw(wirings[kind]),
        min_current_a=draw(st.sampled_from([6.0, 6.0, 8.0, 0.0])),
        max_current_a=draw(st.none() | st.floats(min_value=0, max_value=63)) if kind != "dc" else None,
        max_power_w=draw(st.none() | st.floats(min_value=0, max_value=150_000)) if kind == "dc" else None,
        priority=draw(st.integers(0, 2)),
        controllable=draw(st.booleans() | st.just(True)),
        wants_current=draw(st.booleans() | st.just(True)),
        suspended_by_ev=draw(st.booleans()),
        measured_current_a=draw(st.tuples(*[st.floats(min_value=0, max_value=40)] * 3)),
        limit_a=draw(st.none() | st.floats(min_value=0, max_value=63)),
        csms_cap_a=draw(st.none() | st.floats(min_value=0, max_value=63)),
        csms_cap_w=draw(st.none() | st.floats(min_value=0, max_value=50_000)),
        charging_since_s=draw(maybe_times),
        paused_since_s=draw(maybe_times),
    )


@st.composite
def fleets(draw, max_size=12):
    size = draw(st.integers(0, max_size))
    return [draw(charger_inputs(index)) for index in range(size)]


sites = st.builds(
    SiteLimits,
    grid_limit_a=st.floats(min_value=0, max_value=250),
    margin_a=st.floats(min_value=0, max_value=10),
    grid_limit_kw=st.none() | st.floats(min_value=0, max_value=200),
    setpoint_a=st.none() | st.floats(min_value=0, max_value=250),
    setpoint_kw=st.none() | st.floats(min_value=0, max_value=200),
)
grid_readings = st.tuples(*[st.floats(min_value=-50, max_value=300)] * 3)


def phase_count(charger):
    return 1 if charger.kind == "ac1" else 3


def site_load_a(charger, limit_a):
    """Per site phase, what a charger may draw at `limit_a`."""
    load = [0.0, 0.0, 0.0]
    for phase in (charger.wiring if charger.kind != "dc" else (0, 1, 2)):
        load[phase] += limit_a
    return load


def controlled_running(chargers, allocation):
    return [
        (charger, result)
        for charger, result in zip(chargers, allocation.chargers)
        if charger.controllable
    ]


def caps_a(charger):
    caps = []
    to_a = 1.0 / (phase_count(charger) * V)
    if charger.kind == "dc" and charger.max_power_w is not None:
        caps.append(charger.max_power_w * to_a)
    if charger.kind != "dc" and charger.max_current_a is not None:
        caps.append(charger.max_current_a)
    if charger.csms_cap_a is not None:
        caps.append(charger.csms_cap_a)
    if charger.csms_cap_w is not None:
        caps.append(charger.csms_cap_w * to_a)
    return caps


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=300)
@given(sites, grid_readings, fleets())
def test_controlled_limits_and_uncontrolled_load_never_exceed_limit_minus_margin_on_any_phase(site, grid, chargers):
    allocation = allocate(site, grid, chargers, now_s=NOW_S)
    limit_a = min(site.grid_limit_a, site.setpoint_a if site.setpoint_a is not None else math.inf)
    uncontrolled = allocation.uncontrolled_a
    for phase in range(3):
        if uncontrolled[phase] + 0.0 > limit_a - site.margin_a:
            continue  # uncontrolled alone does not fit: nothing we allocate can fix that
        total = uncontrolled[phase] + sum(
            site_load_a(charger, result.limit_a)[phase] for charger, result in controlled_running(chargers, allocation)
        )
        assert total <= limit_a - site.margin_a + TOLERANCE_A


@settings(max_examples=300)
@given(sites, grid_readings, fleets())
def test_the_power_cap_holds_over_the_sum_of_the_phases(site, grid, chargers):
    caps_kw = [cap for cap in (site.grid_limit_kw, site.setpoint_kw) if cap is not None]
    allocation = allocate(site, grid, chargers, now_s=NOW_S)
    if not caps_kw:
        return
    cap_a = min(caps_kw) * 1000.0 / V - 3 * site.margin_a
    uncontrolled_a = sum(allocation.uncontrolled_a)
    if uncontrolled_a > cap_a:
        return
    allocated_a = sum(
        sum(site_load_a(charger, result.limit_a)) for charger, result in controlled_running(chargers, allocation)
    )
    assert uncontrolled_a + allocated_a <= cap_a + TOLERANCE_A


@settings(max_examples=300)
@given(sites, st.none() | grid_readings, fleets())
def test_no_controlled_charger_gets_more_than_its_maximum_or_csms_cap(site, grid, chargers):
    allocation = allocate(site, grid, chargers, now_s=NOW_S)
    for charger, result in controlled_running(chargers, allocation):
        for cap_a in caps_a(charger):
            assert result.limit_a <= cap_a + TOLERANCE_A


@settings(max_examples=300)
@given(sites, st.none() | grid_readings, fleets())
def test_every_controlled_charger_is_at_its_minimum_or_above_or_paused(site, grid, chargers):
    allocation = allocate(site, grid, chargers, now_s=NOW_S)
    for charger, result in controlled_running(chargers, allocation):
        assert result.limit_a == 0.0 or result.limit_a >= charger.min_current_a - TOLERANCE_A


@settings(max_examples=200)
@given(
    st.floats(min_value=0, max_value=250),
    st.tuples(*[st.floats(min_value=0, max_value=100)] * 3),
    st.lists(st.permutations((0, 1, 2)).map(tuple), min_size=1, max_size=15),
)
def test_equal_priorities_sharing_the_same_phases_get_within_1_a_of_each_other(grid_limit_a, grid, wirings_):
    chargers = [
        ChargerInput(f"CP{index:03d}", "ac3", wiring, wants_current=True) for index, wiring in enumerate(wirings_)
    ]
    allocation = allocate(SiteLimits(grid_limit_a=grid_limit_a), grid, chargers, now_s=NOW_S)
    running = [result.limit_a for result in allocation.chargers if result.limit_a > 0]
    if running:
        assert max(running) - min(running) <= 1.0


@settings(max_examples=300)
@given(sites, grid_readings, fleets())
def test_a_fair_share_below_an_equal_priority_neighbour_is_held_by_a_full_phase_or_power_cap(site, grid, chargers):
    """Equal priorities end within 1 A of each other unless a cap stops one: a charger on its fair
    share that is more than 1 A below another of its priority has a full phase (or kW cap)."""
    allocation = allocate(site, grid, chargers, now_s=NOW_S)
    limit_a = min(site.grid_limit_a, site.setpoint_a if site.setpoint_a is not None else math.inf)
    wanting = [(charger, result) for charger, result in controlled_running(chargers, allocation)
               if charger.wants_current]
    left = [limit_a - site.margin_a - allocation.uncontrolled_a[phase] for phase in range(3)]
    for charger, result in wanting:
        for phase, load_a in enumerate(site_load_a(charger, result.limit_a)):
            left[phase] -= load_a
    caps_kw = [cap for cap in (site.grid_limit_kw, site.setpoint_kw) if cap is not None]
    sum_left = (min(caps_kw) * 1000.0 / V - 3 * site.margin_a - sum(allocation.uncontrolled_a)
                - sum(sum(site_load_a(charger, result.limit_a)) for charger, result in wanting)) if caps_kw else math.inf
    slack_a = 0.1 * (len(chargers) + 1)  # rounding each limit down to 0.1 A
    for charger, result in wanting:
        if result.reason != Reason.FAIR_SHARE:
            continue
        best = max((other.limit_a for peer, other in wanting if peer.priority == charger.priority), default=0.0)
        if best > result.limit_a + 1.0:
            phases = charger.wiring if charger.kind != "dc" else (0, 1, 2)
            assert min(left[phase] for phase in phases) <= slack_a or sum_left <= 3 * slack_a


@settings(max_examples=200)
@given(sites, st.none() | grid_readings, fleets(), st.randoms(use_true_random=False))
def test_the_same_inputs_give_the_same_allocation_whatever_their_order(site, grid, chargers, random):
    first = allocate(site, grid, chargers, now_s=NOW_S)
    assert allocate(site, grid, chargers, now_s=NOW_S) == first
    shuffled = list(chargers)
    random.shuffle(shuffled)
    again = allocate(site, grid, shuffled, now_s=NOW_S)
    for charger in chargers:
        assert again.for_charger(charger.charge_box_id) == first.for_charger(charger.charge_box_id)


@settings(max_examples=200)
@given(sites, st.none() | grid_readings, fleets())
def test_results_come_back_in_input_order_with_limit_w_matching_limit_a(site, grid, chargers):
    allocation = allocate(site, grid, chargers, now_s=NOW_S)
    assert [result.charge_box_id for result in allocation.chargers] == [charger.charge_box_id for charger in chargers]
    for charger, result in zip(chargers, allocation.chargers):
        assert result.limit_w == pytest.approx(result.limit_a * phase_count(charger) * V)
        assert isinstance(result.reason, Reason)


# --- examples --------------------------------------------------------------------------------


def charging(charge_box_id, kind="ac3", wiring=(0, 1, 2), **fields):
    return ChargerInput(charge_box_id, kind, wiring, wants_current=True, **fields)


def test_two_three_phase_cars_share_the_free_capacity_equally():
    allocation = allocate(SiteLimits(grid_limit_a=40), (8.0, 8.0, 8.0), [charging("A"), charging("B")], now_s=NOW_S)
    assert [result.limit_a for result in allocation.chargers] == [16.0, 16.0]
    assert {result.reason for result in allocation.chargers} == {Reason.FAIR_SHARE}
    assert allocation.uncontrolled_a == (8.0, 8.0, 8.0)
    assert allocation.capacity_left_a == pytest.approx(0.0)


def test_what_a_capped_charger_leaves_flows_to_the_others():
    chargers = [charging("A", max_current_a=10), charging("B", csms_cap_a=8), charging("C")]
    allocation = allocate(SiteLimits(grid_limit_a=50), (0.0, 0.0, 0.0), chargers, now_s=NOW_S)
    assert [(result.limit_a, result.reason) for result in allocation.chargers] == [
        (10.0, Reason.CAPPED_BY_MAXIMUM), (8.0, Reason.CAPPED_BY_CSMS), (32.0, Reason.FAIR_SHARE)]


def test_what_controlled_chargers_draw_is_not_counted_as_uncontrolled_load():
    chargers = [charging("A", measured_current_a=(16.0, 16.0, 16.0)), charging("B", measured_current_a=(16.0, 16.0, 16.0))]
    allocation = allocate(SiteLimits(grid_limit_a=40), (40.0, 38.0, 36.0), chargers, now_s=NOW_S)
    assert allocation.uncontrolled_a == (8.0, 6.0, 4.0)
    assert [result.limit_a for result in allocation.chargers] == [16.0, 16.0]


def test_pv_export_is_not_counted_on_to_lift_the_fuse():
    allocation = allocate(SiteLimits(grid_limit_a=32), (-20.0, -20.0, -20.0), [charging("A")], now_s=NOW_S)
    assert allocation.uncontrolled_a == (0.0, 0.0, 0.0)
    assert allocation.chargers[0].limit_a == 32.0


def test_a_phase_loaded_mixed_fleet_keeps_l1_under_the_fuse():
    chargers = [
        charging("AC1-L1", "ac1", (0,), max_current_a=32),
        charging("AC3-ROTATED", "ac3", (1, 2, 0), max_current_a=32),
        charging("DC", "dc", (0, 1, 2), max_power_w=50_000),
    ]
    # The building already takes 20 A on L1, little on L2 and L3.
    allocation = allocate(SiteLimits(grid_limit_a=40, margin_a=2), (20.0, 5.0, 5.0), chargers, now_s=NOW_S)
    on_l1 = sum(result.limit_a for result in allocation.chargers)  # all three load L1
    assert 20.0 + on_l1 <= 40 - 2 + TOLERANCE_A
    assert [result.limit_a for result in allocation.chargers] == [6.0, 6.0, 6.0]
    dc = allocation.for_charger("DC")
    assert dc.limit_w == pytest.approx(6.0 * 3 * V)


def test_a_three_phase_charger_rotated_onto_an_empty_phase_pair_still_waits_for_its_busiest_phase():
    chargers = [charging("AC1-L1", "ac1", (0,)), charging("AC3", "ac3", (1, 2, 0))]
    allocation = allocate(SiteLimits(grid_limit_a=32), (20.0, 0.0, 0.0), chargers, now_s=NOW_S)
    # L1 has 12 A left for both: 6 A each; nothing more although L2 and L3 are free.
    assert [result.limit_a for result in allocation.chargers] == [6.0, 6.0]


def test_one_phase_chargers_on_different_phases_do_not_compete():
    chargers = [charging("L1", "ac1", (0,)), charging("L2", "ac1", (1,)), charging("L3", "ac1", (2,))]
    allocation = allocate(SiteLimits(grid_limit_a=32), (30.0, 10.0, 0.0), chargers, now_s=NOW_S)
    assert [(result.limit_a, result.reason) for result in allocation.chargers] == [
        (0.0, Reason.PAUSED_BELOW_MINIMUM), (22.0, Reason.FAIR_SHARE), (32.0, Reason.FAIR_SHARE)]


def test_a_charger_that_cannot_get_its_minimum_is_paused_not_given_less():
    chargers = [charging("A", charging_since_s=NOW_S - 10), charging("B", charging_since_s=NOW_S - 20)]
    allocation = allocate(SiteLimits(grid_limit_a=16), (6.0, 6.0, 6.0), chargers, now_s=NOW_S)
    # 10 A free: one runs at 10 A, the one charging longest yields.
    assert [(result.limit_a, result.reason) for result in allocation.chargers] == [
        (10.0, Reason.FAIR_SHARE), (0.0, Reason.PAUSED_IN_ROTATION)]


def test_nobody_runs_when_not_even_one_minimum_fits():
    allocation = allocate(SiteLimits(grid_limit_a=16), (12.0, 12.0, 12.0), [charging("A")], now_s=NOW_S)
    assert allocation.chargers[0].limit_a == 0.0
    assert allocation.chargers[0].reason == Reason.PAUSED_BELOW_MINIMUM
    assert allocation.capacity_left_a == pytest.approx(4.0)


def test_rotation_gives_a_paused_charger_its_turn_after_the_period():
    period_s = 900.0
    running = charging("RUNNING", charging_since_s=1_000.0, paused_since_s=500.0)
    waiting = charging("WAITING", charging_since_s=400.0, paused_since_s=1_000.0)
    site = SiteLimits(grid_limit_a=10)
    grid = (0.0, 0.0, 0.0)
    within = allocate(site, grid, [running, waiting], now_s=1_000.0 + period_s - 1, rotation_period_s=period_s)
    assert within.for_charger("RUNNING").limit_a == 10.0
    assert within.for_charger("WAITING").reason == Reason.PAUSED_IN_ROTATION
    after = allocate(site, grid, [running, waiting], now_s=1_000.0 + period_s, rotation_period_s=period_s)
    assert after.for_charger("WAITING").limit_a == 10.0
    assert after.for_charger("RUNNING").limit_a == 0.0
    assert after.for_charger("RUNNING").reason == Reason.PAUSED_IN_ROTATION


def test_the_charger_paused_longest_gets_the_freed_place_first():
    chargers = [
        charging("DUE", charging_since_s=0.0),
        charging("PAUSED-RECENTLY", paused_since_s=5_000.0, charging_since_s=100.0),
        charging("PAUSED-LONGEST", paused_since_s=1_000.0, charging_since_s=100.0),
    ]
    allocation = allocate(SiteLimits(grid_limit_a=10), (0.0, 0.0, 0.0), chargers, now_s=NOW_S)
    assert [result.limit_a for result in allocation.chargers] == [0.0, 0.0, 10.0]


def test_a_charger_paused_moments_ago_does_not_resume_before_the_resume_delay():
    paused = charging("PAUSED", charging_since_s=0.0, paused_since_s=NOW_S - 10)
    held = allocate(SiteLimits(grid_limit_a=32), (0.0, 0.0, 0.0), [paused, charging("OTHER")], now_s=NOW_S,
                    resume_after_s=30.0)
    assert (held.for_charger("PAUSED").limit_a, held.for_charger("PAUSED").reason) == (0.0, Reason.PAUSED_IN_ROTATION)
    assert held.for_charger("OTHER").limit_a == 32.0
    resumed = allocate(SiteLimits(grid_limit_a=32), (0.0, 0.0, 0.0), [paused, charging("OTHER")], now_s=NOW_S + 20,
                       resume_after_s=30.0)
    assert resumed.for_charger("PAUSED").limit_a == 16.0


def test_higher_priority_is_served_first():
    chargers = [charging("LOW", priority=0), charging("HIGH", priority=1, max_current_a=20)]
    allocation = allocate(SiteLimits(grid_limit_a=30), (0.0, 0.0, 0.0), chargers, now_s=NOW_S)
    assert allocation.for_charger("HIGH").limit_a == 20.0
    assert allocation.for_charger("LOW").limit_a == 10.0


def test_a_car_drawing_well_under_its_limit_lends_the_rest_and_gets_it_back_when_it_ramps_up():
    site = SiteLimits(grid_limit_a=32)
    slow = dict(limit_a=16.0, charging_since_s=0.0, limit_raised_at_s=0.0)
    lending = allocate(site, (20.0, 20.0, 20.0), [
        charging("SLOW", measured_current_a=(5.0, 5.0, 5.0), **slow),
        charging("FAST", measured_current_a=(15.5, 15.5, 15.5), limit_a=16.0, charging_since_s=0.0, limit_raised_at_s=0.0),
    ], now_s=NOW_S)
    assert lending.for_charger("SLOW").limit_a == 5.0 + LEND_HEADROOM_A
    assert lending.for_charger("SLOW").reason == Reason.LENT
    assert lending.for_charger("FAST").limit_a == 32.0 - 8.0
    # Next cycle the slow car draws near its lent limit: it gets its fair share back.
    ramped = allocate(site, (23.5, 23.5, 23.5), [
        charging("SLOW", measured_current_a=(7.5, 7.5, 7.5), limit_a=8.0, charging_since_s=0.0, limit_raised_at_s=0.0),
        charging("FAST", measured_current_a=(16.0, 16.0, 16.0), limit_a=24.0, charging_since_s=0.0, limit_raised_at_s=NOW_S),
    ], now_s=NOW_S + 1)
    assert ramped.for_charger("SLOW").limit_a == 16.0
    assert ramped.for_charger("SLOW").reason == Reason.FAIR_SHARE


def test_a_lent_car_stays_lent_while_its_draw_stays_low():
    allocation = allocate(SiteLimits(grid_limit_a=32), (5.0, 5.0, 5.0), [
        charging("SLOW", measured_current_a=(5.0, 5.0, 5.0), limit_a=8.0, charging_since_s=0.0, limit_raised_at_s=0.0),
    ], now_s=NOW_S + 1)
    assert (allocation.chargers[0].limit_a, allocation.chargers[0].reason) == (8.0, Reason.LENT)


def test_a_car_still_ramping_after_a_raise_is_not_lent_from():
    allocation = allocate(SiteLimits(grid_limit_a=32), (2.0, 2.0, 2.0), [
        charging("RAMPING", measured_current_a=(2.0, 2.0, 2.0), limit_a=32.0, charging_since_s=0.0, limit_raised_at_s=NOW_S - 5),
    ], now_s=NOW_S)
    assert allocation.chargers[0].limit_a == 32.0


def test_a_car_suspended_by_the_ev_keeps_only_its_minimum():
    chargers = [charging("SUSPENDED", suspended_by_ev=True), charging("OTHER")]
    allocation = allocate(SiteLimits(grid_limit_a=32), (0.0, 0.0, 0.0), chargers, now_s=NOW_S)
    assert (allocation.for_charger("SUSPENDED").limit_a, allocation.for_charger("SUSPENDED").reason) == (6.0, Reason.LENT)
    assert allocation.for_charger("OTHER").limit_a == 26.0


def test_a_stale_meter_holds_every_controlled_charger_at_the_failsafe_current():
    chargers = [
        charging("A"),
        charging("CAPPED", csms_cap_a=4.0),
        charging("LOW-MAX", max_current_a=10),
        ChargerInput("IDLE", "ac1", (0,)),
        charging("BLIND", controllable=False, max_current_a=16),
    ]
    allocation = allocate(SiteLimits(grid_limit_a=63, failsafe_current_a=12), None, chargers, now_s=NOW_S)
    assert allocation.failsafe
    assert allocation.uncontrolled_a is None and allocation.capacity_left_a is None
    assert [(result.limit_a, result.reason) for result in allocation.chargers] == [
        (12.0, Reason.FAILSAFE), (0.0, Reason.FAILSAFE), (10.0, Reason.FAILSAFE), (12.0, Reason.IDLE),
        (16.0, Reason.NOT_CONTROLLABLE)]


@pytest.mark.parametrize("grid", [(1.0, float("nan"), 2.0), (1.0, 2.0), "40", (1.0, None, 2.0)])
def test_a_reading_that_is_not_three_finite_currents_means_failsafe(grid):
    allocation = allocate(SiteLimits(grid_limit_a=32), grid, [charging("A")], now_s=NOW_S)
    assert allocation.failsafe
    assert allocation.chargers[0].reason == Reason.FAILSAFE
    assert allocation.problems


def test_a_charger_that_is_not_controllable_gets_its_maximum_and_its_draw_counts_as_uncontrolled():
    chargers = [
        charging("BLIND", controllable=False, max_current_a=16, measured_current_a=(16.0, 16.0, 16.0)),
        charging("A"),
    ]
    allocation = allocate(SiteLimits(grid_limit_a=32), (16.0, 16.0, 16.0), chargers, now_s=NOW_S)
    assert allocation.uncontrolled_a == (16.0, 16.0, 16.0)
    assert (allocation.for_charger("BLIND").limit_a, allocation.for_charger("BLIND").reason) == (
        16.0, Reason.NOT_CONTROLLABLE)
    assert allocation.for_charger("A").limit_a == 16.0


def test_an_idle_charger_gets_its_minimum_only_from_what_charging_cars_leave():
    site = SiteLimits(grid_limit_a=32)
    roomy = allocate(site, (0.0, 0.0, 0.0), [charging("A", max_current_a=20), ChargerInput("IDLE", "ac3", (0, 1, 2))],
                     now_s=NOW_S)
    assert (roomy.for_charger("IDLE").limit_a, roomy.for_charger("IDLE").reason) == (6.0, Reason.IDLE)
    assert roomy.capacity_left_a == pytest.approx(12.0)
    assert roomy.standby_left_a == pytest.approx(6.0)
    full = allocate(site, (0.0, 0.0, 0.0), [charging("A"), ChargerInput("IDLE", "ac3", (0, 1, 2))], now_s=NOW_S)
    assert full.for_charger("A").limit_a == 32.0
    assert (full.for_charger("IDLE").limit_a, full.for_charger("IDLE").reason) == (0.0, Reason.IDLE)


def test_a_csms_cap_below_the_minimum_pauses_the_charger():
    allocation = allocate(SiteLimits(grid_limit_a=32), (0.0, 0.0, 0.0), [charging("A", csms_cap_w=2_000.0)],
                          now_s=NOW_S)
    assert (allocation.chargers[0].limit_a, allocation.chargers[0].reason) == (0.0, Reason.CAPPED_BY_CSMS)


def test_a_csms_cap_in_watts_is_converted_at_the_nominal_voltage():
    allocation = allocate(SiteLimits(grid_limit_a=32), (0.0, 0.0, 0.0), [charging("A", csms_cap_w=11_040.0)],
                          now_s=NOW_S)
    assert (allocation.chargers[0].limit_a, allocation.chargers[0].reason) == (16.0, Reason.CAPPED_BY_CSMS)


def test_the_lower_of_setpoint_and_site_limit_is_in_force():
    charger = [charging("A")]
    setpoint = allocate(SiteLimits(grid_limit_a=63, setpoint_a=25), (5.0, 5.0, 5.0), charger, now_s=NOW_S)
    assert (setpoint.limit_in_force_a, setpoint.limit_reason) == (25.0, "setpoint")
    assert setpoint.chargers[0].limit_a == 20.0
    site = allocate(SiteLimits(grid_limit_a=63, setpoint_a=80), (5.0, 5.0, 5.0), charger, now_s=NOW_S)
    assert (site.limit_in_force_a, site.limit_reason) == (63.0, "site limit")


def test_a_kw_cap_limits_the_sum_over_the_phases():
    # 22.08 kW at 230 V is 96 A over the three phases: 32 A each when balanced.
    allocation = allocate(SiteLimits(grid_limit_a=63, grid_limit_kw=22.08), (0.0, 0.0, 0.0),
                          [charging("A"), charging("B")], now_s=NOW_S)
    assert (allocation.limit_in_force_a, allocation.limit_reason) == (pytest.approx(32.0), "power cap")
    assert [result.limit_a for result in allocation.chargers] == [16.0, 16.0]


def test_a_kw_setpoint_below_the_grid_cap_is_reported_as_the_setpoint():
    allocation = allocate(SiteLimits(grid_limit_a=63, grid_limit_kw=40, setpoint_kw=11.04), (0.0, 0.0, 0.0),
                          [charging("A")], now_s=NOW_S)
    assert allocation.limit_reason == "setpoint"
    assert allocation.chargers[0].limit_a == 16.0


def test_a_dc_charger_is_limited_in_watts_and_counts_on_every_phase():
    chargers = [charging("DC", "dc", (), max_power_w=11_040.0), charging("AC", "ac1", (2,))]
    allocation = allocate(SiteLimits(grid_limit_a=32), (0.0, 0.0, 0.0), chargers, now_s=NOW_S)
    dc = allocation.for_charger("DC")
    assert (dc.limit_a, dc.limit_w, dc.reason) == (16.0, pytest.approx(11_040.0), Reason.CAPPED_BY_MAXIMUM)
    assert allocation.for_charger("AC").limit_a == 16.0


def test_a_dc_minimum_power_is_honoured():
    chargers = [charging("DC", "dc", (), min_power_w=13_800.0)]  # 20 A per phase
    allocation = allocate(SiteLimits(grid_limit_a=32), (15.0, 0.0, 0.0), chargers, now_s=NOW_S)
    assert allocation.chargers[0].limit_a == 0.0
    allocation = allocate(SiteLimits(grid_limit_a=32), (10.0, 0.0, 0.0), chargers, now_s=NOW_S)
    assert allocation.chargers[0].limit_a == 22.0


def test_limits_are_rounded_down_to_a_tenth_of_an_ampere():
    allocation = allocate(SiteLimits(grid_limit_a=32), (0.0, 0.0, 0.0), [charging(name) for name in "ABC"],
                          now_s=NOW_S)
    assert [result.limit_a for result in allocation.chargers] == [10.6, 10.6, 10.6]


@pytest.mark.parametrize(
    "bad",
    [
        dict(kind="ac9"),
        dict(wiring=(0, 0, 1)),
        dict(wiring=(5,)),
        dict(max_current_a=float("nan")),
        dict(min_current_a=-3.0),
        dict(csms_cap_a=float("inf")),
        dict(measured_current_a=(1.0, "x", None)),
        dict(measured_current_a=(1.0,)),
        dict(charging_since_s=float("nan"), limit_a=float("nan")),
        dict(priority=float("nan")),
    ],
)
def test_bad_charger_input_gets_a_safe_fallback_and_a_problem_not_a_crash(bad):
    fields = dict(charge_box_id="BAD", kind="ac3", wiring=(0, 1, 2), wants_current=True) | bad
    allocation = allocate(SiteLimits(grid_limit_a=32), (10.0, 10.0, 10.0), [ChargerInput(**fields)], now_s=NOW_S)
    result = allocation.chargers[0]
    assert result.limit_a == 0.0 or 6.0 <= result.limit_a <= 22.0
    assert allocation.problems or "kind" not in bad


def test_charge_box_ids_that_are_not_text_do_not_break_the_ordering():
    chargers = [ChargerInput(None, "ac3", (0, 1, 2), wants_current=True),  # type: ignore[arg-type]
                ChargerInput(7, "ac3", (0, 1, 2), wants_current=True),  # type: ignore[arg-type]
                charging("A"), ChargerInput(None, "ac1", (0,)), ChargerInput("B", "ac1", (1,))]  # type: ignore[arg-type]
    allocation = allocate(SiteLimits(grid_limit_a=30), (0.0, 0.0, 0.0), chargers, now_s=NOW_S)
    assert [result.limit_a for result in allocation.chargers[:3]] == [10.0, 10.0, 10.0]


def test_a_bad_site_limit_pauses_everyone_and_says_why():
    allocation = allocate(SiteLimits(grid_limit_a=float("nan")), (0.0, 0.0, 0.0), [charging("A")], now_s=NOW_S)
    assert allocation.chargers[0].limit_a == 0.0
    assert any("grid_limit_a" in problem for problem in allocation.problems)


def test_for_charger_answers_none_for_an_unknown_charger():
    allocation = allocate(SiteLimits(grid_limit_a=32), (0.0, 0.0, 0.0), [charging("A")], now_s=NOW_S)
    assert allocation.for_charger("A").limit_a == 32.0
    assert allocation.for_charger("B") is None

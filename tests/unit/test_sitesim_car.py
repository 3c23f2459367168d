"""The simulated car and what a simulated charger offers it (sitesim/car.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitesim.car import AC_MINIMUM_CURRENT_A, Car, charging_state, offered_current_a


def offer(limit_a, *, ac=True, max_current_a=32.0, max_power_w=22_080.0, phase_count=3):
    return offered_current_a(
        limit_a, max_current_a=max_current_a, max_power_w=max_power_w, voltage_v=230.0, phase_count=phase_count, ac=ac
    )


def test_an_ac_charger_offers_the_profile_limit_under_its_maximum():
    assert offer(10.0) == 10.0
    assert offer(None) == 32.0
    assert offer(40.0, max_power_w=11_040.0) == pytest.approx(16.0)


def test_an_ac_limit_under_six_amperes_pauses_the_charge():
    assert offer(5.9) == 0.0
    assert offer(6.0) == 6.0
    assert charging_state(offer(4.0), 16.0) == (0.0, "SuspendedEVSE")


def test_a_dc_charger_can_go_below_six_amperes():
    assert offer(3.0, ac=False) == 3.0


def test_a_full_car_takes_nothing_and_says_so():
    car = Car(10_000, max_current_a=16.0)
    wants_a = car.wants_current_a(10_000, voltage_v=230.0, phase_count=3)
    assert charging_state(16.0, wants_a) == (0.0, "SuspendedEV")


def test_a_car_tapers_near_full():
    car = Car(10_000, max_current_a=16.0, taper_from=0.8)
    assert car.wants_current_a(5_000, voltage_v=230.0, phase_count=3) == 16.0
    assert car.wants_current_a(9_000, voltage_v=230.0, phase_count=3) == pytest.approx(16.0 * 0.55)
    assert car.wants_current_a(9_999, voltage_v=230.0, phase_count=3) == pytest.approx(1.6, abs=0.01)


def test_a_car_limited_in_power_takes_its_power_over_the_phases():
    car = Car(50_000, max_power_w=7_360.0)
    assert car.wants_current_a(0, voltage_v=230.0, phase_count=1) == pytest.approx(32.0)


@given(
    limit_a=st.none() | st.floats(0, 100),
    car_max_a=st.none() | st.floats(0, 100),
    delivered_wh=st.floats(0, 20_000),
    ac=st.booleans(),
)
def test_the_draw_never_exceeds_the_limit_the_charger_or_the_car(limit_a, car_max_a, delivered_wh, ac):
    car = Car(10_000, max_current_a=car_max_a)
    offered_a = offer(limit_a, ac=ac)
    draw_a, status = charging_state(offered_a, car.wants_current_a(delivered_wh, voltage_v=230.0, phase_count=3))
    assert 0 <= draw_a <= 32.0
    if limit_a is not None:
        assert draw_a <= limit_a
    if car_max_a is not None:
        assert draw_a <= car_max_a
    if ac:
        assert offered_a == 0 or offered_a >= AC_MINIMUM_CURRENT_A
    assert (status == "Charging") == (draw_a > 0)

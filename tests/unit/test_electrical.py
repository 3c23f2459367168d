"""linkray_site.electrical: wiring parsing, A<->W at a nominal voltage, a charger's currents on
the site's phases. Pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkray_site.electrical import (
    SITE_PHASES,
    Phases,
    amps_to_watts,
    parse_wiring,
    to_site_phases,
    watts_to_amps,
)


def test_a_one_phase_charger_on_the_sites_l2_is_wired_to_index_1():
    assert parse_wiring(["L2"], "ac1") == (1,)


def test_a_rotated_three_phase_charger_keeps_its_order():
    assert parse_wiring(["L2", "L3", "L1"], "ac3") == (1, 2, 0)


def test_a_dc_charger_without_phases_counts_on_l1_l2_l3():
    assert parse_wiring([], "dc") == (0, 1, 2)


def test_phase_names_are_read_case_insensitively():
    assert parse_wiring(["l3"], "ac1") == (2,)


@pytest.mark.parametrize(
    ("phases", "kind", "message"),
    [
        (["L1", "L2"], "ac1", "1 site phase"),
        ([], "ac1", "1 site phase"),
        (["L1"], "ac3", "3 site phases"),
        (["L1", "L1", "L2"], "ac3", "only once"),
        (["L1", "L2"], "dc", "3 site phases"),
        (["L4"], "ac1", "expected one of L1, L2, L3"),
        ([1], "ac1", "expected one of L1, L2, L3"),
        ("L1", "ac1", "expected a list"),
        (None, "ac1", "expected a list"),
        (["L1"], "ac2", "expected one of ac1, ac3, dc"),
    ],
)
def test_bad_wiring_is_refused_with_a_readable_message(phases, kind, message):
    with pytest.raises(ValueError, match=message):
        parse_wiring(phases, kind)


@given(st.permutations(SITE_PHASES))
def test_every_three_phase_permutation_parses_to_distinct_indexes(phases):
    wiring = parse_wiring(list(phases), "ac3")
    assert sorted(wiring) == [0, 1, 2]
    assert [SITE_PHASES[index] for index in wiring] == list(phases)


def test_sixteen_amps_on_three_phases_at_230_v_is_11040_w():
    assert amps_to_watts(16.0, 3, 230.0) == pytest.approx(11_040.0)
    assert watts_to_amps(11_040.0, 3, 230.0) == pytest.approx(16.0)


@given(
    st.floats(min_value=0, max_value=1_000, allow_nan=False),
    st.sampled_from([1, 2, 3]),
    st.floats(min_value=100, max_value=480, allow_nan=False),
)
def test_amps_and_watts_round_trip(current_a, phase_count, voltage_v):
    power_w = amps_to_watts(current_a, phase_count, voltage_v)
    assert watts_to_amps(power_w, phase_count, voltage_v) == pytest.approx(current_a, abs=1e-9)


@pytest.mark.parametrize(("phase_count", "voltage_v"), [(0, 230.0), (4, 230.0), (3, 0.0), (3, -230.0), (3, float("nan"))])
def test_conversions_refuse_impossible_phase_counts_and_voltages(phase_count, voltage_v):
    with pytest.raises(ValueError):
        amps_to_watts(10.0, phase_count, voltage_v)
    with pytest.raises(ValueError):
        watts_to_amps(10.0, phase_count, voltage_v)


def test_a_rotated_chargers_currents_land_on_the_site_phases_it_is_wired_to():
    assert to_site_phases((10.0, 11.0, 12.0), (1, 2, 0)) == (12.0, 10.0, 11.0)


def test_a_one_phase_charger_loads_only_its_site_phase():
    assert to_site_phases((16.0, 3.0, None), (2,)) == (0.0, 0.0, 16.0)


def test_missing_phase_currents_count_as_zero():
    assert to_site_phases((None, 5.0, None), (0, 1, 2)) == (0.0, 5.0, 0.0)


def test_phases_still_import_from_the_gateway_state_module():
    from gateway.state import Phases as GatewayPhases

    assert GatewayPhases is Phases
    assert Phases(1.0, None, 3.0).as_tuple() == (1.0, None, 3.0)

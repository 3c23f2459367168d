"""Demo scenarios in TOML (sitesim/scenario.py): shipped files run, bad files say what is wrong."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitesim.scenario import (
    CurvePoint,
    ScenarioError,
    curve_factor,
    parse_duration_s,
    parse_moment_s,
    parse_scenario,
)

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "sitesim" / "scenarios").glob("*.toml"))

MINIMAL = """
name = "tiny"
duration = "1h"
[site]
fuse_a = 32
[[chargers]]
id = "CP1"
kind = "ac1"
phases = ["L2"]
max_current_a = 16
"""


def scenario(extra: str = "", *, top: str = "", base: str = MINIMAL):
    """MINIMAL plus tables (`extra`) and top-level keys (`top`, which TOML needs first)."""
    return parse_scenario(top + base + extra, source="test.toml")


def test_the_four_shipped_scenarios_are_there():
    assert {path.stem for path in SCENARIOS} >= {"office-day", "evening-peak", "depot-night", "solar-noon"}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.stem)
def test_every_shipped_scenario_parses_and_its_base_load_alone_stays_under_the_limit(path):
    parsed = parse_scenario(path.read_text(encoding="utf-8"), source=path.name)
    assert parsed.chargers and parsed.cars
    headroom_a = parsed.site.fuse_a - parsed.site.margin_a
    for minute in range(int(parsed.duration_s // 60) + 1):
        load = parsed.base_load_a(minute * 60.0)
        pv = parsed.pv_feed_in_a(minute * 60.0)
        # LinkRay can only cut chargers: the building alone must leave room for them.
        assert all(0 <= value - feed < headroom_a - 6 or value - feed < 0 for value, feed in zip(load, pv)), (minute, load)
    assert all(car.arrive_s < parsed.duration_s for car in parsed.cars)


def test_a_minimal_scenario_gets_the_documented_defaults():
    parsed = scenario()
    assert parsed.site.margin_a == 0 and parsed.site.nominal_voltage_v == 230 and parsed.site.failsafe_current_a == 6
    assert parsed.start_s == 0 and parsed.duration_s == 3600
    charger = parsed.charger("CP1")
    assert charger.phases == ("L2",) and charger.accepts == ("A", "W") and charger.rate_unit == "A"
    assert charger.allowed_rate_units == "Current,Power"
    assert parsed.base_load_a(100) == (0.0, 0.0, 0.0) and parsed.pv_feed_in_a(100) == (0.0, 0.0, 0.0)
    assert parsed.reaction_delay_s == 2.0 and parsed.meter_value_interval_s == 60.0


def test_a_three_phase_charger_defaults_to_the_site_phases_and_keeps_its_rotation():
    parsed = scenario('[[chargers]]\nid = "R"\nkind = "ac3"\nphases = ["l2", "L3", "L1"]\nmax_current_a = 16\n'
                      '[[chargers]]\nid = "S"\nkind = "ac3"\nmax_current_a = 32\n')
    assert parsed.charger("R").phases == ("L2", "L3", "L1")
    assert parsed.charger("S").phases == ("L1", "L2", "L3")


def test_a_dc_charger_is_given_in_kw_and_is_told_to_use_watts():
    parsed = scenario('[[chargers]]\nid = "DC"\nkind = "dc"\nmax_power_kw = 50\n')
    dc = parsed.charger("DC")
    assert dc.max_power_w == 50_000 and dc.rate_unit == "W" and dc.phases == ("L1", "L2", "L3")
    only_watts = scenario('[[chargers]]\nid = "W"\nkind = "ac3"\nmax_current_a = 16\naccepts = ["W"]\n').charger("W")
    assert only_watts.rate_unit == "W" and only_watts.allowed_rate_units == "Power"


def test_steps_and_ramps_shape_the_base_load_in_order():
    parsed = scenario(
        "[base_load]\ncurrent_a = [10, 5, 5]\n"
        '[[base_load.steps]]\nat = "+10m"\ncurrent_a = 20\n'
        '[[base_load.ramps]]\nfrom = "+20m"\nto = "+30m"\ncurrent_a = {L1 = 0}\n'
    )
    assert parsed.base_load_a(0) == (10, 5, 5)
    assert parsed.base_load_a(600) == (20, 20, 20)
    assert parsed.base_load_a(1500) == (10, 10, 10)  # half way down the ramp
    assert parsed.base_load_a(1800) == (0, 0, 0) == parsed.base_load_a(3000)


def test_the_daily_curve_scales_the_load_and_wraps_around_midnight():
    curve = (CurvePoint(6 * 3600, 1.0), CurvePoint(18 * 3600, 0.5))
    assert curve_factor(curve, 12 * 3600) == pytest.approx(0.75)
    assert curve_factor(curve, 0) == pytest.approx(0.75)  # half way from 18:00 to 06:00
    assert curve_factor((), 1234) == 1.0
    parsed = scenario(top='start = "12:00"\n', extra='[base_load]\ncurrent_a = 10\ncurve = [["06:00", 1.0], ["18:00", 0.5]]\n')
    assert parsed.base_load_a(0) == pytest.approx((7.5, 7.5, 7.5))


def test_pv_peaks_half_way_from_sunrise_to_sunset_and_is_nothing_at_night():
    parsed = scenario(top='start = "06:00"\n', extra='[pv]\npeak_a = [20, 10, 0]\nsunrise = "06:00"\nsunset = "18:00"\n')
    assert parsed.pv_feed_in_a(6 * 3600) == pytest.approx((20, 10, 0))
    assert parsed.pv_feed_in_a(0) == (0, 0, 0)
    assert parsed.pv_feed_in_a(13 * 3600) == (0, 0, 0)


def test_an_hh_mm_time_before_the_start_is_the_next_day():
    assert parse_moment_s("05:30", 20 * 3600, "x") == 9.5 * 3600
    assert parse_moment_s("21:00", 20 * 3600, "x") == 3600
    assert parse_moment_s("+1h30m", 20 * 3600, "x") == 5400
    assert parse_moment_s(90, 0, "x") == 90


def test_cars_and_outages_are_read_in_scenario_time():
    parsed = scenario(
        top='start = "08:00"\n',
        extra='[[cars]]\ncharger = "CP1"\narrive = "08:30"\nleave = "+50m"\nenergy_kwh = 12\nmax_current_a = 16\n'
        '[[csms_outages]]\nfrom = "08:40"\nto = "08:45"\n'
    )
    (car,) = parsed.cars
    assert (car.arrive_s, car.leave_s, car.energy_wh, car.taper_from) == (1800, 3000, 12_000, 0.8)
    assert [(o.from_s, o.to_s) for o in parsed.csms_outages] == [(2400, 2700)]
    assert parsed.clock(1800) == "08:30"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[[chargers]]\nid = \"X\"\nkind = \"ac2\"\nmax_current_a = 16\n", "chargers[1].kind: 'ac2' is not one of ac1, ac3, dc"),
        ("[[chargers]]\nid = \"X\"\nkind = \"ac1\"\nphases = [\"L1\", \"L2\"]\nmax_current_a = 16\n", "chargers[1].phases"),
        ("[[chargers]]\nid = \"X\"\nkind = \"ac3\"\nphases = [\"L1\", \"L1\", \"L2\"]\nmax_current_a = 16\n", "chargers[1].phases"),
        ("[[chargers]]\nid = \"X\"\nkind = \"dc\"\n", "chargers[1].max_power_kw: required for a dc charger"),
        ("[[chargers]]\nid = \"X\"\nkind = \"ac3\"\n", "chargers[1].max_current_a: required"),
        ("[[chargers]]\nid = \"CP1\"\nkind = \"ac3\"\nmax_current_a = 16\n", "'CP1' appears twice"),
        ("[[chargers]]\nid = \"X\"\nkind = \"ac3\"\nmax_current_a = 16\naccepts = [\"kW\"]\n", "chargers[1].accepts"),
        ("[[chargers]]\nid = \"X\"\nkind = \"ac3\"\nmax_current_a = \"16\"\n", "chargers[1].max_current_a: expected a number"),
        ("[[chargers]]\nid = \"X\"\nkind = \"ac3\"\nmax_current_a = 16\nmax_curent_a = 16\n", "unknown field(s) max_curent_a"),
        ("[[cars]]\ncharger = \"NOPE\"\narrive = \"+1m\"\nenergy_kwh = 5\n", "cars[0].charger: no charger 'NOPE'"),
        ("[[cars]]\ncharger = \"CP1\"\narrive = \"25:00\"\nenergy_kwh = 5\n", "cars[0].arrive"),
        ("[[cars]]\ncharger = \"CP1\"\narrive = \"+10m\"\nleave = \"+5m\"\nenergy_kwh = 5\n", "cars[0].leave: must come after"),
        ("[[cars]]\ncharger = \"CP1\"\narrive = \"+10m\"\nenergy_kwh = -5\n", "cars[0].energy_kwh: must be more than 0"),
        ("[[cars]]\ncharger = \"CP1\"\narrive = \"+10m\"\nenergy_kwh = 5\ntaper_from = 2\n", "cars[0].taper_from"),
        ("[[cars]]\ncharger = \"CP1\"\narrive = \"+1m\"\nenergy_kwh = 5\n[[cars]]\ncharger = \"CP1\"\narrive = \"+2m\"\nenergy_kwh = 5\n",
         "two cars at CP1 at once"),
        ("[base_load]\ncurrent_a = [1, 2]\n", "base_load.current_a: expected A per phase"),
        ("[base_load]\ncurrent_a = -3\n", "base_load.current_a: currents must be finite and 0 or more"),
        ("[base_load]\ncurve = [[\"08:00\"]]\n", "base_load.curve[0]"),
        ("[[base_load.steps]]\nat = \"+5m\"\n", "base_load.steps[0].current_a: required"),
        ("[[base_load.ramps]]\nfrom = \"+5m\"\nto = \"+15m\"\ncurrent_a = 1\n[[base_load.steps]]\nat = \"+10m\"\ncurrent_a = 2\n",
         "must not overlap"),
        ("[pv]\npeak_a = 10\nsunrise = \"18:00\"\nsunset = \"06:00\"\n", "pv.sunset: must come after pv.sunrise"),
        ("[[csms_outages]]\nfrom = \"+5m\"\n", "csms_outages[0].to: required"),
        ("[simulation]\nreaction_delay_s = -1\n", "simulation.reaction_delay_s: must be at least 0"),
    ],
)
def test_a_bad_scenario_is_refused_with_the_field_at_fault(extra, message):
    with pytest.raises(ScenarioError) as caught:
        scenario(extra)
    assert str(caught.value).startswith("test.toml: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("name = 'x'\n[site]\nfuse_a = 32\n", "duration: required"),
        ("name = 'x'\nduration = '1h'\n", "site: required"),
        ("name = 'x'\nduration = '1h'\n[site]\nfuse_a = 32\n", "chargers: at least one"),
        ("name = 'x'\nduration = '1h'\n[site]\nfuse_a = 32\nmargin_a = 40\n", "site.margin_a: must be smaller"),
        ("name = 'x'\nduration = 'soon'\n[site]\nfuse_a = 32\n", "duration: expected seconds"),
        ("name = 'x'\nduration = '1h'\nstart = '7am'\n[site]\nfuse_a = 32\n", "start: expected a time of day"),
        ("duration = '1h'\n[site]\nfuse_a = 32\n", "name: required"),
        ("name = [unclosed\n", "not valid TOML"),
        ("colour = 'blue'\n" + MINIMAL, "scenario: unknown field(s) colour"),
    ],
)
def test_a_scenario_missing_what_it_needs_says_so(base, message):
    with pytest.raises(ScenarioError, match="^test.toml: ") as caught:
        parse_scenario(base, source="test.toml")
    assert message in str(caught.value)


@pytest.mark.parametrize(("text", "seconds"), [("90m", 5400), ("1h30m", 5400), ("45s", 45), (" 2h ", 7200), ("12.5", 12.5), (600, 600)])
def test_durations_read_as_seconds(text, seconds):
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1d", "-5", 0, True, None, "1h-2m", float("nan")])
def test_a_bad_duration_is_a_scenario_error(text):
    with pytest.raises(ScenarioError):
        parse_duration_s(text)


@given(
    levels=st.lists(st.tuples(st.floats(0, 200), st.floats(0, 200), st.floats(0, 200)), min_size=1, max_size=5),
    at_s=st.floats(0, 7200),
)
def test_the_base_load_is_always_finite_and_never_negative(levels, at_s):
    steps = "".join(f"[[base_load.steps]]\nat = {600 * (index + 1)}\ncurrent_a = [{a}, {b}, {c}]\n" for index, (a, b, c) in enumerate(levels))
    parsed = scenario('[base_load]\ncurve = [["00:00", 0.5], ["12:00", 1.5]]\n' + steps)
    load = parsed.base_load_a(at_s)
    assert all(math.isfinite(value) and value >= 0 for value in load)

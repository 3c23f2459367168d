"""The demo's closing report (sitesim/report.py): grid against the limit, energy, cars, billing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitesim.report import CarOutcome, billing_check, build_report, phase_reports


def frame(action: str, payload: dict, unique_id: str = "1") -> str:
    return json.dumps([2, unique_id, action, payload])


START = frame("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 100, "timestamp": "2026-12-02T10:00:00Z"})
STOP = frame("StopTransaction", {"transactionId": 7, "meterStop": 900, "timestamp": "2026-12-02T11:00:00Z"})


def samples(*values_l1: float, step_s: float = 1.0):
    return [(index * step_s, {"L1": value, "L2": 0.0, "L3": 0.0}) for index, value in enumerate(values_l1)]


def test_time_above_the_limit_counts_each_stretch_and_the_longest_one():
    (l1, l2, _) = phase_reports(samples(30, 41, 42, 30, 45, 30), 40)
    assert l1.peak_a == 45 and l1.above_s == 3 and l1.longest_above_s == 2
    assert l2.above_s == 0 and l2.peak_a == 0


def test_a_current_exactly_at_the_limit_is_not_above_it():
    (l1, _, _) = phase_reports(samples(40, 40, 40), 40)
    assert l1.above_s == 0 and l1.peak_a == 40


def test_no_samples_make_an_empty_but_valid_grid_report():
    assert [phase.peak_a for phase in phase_reports([], 40)] == [0, 0, 0]


@given(st.lists(st.floats(0, 100), max_size=40), st.floats(1, 99))
def test_the_longest_stretch_never_exceeds_the_total_time_above(values, limit_a):
    for phase in phase_reports(samples(*values), limit_a):
        assert 0 <= phase.longest_above_s <= phase.above_s <= max(0, len(values) - 1)


def test_every_transaction_received_once_is_billed_exactly_once_even_with_a_new_transaction_id():
    relayed_stop = STOP.replace('"transactionId": 7', '"transactionId": 2000000001')  # rewritten after an outage
    billing = billing_check({"CP1": [START, STOP]}, {"CP1": [START, relayed_stop]})
    assert billing.billed_exactly_once
    assert (billing.chargers[0].starts_sent, billing.chargers[0].starts_received) == (1, 1)
    assert billing.transactions_started == 1


def test_a_lost_stop_transaction_is_reported_missing():
    billing = billing_check({"CP1": [START, STOP]}, {"CP1": [START]})
    assert not billing.billed_exactly_once
    assert billing.chargers[0].missing == ("StopTransaction meterStop=900 timestamp=2026-12-02T11:00:00Z",)


def test_a_start_transaction_received_twice_is_reported_duplicated():
    billing = billing_check({"CP1": [START]}, {"CP1": [START, frame("StartTransaction", json.loads(START)[3], "again")]})
    assert not billing.billed_exactly_once
    assert billing.chargers[0].duplicated and not billing.chargers[0].missing


def test_a_transaction_the_charger_never_sent_is_reported_unexpected():
    billing = billing_check({"CP1": []}, {"CP1": [START]})
    assert billing.chargers[0].unexpected and not billing.billed_exactly_once


def test_malformed_frames_and_answers_are_not_counted_as_calls():
    billing = billing_check({"CP1": ["[2, broken", json.dumps([3, "1", {}]), "null", START]}, {"CP1": [START]})
    assert billing.calls_sent == {"StartTransaction": 1} and billing.billed_exactly_once


def car(charge_box_id="CP1", wanted=10_000, delivered=10_000, departed=True):
    return CarOutcome(charge_box_id, 0.0, 3600.0 if departed else None, wanted, delivered, departed)


def report(cars, grid=(30, 30), billing=None, bound_s=2.5):
    return build_report(
        scenario="test", speed=60, scenario_s=3600, wall_s=60, limit_a=40, reaction_bound_s=bound_s,
        samples=samples(*grid), cars=cars, billing=billing or billing_check({"CP1": [START, STOP]}, {"CP1": [START, STOP]}),
        charge_box_ids=["CP1", "CP2"],
    )


def test_a_good_run_is_ok_and_says_so():
    result = report([car(), car(delivered=8_000)])
    assert result.ok and result.within_reaction_bound
    assert result.energy_delivered_wh == {"CP1": 18_000, "CP2": 0.0}
    text = result.format()
    assert "OK: every transaction billed exactly once" in text
    assert "OK: never above the limit longer than the reaction bound" in text
    assert "CP1                 18.0 kWh  (2 cars)" in text


def test_only_cars_that_left_short_of_their_energy_count_as_unsatisfied():
    result = report([car(delivered=5_000), car("CP2", delivered=5_000, departed=False), car(delivered=9_850)])
    assert [c.energy_delivered_wh for c in result.unsatisfied_cars] == [5_000]
    assert "Cars that left unsatisfied:" in result.format() and "Still plugged in" in result.format()


def test_a_car_without_energy_or_a_long_excursion_or_a_billing_gap_fails_the_report():
    assert not report([car(delivered=0)]).ok
    long_excursion = report([car()], grid=(30, 41, 41, 41, 41, 30))
    assert long_excursion.longest_above_s == 4 and not long_excursion.ok
    assert "NOT OK: above the limit for 4.0 s" in long_excursion.format()
    unbilled = report([car()], billing=billing_check({"CP1": [START, STOP]}, {"CP1": [START]}))
    assert not unbilled.ok and "NOT OK CP1: missing StopTransaction" in unbilled.format()


def test_the_report_serialises_to_json_with_its_verdicts():
    data = json.loads(report([car()]).to_json())
    assert data["ok"] is True and data["billing"]["billed_exactly_once"] is True
    assert [phase["phase"] for phase in data["phases"]] == ["L1", "L2", "L3"]


@pytest.mark.parametrize("balancing", ["on", "off: this LinkRay has no balancing API yet"])
def test_the_report_says_when_balancing_was_not_applied(balancing):
    result = build_report(
        scenario="t", speed=1, scenario_s=1, wall_s=1, limit_a=40, reaction_bound_s=1, samples=[], cars=[],
        billing=billing_check({}, {}), balancing=balancing,
    )
    assert ("balancing: off" in result.format()) == (balancing != "on")

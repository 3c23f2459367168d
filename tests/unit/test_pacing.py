"""balancing.pacing: reductions at once, increases paced, small changes not sent. Pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from balancing.allocation import Allocation, ChargerAllocation, Reason
from balancing.pacing import SentLimit, plan_sends

NOW_S = 1_000.0


def allocation_of(*limits, capacity_left_a=0.0, reason=Reason.FAIR_SHARE):
    chargers = tuple(ChargerAllocation(name, limit_a, limit_a * 690.0, reason) for name, limit_a in limits)
    return Allocation(chargers, 32.0, "site limit", (0.0, 0.0, 0.0), capacity_left_a, False)


def names(planned):
    return [charger.charge_box_id for charger in planned]


def test_a_reduction_is_sent_at_once():
    planned = plan_sends(allocation_of(("A", 10.0)), {"A": SentLimit(16.0, NOW_S - 0.1)}, now_s=NOW_S)
    assert [(charger.charge_box_id, charger.limit_a) for charger in planned] == [("A", 10.0)]


def test_an_increase_waits_for_the_interval_since_the_last_send():
    allocation = allocation_of(("A", 16.0))
    assert plan_sends(allocation, {"A": SentLimit(10.0, NOW_S - 4.9)}, now_s=NOW_S, increase_interval_s=5.0) == []
    assert names(plan_sends(allocation, {"A": SentLimit(10.0, NOW_S - 5.0)}, now_s=NOW_S, increase_interval_s=5.0)) == ["A"]


def test_an_unchanged_limit_is_not_sent():
    assert plan_sends(allocation_of(("A", 16.0)), {"A": SentLimit(16.0, 0.0)}, now_s=NOW_S) == []


def test_a_small_increase_is_not_sent():
    assert plan_sends(allocation_of(("A", 16.9)), {"A": SentLimit(16.0, 0.0)}, now_s=NOW_S, deadband_a=1.0) == []


def test_a_small_reduction_waits_while_the_headroom_covers_it():
    sent = {"A": SentLimit(16.0, 0.0)}
    assert plan_sends(allocation_of(("A", 15.5), capacity_left_a=1.0), sent, now_s=NOW_S) == []
    assert names(plan_sends(allocation_of(("A", 15.5), capacity_left_a=0.2), sent, now_s=NOW_S)) == ["A"]


def test_the_headroom_for_small_reductions_leaves_out_what_idle_chargers_hold_in_standby():
    chargers = (ChargerAllocation("A", 15.5, 0.0, Reason.FAIR_SHARE),)
    allocation = Allocation(chargers, 32.0, "site limit", (0.0, 0.0, 0.0), 6.2, False, standby_left_a=0.2)
    assert names(plan_sends(allocation, {"A": SentLimit(16.0, 0.0)}, now_s=NOW_S)) == ["A"]


def test_small_reductions_together_beyond_the_headroom_are_sent():
    sent = {"A": SentLimit(16.0, 0.0), "B": SentLimit(16.0, 0.0), "C": SentLimit(16.0, 0.0)}
    allocation = allocation_of(("A", 15.6), ("B", 15.5), ("C", 15.2), capacity_left_a=1.0)
    # 0.4 + 0.5 fit in 1 A of headroom; 0.8 more does not.
    assert names(plan_sends(allocation, sent, now_s=NOW_S)) == ["C"]


def test_in_failsafe_every_reduction_is_sent():
    failsafe = Allocation((ChargerAllocation("A", 15.5, 0.0, Reason.FAILSAFE),), 32.0, "site limit", None, None, True)
    assert names(plan_sends(failsafe, {"A": SentLimit(16.0, 0.0)}, now_s=NOW_S)) == ["A"]


def test_pausing_and_resuming_are_sent_whatever_the_deadband():
    assert names(plan_sends(allocation_of(("A", 0.0)), {"A": SentLimit(0.5, 0.0)}, now_s=NOW_S, deadband_a=1.0)) == ["A"]
    assert names(plan_sends(allocation_of(("A", 0.5)), {"A": SentLimit(0.0, 0.0)}, now_s=NOW_S, deadband_a=1.0)) == ["A"]


def test_resuming_is_paced_like_any_increase():
    assert plan_sends(allocation_of(("A", 6.0)), {"A": SentLimit(0.0, NOW_S - 1.0)}, now_s=NOW_S) == []


def test_a_charger_never_sent_to_gets_its_limit():
    assert names(plan_sends(allocation_of(("A", 16.0)), {}, now_s=NOW_S)) == ["A"]


def test_a_forced_charger_gets_its_limit_even_when_unchanged_or_recent():
    sent = {"A": SentLimit(16.0, NOW_S), "B": SentLimit(10.0, NOW_S)}
    planned = plan_sends(allocation_of(("A", 16.0), ("B", 16.0)), sent, now_s=NOW_S, force={"A", "B"})
    assert names(planned) == ["A", "B"]


def test_a_not_controllable_charger_is_never_sent_even_when_forced():
    allocation = allocation_of(("A", 16.0), reason=Reason.NOT_CONTROLLABLE)
    assert plan_sends(allocation, {}, now_s=NOW_S, force={"A"}) == []


def test_reductions_come_before_increases():
    sent = {"UP": SentLimit(6.0, 0.0), "DOWN": SentLimit(16.0, 0.0)}
    planned = plan_sends(allocation_of(("UP", 16.0), ("DOWN", 6.0)), sent, now_s=NOW_S)
    assert names(planned) == ["DOWN", "UP"]


limits = st.integers(min_value=0, max_value=630).map(lambda tenths: tenths / 10)  # as allocate rounds them


@given(st.lists(st.tuples(limits, limits, st.floats(min_value=0, max_value=NOW_S)), max_size=20),
       st.floats(min_value=0, max_value=10))
def test_no_limit_changing_by_less_than_the_deadband_is_sent_unless_it_pauses_resumes_or_cuts_into_the_headroom(
        rows, capacity_left_a):
    allocation = allocation_of(*[(f"CP{index}", new) for index, (new, _, _) in enumerate(rows)],
                               capacity_left_a=capacity_left_a)
    sent = {f"CP{index}": SentLimit(old, at) for index, (_, old, at) in enumerate(rows)}
    planned = plan_sends(allocation, sent, now_s=NOW_S)
    skipped_excess_a = 0.0
    for index, (new, old, at) in enumerate(rows):
        name = f"CP{index}"
        was_sent = name in names(planned)
        if new > old and (new - old >= 1.0 or old == 0.0) and NOW_S - at >= 5.0:
            assert was_sent
        if new < old and (old - new >= 1.0 or new == 0.0):
            assert was_sent
        if abs(new - old) < 1.0 and new != 0.0 and old != 0.0 and new != old and not was_sent:
            skipped_excess_a += max(0.0, old - new)
        if new == old:
            assert not was_sent
    assert skipped_excess_a <= capacity_left_a + 1e-6

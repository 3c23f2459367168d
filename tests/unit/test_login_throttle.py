"""Login throttling rules (accounts.throttle): pure, clock as an argument."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from accounts.throttle import ThrottlePolicy, after_failure, wait_s

POLICY = ThrottlePolicy(max_failures=5, window_s=900, base_delay_s=5, max_delay_s=900)


def failures(count: int, start: float = 1000.0, step: float = 1.0) -> tuple[float, ...]:
    history: tuple[float, ...] = ()
    for index in range(count):
        history = after_failure(history, start + index * step, POLICY)
    return history


def test_four_failures_do_not_slow_the_next_attempt():
    assert wait_s(failures(4), 1004.0, POLICY) == 0


def test_the_fifth_failure_makes_the_next_attempt_wait_the_base_delay():
    history = failures(5)
    assert wait_s(history, 1004.0, POLICY) == 5
    assert wait_s(history, 1009.0, POLICY) == 0


def test_each_further_failure_doubles_the_wait():
    assert wait_s(failures(6), 1005.0, POLICY) == 10
    assert wait_s(failures(7), 1006.0, POLICY) == 20


def test_the_wait_is_capped():
    assert wait_s(failures(40), 1039.0, POLICY) == 900


def test_failures_older_than_the_window_are_forgotten():
    assert wait_s(failures(5), 1004.0 + 901, POLICY) == 0


@given(st.lists(st.floats(min_value=0, max_value=1e6), max_size=60), st.floats(min_value=0, max_value=2e6))
def test_the_wait_is_never_negative_nor_over_the_cap(times, now):
    history: tuple[float, ...] = ()
    for at in sorted(times):
        history = after_failure(history, at, POLICY)
    assert 0 <= wait_s(history, now, POLICY) <= POLICY.max_delay_s
    assert len(history) <= POLICY.max_failures + 16

"""A charger's frame budget: real chargers never feel it, a flood is slowed to the set rate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.throttle import FrameBudget, FrameBudgetConfig

CONFIG = FrameBudgetConfig(frames_per_s=50, burst_frames=500, bytes_per_s=256 * 1024, burst_bytes=2 * 1024 * 1024)


def test_a_charger_sending_like_a_real_one_is_never_held_back():
    budget = FrameBudget(CONFIG, now=0.0)
    # A boot burst of 100 frames, then a MeterValues every second for an hour.
    assert all(budget.spend(300, 0.0) == 0.0 for _ in range(100))
    assert all(budget.spend(2000, float(second)) == 0.0 for second in range(1, 3600))


def test_a_flood_waits_for_its_budget_to_refill():
    budget = FrameBudget(CONFIG, now=0.0)
    waits = [budget.spend(50, 0.0) for _ in range(600)]
    assert waits[:500] == [0.0] * 500
    assert waits[-1] == 100 / 50  # 100 frames over the burst at 50 frames/s


def test_big_frames_wait_for_their_bytes():
    budget = FrameBudget(CONFIG, now=0.0)
    waits = [budget.spend(256 * 1024, 0.0) for _ in range(10)]
    assert waits[:8] == [0.0] * 8
    assert waits[9] == 2.0  # two frames over the 2 MiB burst at 256 KiB/s


def test_zero_rates_mean_no_limit():
    budget = FrameBudget(FrameBudgetConfig(frames_per_s=0, bytes_per_s=0), now=0.0)
    assert all(budget.spend(10**9, 0.0) == 0.0 for _ in range(1000))


@given(st.lists(st.tuples(st.integers(0, 10**7), st.floats(0, 10)), max_size=200))
def test_the_wait_is_never_negative_nor_longer_than_the_deficit_allows(frames):
    budget = FrameBudget(CONFIG, now=0.0)
    now = 0.0
    for size, step in frames:
        now += step
        wait = budget.spend(size, now)
        assert 0.0 <= wait <= (len(frames) / 50) + (sum(s for s, _ in frames) / (256 * 1024)) + 1e-6

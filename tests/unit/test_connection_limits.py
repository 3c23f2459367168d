"""Per-address and whole-process socket limits (gateway.connection_limits)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from gateway.connection_limits import ConnectionLimits, Refusal, charger_capacity, retry_after_s


def test_an_address_at_its_limit_is_refused_while_others_are_not():
    limits = ConnectionLimits(max_per_address=2, max_total=100)
    assert limits.try_open("10.0.0.1") is None
    assert limits.try_open("10.0.0.1") is None
    assert limits.try_open("10.0.0.1") == Refusal("address_limit", 2, 2)
    assert limits.try_open("10.0.0.2") is None


def test_a_released_socket_makes_room_for_the_next_one():
    limits = ConnectionLimits(max_per_address=1, max_total=100)
    assert limits.try_open("10.0.0.1") is None
    limits.release("10.0.0.1")
    assert limits.try_open("10.0.0.1") is None


def test_the_process_refuses_beyond_its_capacity_whatever_the_address():
    limits = ConnectionLimits(max_per_address=10, max_total=2)
    assert limits.try_open("a") is None
    assert limits.try_open("b") is None
    assert limits.try_open("c") == Refusal("capacity", 2, 2)


def test_releasing_an_address_that_holds_nothing_changes_nothing():
    limits = ConnectionLimits(max_per_address=1, max_total=1)
    limits.release("nobody")
    assert limits.total == 0
    assert limits.try_open("a") is None


def test_capacity_leaves_room_for_other_files_and_counts_two_per_charger():
    assert charger_capacity(20000) == (20000 - 256) // 2
    assert charger_capacity(10) == 1
    assert charger_capacity(-1) >= 1_000_000


def test_retry_after_is_jittered_between_the_base_and_twice_it():
    rng = random.Random(7)
    delays = {retry_after_s(10, rng) for _ in range(200)}
    assert min(delays) >= 10 and max(delays) <= 20
    assert len(delays) > 5


@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["a", "b", "c"])), max_size=200))
def test_counts_never_exceed_the_limits_nor_go_negative(operations):
    limits = ConnectionLimits(max_per_address=3, max_total=5)
    held: dict[str, int] = {}
    for opening, address in operations:
        if opening:
            if limits.try_open(address) is None:
                held[address] = held.get(address, 0) + 1
        elif held.get(address):
            limits.release(address)
            held[address] -= 1
        assert limits.total == sum(held.values()) <= 5
        assert all(limits.open_count(name) == count <= 3 for name, count in held.items())

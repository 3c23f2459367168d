"""The two runners of the control cycle: the embedded loop's wake-ups and the Celery task's lock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.cache import cache

from balancing import control, tasks
from balancing.loop import BalancingLoop, reading_over_limit
from gateway import observe
from gateway.state import Phases, Transaction
from meters.readings import MeterReading

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clean_cache():
    cache.clear()
    yield
    cache.clear()


def reading(l1, l2, l3):
    return MeterReading(measured_at=NOW, current_a=Phases(l1, l2, l3))


def test_a_reading_over_the_limit_in_force_minus_margin_wakes_balancing():
    status = {"limit_in_force_a": 32.0, "margin_a": 2.0}
    assert reading_over_limit(reading(10, 30.5, 10), status)
    assert not reading_over_limit(reading(10, 30.0, 10), status)
    assert not reading_over_limit(reading(99, 99, 99), None)  # no cycle yet: nothing to compare with


async def test_a_transaction_start_or_stop_wakes_the_loop_other_effects_do_not():
    loop = BalancingLoop()
    loop.on_effect("CP-1", observe.AuthorizationKeyChanged("00"))
    assert not loop.wake.is_set()
    loop.on_effect("CP-1", observe.TransactionStarted(Transaction(1, 1, "T", 0, NOW)))
    assert loop.wake.is_set()
    loop.wake.clear()
    loop.on_effect("CP-1", observe.TransactionStopped(1, 1, 10, NOW, "Local"))
    assert loop.wake.is_set()


@pytest.mark.django_db
def test_only_one_worker_runs_a_cycle_at_a_time(monkeypatch):
    ran = []

    async def fake_cycle(now):
        ran.append(now)
        return control.CycleResult(None)

    monkeypatch.setattr(control, "run_cycle", fake_cycle)
    cache.add(tasks.LOCK_KEY, "another-worker", timeout=30)
    assert tasks.run_cycle_once() == "busy" and ran == []
    cache.delete(tasks.LOCK_KEY)
    assert tasks.run_cycle_once() == "ran" and len(ran) == 1
    assert cache.get(tasks.LOCK_KEY) is None  # released


@pytest.mark.django_db
def test_beat_keeps_the_control_period_but_an_on_demand_cycle_runs_at_once(monkeypatch):
    ran = []

    async def fake_cycle(now):
        ran.append(now)
        return control.CycleResult(None)

    monkeypatch.setattr(control, "run_cycle", fake_cycle)
    cache.set(control.SITE_STATUS_CACHE_KEY, {"control_period_s": 30.0})
    assert tasks.run_cycle_once() == "ran"
    assert tasks.run_cycle_once() == "not due"
    assert tasks.run_cycle_once(on_demand=True) == "ran"
    assert len(ran) == 2

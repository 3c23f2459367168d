"""The poller: published status, staleness, recovery, history, the embedded loop and the
Celery task, against pymodbus's real server on loopback."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache
from django.test import override_settings

from meters import live, selectors, services, tasks
from meters.loop import run_meter_polling
from meters.models import Meter, MeterHistory
from meters.poller import MeterConfig, MeterPoller
from meters.polling import Connection
from meters.simulator import SimulatedMeter
from tests.peers.meter import MeterPeer, SilentServer, SimulateMeterProcess, known_values, meter_map
from tests.peers.waiting import wait_for

START = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
def fresh_live_store():
    live.clear()
    yield
    live.clear()


def config_for(connection: Connection, *, meter_id: int = 1, name: str = "grid", role: str = "grid", model_key: str = "sdm630", stale_after_s: float = 5.0) -> MeterConfig:
    return MeterConfig(
        meter_id=meter_id, name=name, model_key=model_key, role=role, connection=connection, unit_id=1,
        poll_interval_s=1.0, stale_after_s=stale_after_s,
    )


async def test_a_poll_publishes_the_reading_for_balancing_until_it_goes_stale():
    clock = FakeClock()
    poller = MeterPoller(clock=clock)
    async with MeterPeer.of("sdm630") as peer:
        config = config_for(peer.connection())
        poller.apply([config])
        status = await poller.poll(config)
    poller.close()
    assert status.error == "" and status.requests_per_poll == 1
    reading = selectors.grid_reading(clock.now)
    assert reading is not None and reading.current_a.l1 == pytest.approx(known_values(meter_map("sdm630"))["current_a.l1"])
    assert selectors.grid_reading(clock.now + timedelta(seconds=4.9)) is reading
    # Older than its staleness limit: never handed out as fresh; still visible as the last one.
    assert selectors.grid_reading(clock.now + timedelta(seconds=5.1)) is None
    assert selectors.fresh_reading(1, clock.now + timedelta(seconds=5.1)) is None
    assert selectors.latest_reading(1) is reading


async def test_a_grid_reading_without_every_phase_current_is_not_used():
    values = {**known_values(meter_map("sdm630")), "current_a.l2": float("nan")}
    clock = FakeClock()
    poller = MeterPoller(clock=clock)
    async with MeterPeer.of("sdm630", values) as peer:
        config = config_for(peer.connection())
        poller.apply([config])
        await poller.poll(config)
    poller.close()
    assert selectors.latest_reading(1).current_a.l2 is None
    assert selectors.grid_reading(clock.now) is None


async def test_no_grid_meter_means_no_grid_reading():
    poller = MeterPoller()
    async with MeterPeer.of("sdm630") as peer:
        config = config_for(peer.connection(), role="pv")
        poller.apply([config])
        assert (await poller.poll(config)).error == ""
    poller.close()
    assert selectors.grid_reading(datetime.now(UTC)) is None
    assert selectors.fresh_reading(1, datetime.now(UTC)) is not None


async def test_a_vanished_meter_goes_stale_shows_its_error_and_recovers_by_itself(caplog):
    caplog.set_level(logging.INFO, logger="meters")
    clock = FakeClock()
    poller = MeterPoller(clock=clock)
    peer = await MeterPeer.of("sdm630").start()
    config = config_for(peer.connection(timeout_s=0.2), stale_after_s=3.0)
    poller.apply([config])
    try:
        assert (await poller.poll(config)).error == ""
        good_reading = selectors.latest_reading(1)
        await peer.stop()
        for _ in range(4):
            clock.advance(1)
            status = await poller.poll(config)
        assert status.consecutive_failures == 4
        assert "cannot connect to 127.0.0.1" in status.error
        assert status.reading is good_reading  # the last good reading is kept, with its age
        assert status.is_stale(clock.now) and selectors.grid_reading(clock.now) is None
        warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("meter_unavailable")]
        assert warnings[0].startswith("meter_unavailable meter=grid reason=")
        assert len(warnings) <= 2  # once per distinct reason, not once per poll
        await peer.start()
        clock.advance(1)
        status = await poller.poll(config)
        assert status.error == "" and status.consecutive_failures == 0
        assert selectors.grid_reading(clock.now) is status.reading
        assert any(r.getMessage() == "meter_recovered meter=grid failed_polls=4" for r in caplog.records)
    finally:
        poller.close()
        await peer.stop()


async def test_an_unknown_model_is_an_error_state_not_a_crash():
    poller = MeterPoller()
    config = config_for(Connection("tcp", "127.0.0.1", 9, timeout_s=0.2), model_key="no_such_meter")
    poller.apply([config])
    status = await poller.poll(config)
    assert "unknown meter model 'no_such_meter'" in status.error


@pytest.mark.django_db(transaction=True)
async def test_history_is_kept_as_ten_second_buckets_and_pruned():
    meter = await Meter.objects.acreate(name="grid", model_key="sdm630", transport="tcp", host="127.0.0.1")
    clock = FakeClock(START + timedelta(seconds=0.5))
    poller = MeterPoller(clock=clock, history_bucket_s=10)
    currents = iter([10.0, 12.0, 14.0] * 20)
    values = dict(known_values(meter_map("sdm630")))

    def changing_values():
        values["current_a.l1"] = next(currents)
        return values

    async with MeterPeer([SimulatedMeter(meter_map("sdm630"), changing_values)]) as peer:
        config = config_for(peer.connection(), meter_id=meter.pk)
        poller.apply([config])
        for _ in range(25):  # 12:00:00.5 .. 12:00:24.5: buckets :00 and :10 close, :20 stays open
            await poller.poll(config)
            clock.advance(1)
    poller.close()
    rows = [row async for row in MeterHistory.objects.filter(meter=meter).order_by("start_at")]
    assert [row.start_at for row in rows] == [START, START + timedelta(seconds=10)]
    assert rows[0].samples == 10
    average, minimum, maximum, samples = rows[0].values["current_a.l1"]
    assert (minimum, maximum, samples) == (10.0, 14.0, 10)
    assert 10.0 < average < 14.0
    # Buckets written twice (two workers) merge instead of failing.
    await poller.flush_history()
    assert await MeterHistory.objects.filter(meter=meter).acount() == 3

    history = await database_sync_to_async(selectors.meter_history)(meter.pk, START - timedelta(hours=1))
    assert len(history) == 3
    deleted = await database_sync_to_async(services.prune_history)(START + timedelta(hours=48, seconds=15), 48)
    assert deleted == 2
    assert await MeterHistory.objects.filter(meter=meter).acount() == 1


@pytest.mark.django_db(transaction=True)
async def test_the_embedded_loop_polls_each_meter_on_its_own_and_follows_config_changes():
    async with MeterPeer.of("sdm630") as peer, SilentServer() as silent:
        grid = await Meter.objects.acreate(
            name="grid", model_key="sdm630", transport="tcp", host="127.0.0.1", port=peer.port, poll_interval_s=0.2,
            stale_after_s=2, timeout_s=0.5,
        )
        poller_task = asyncio.create_task(run_meter_polling(MeterPoller(), reload_interval_s=0.1))
        try:
            await wait_for(lambda: selectors.grid_reading(datetime.now(UTC)), 5, "first grid reading")

            # A meter that never answers does not hold up the grid meter.
            dead = await Meter.objects.acreate(
                name="dead", model_key="sdm630", role="pv", transport="tcp", host="127.0.0.1", port=silent.port,
                poll_interval_s=0.2, stale_after_s=2, timeout_s=1.0,
            )
            await wait_for(lambda: (s := selectors.meter_status(dead.pk)) and s.consecutive_failures >= 2, 8, "dead meter polled")
            before = selectors.meter_status(grid.pk).reading.measured_at
            await wait_for(lambda: selectors.meter_status(grid.pk).reading.measured_at >= before + timedelta(seconds=0.6), 5, "grid polls continuing")
            assert "no answer from unit 1" in selectors.meter_status(dead.pk).error

            # An edit (wrong unit id) takes effect without a restart, then a fix recovers it.
            await Meter.objects.filter(pk=grid.pk).aupdate(unit_id=9)
            await wait_for(lambda: "unit 9" in selectors.meter_status(grid.pk).error, 5, "edited unit id used")
            await Meter.objects.filter(pk=grid.pk).aupdate(unit_id=1)
            await wait_for(lambda: selectors.meter_status(grid.pk).error == "", 5, "recovered after the fix")

            # Disabled or deleted meters are no longer polled or published.
            await Meter.objects.filter(pk=dead.pk).aupdate(enabled=False)
            await wait_for(lambda: selectors.meter_status(dead.pk) is None, 5, "disabled meter forgotten")
            await grid.adelete()
            await wait_for(lambda: live.get_grid_meter_id() is None, 5, "grid meter gone")
        finally:
            poller_task.cancel()
            await asyncio.gather(poller_task, return_exceptions=True)


LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "meters-test"}}
REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/11",  # not the e2e stack's db: clear() flushes it
        "KEY_PREFIX": "meters-test",
    }
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("caches", [LOCMEM, pytest.param(REDIS, marks=pytest.mark.scaleout)], ids=["locmem", "redis"])
def test_the_celery_task_polls_due_meters_through_the_cache(tmp_path, monkeypatch, caches):
    simulator = SimulateMeterProcess("--model", "em340", "--port", "0", "--no-chargers", log_path=tmp_path / "sim.log").start()
    monkeypatch.setattr(tasks, "_poller", None)
    monkeypatch.setattr(tasks, "_configs_loaded_at", None)
    try:
        with override_settings(LINKRAY_EMBEDDED=False, CACHES=caches):
            meter = Meter.objects.create(
                name="grid", model_key="em340", transport="tcp", host="127.0.0.1", port=simulator.port, poll_interval_s=1,
            )
            assert tasks.poll_due_meters_task() == 1
            status = selectors.meter_status(meter.pk)
            assert status is not None and status.error == "", status
            assert live._memory == {}  # scale-out keeps it in the cache, shared by processes
            assert selectors.grid_reading(datetime.now(UTC)).current_a.l1 == pytest.approx(6.0)
            assert tasks.poll_due_meters_task() == 0  # polled a moment ago: not due yet
            status = selectors.meter_status(meter.pk)
            live.put_status(replace(status, last_poll_at=status.last_poll_at - timedelta(seconds=2)))
            cache.add(f"meters:polling:{meter.pk}", True, 30)  # another worker is polling it
            assert tasks.poll_due_meters_task() == 0
            cache.delete(f"meters:polling:{meter.pk}")
            assert tasks.poll_due_meters_task() == 1
            cache.clear()
    finally:
        if tasks._poller is not None:
            tasks._poller.close()
        simulator.stop()

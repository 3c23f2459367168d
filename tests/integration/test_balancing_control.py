"""The control cycle with the real database: snapshot -> allocation -> pacing -> SetChargingProfile.

The charger end is replaced at `gateway.commands.send_call`, a seam of our own: each test's
`FakeChargers` answers like a charger would and records what LinkRay sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from balancing import control
from balancing.models import ChargerBalancing, Setpoint, SiteSettings
from gateway import commands, profiles
from gateway.models import Charger
from gateway.state import ChargerState, Phases, Transaction
from meters import live
from meters.readings import MeterReading, MeterStatus

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


class FakeChargers:
    def __init__(self, answers=None):
        self.calls: list[tuple[str, str, dict]] = []
        self.answers = answers or {}

    async def send_call(self, charge_box_id, action, payload, *, timeout_s=None):
        self.calls.append((charge_box_id, action, payload))
        answer = self.answers.get((charge_box_id, action))
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            return answer
        if action == "GetConfiguration":
            return {"configurationKey": [{"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "5"}]}
        return {"status": "Accepted"}

    def limits(self, charge_box_id=None):
        return [
            (cbid, payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"])
            for cbid, action, payload in self.calls
            if action == "SetChargingProfile" and (charge_box_id is None or cbid == charge_box_id)
        ]


@pytest.fixture
def chargers(monkeypatch):
    fake = FakeChargers()
    monkeypatch.setattr(control.commands, "send_call", fake.send_call)
    control._learned.clear()
    control._in_flight.clear()
    cache.clear()
    live.clear()
    yield fake
    live.clear()


def grid(l1, l2, l3, *, at=NOW):
    reading = MeterReading(measured_at=at, current_a=Phases(l1, l2, l3))
    live.put_status(MeterStatus(meter_id=1, role="grid", stale_after_s=5, reading=reading))
    live.put_grid_meter_id(1)


def connected_charger(charge_box_id, *, charging=True, current_a=(0.0, 0.0, 0.0), csms_profiles=(), **settings):
    state = ChargerState(charge_box_id, charger_connected=True)
    state.connector(1).status = "Charging" if charging else "Available"
    state.connector(1).meter.current_a = Phases(*current_a)
    if charging:
        state.transactions[7] = Transaction(7, 1, "TAG", 0, NOW - timedelta(minutes=5))
    state.csms_profiles = list(csms_profiles)
    charger = Charger.objects.create(
        charge_box_id=charge_box_id,
        charger_connected=True,
        charger_connected_at=NOW - timedelta(hours=1),
        balancing_enabled=True,
        state=state.to_dict(),
    )
    ChargerBalancing.objects.create(charger=charger, **settings)
    return charger


def site(**fields):
    settings = SiteSettings.load()
    for name, value in {"grid_limit_a": 32, **fields}.items():
        setattr(settings, name, value)
    settings.save()
    return settings


async def cycle(now=NOW):
    return await control.run_cycle(now)


async def test_two_equal_chargers_share_what_the_building_leaves(chargers):
    await site_async(grid_limit_a=40)
    await charger_async("CP-A")
    await charger_async("CP-B")
    grid_async(10, 10, 10)  # the building alone: the chargers draw nothing yet
    result = await cycle()
    assert sorted(result.sent) == ["CP-A", "CP-B"]
    assert sorted(chargers.limits()) == [("CP-A", 15), ("CP-B", 15)]
    row = await ChargerBalancing.objects.aget(charger__charge_box_id="CP-A")
    assert row.limit_a == 15 and row.reason == "fair share" and row.sent_limit == 15


async def test_linkray_installs_a_charge_point_max_profile_at_the_charger_s_top_stack_level(chargers):
    await site_async()
    await charger_async("CP-A")
    grid_async(0, 0, 0)
    await cycle()
    actions = [action for _, action, _ in chargers.calls]
    assert actions == ["GetConfiguration", "SetChargingProfile"]
    request = chargers.calls[1][2]
    assert request["connectorId"] == 0
    profile = request["csChargingProfiles"]
    assert profile["chargingProfilePurpose"] == "ChargePointMaxProfile" and profile["stackLevel"] == 5
    assert profile["chargingProfileId"] == profiles.BALANCING_PROFILE_ID


async def test_a_stale_meter_sends_every_charger_to_the_failsafe_current(chargers):
    await site_async(failsafe_current_a=6)
    await charger_async("CP-A")
    await charger_async("CP-B")
    grid_async(0, 0, 0, at=NOW - timedelta(seconds=60))
    result = await cycle()
    assert result.allocation.failsafe
    assert sorted(chargers.limits()) == [("CP-A", 6), ("CP-B", 6)]
    assert (await ChargerBalancing.objects.aget(charger__charge_box_id="CP-B")).reason == "failsafe"


async def test_a_csms_tx_default_profile_caps_linkray_s_limit(chargers):
    await site_async(grid_limit_a=63)
    tx_default = profiles_installed("TxDefaultProfile", 8)
    await charger_async("CP-A", csms_profiles=[tx_default])
    grid_async(0, 0, 0)
    await cycle()
    assert chargers.limits() == [("CP-A", 8)]
    assert (await ChargerBalancing.objects.aget(charger__charge_box_id="CP-A")).reason == "capped by CSMS"


async def test_a_charger_that_rejects_the_profile_is_marked_not_controllable(chargers):
    await site_async()
    await charger_async("CP-A")
    chargers.answers[("CP-A", "SetChargingProfile")] = {"status": "Rejected"}
    grid_async(0, 0, 0)
    result = await cycle()
    assert result.refused == ["CP-A"]
    row = await ChargerBalancing.objects.aget(charger__charge_box_id="CP-A")
    assert row.controllable is False and "Rejected" in row.not_controllable_reason
    chargers.calls.clear()
    await cycle(NOW + timedelta(seconds=1))
    assert chargers.limits() == []  # not retried until it reconnects, reboots or starts a transaction
    row = await ChargerBalancing.objects.aget(charger__charge_box_id="CP-A")
    assert row.reason == "not controllable"


async def test_a_timeout_or_not_supported_also_makes_it_not_controllable(chargers):
    await site_async()
    await charger_async("CP-A")
    await charger_async("CP-B")
    chargers.answers[("CP-A", "SetChargingProfile")] = commands.CallTimedOut("no answer")
    chargers.answers[("CP-B", "SetChargingProfile")] = commands.CallErrorReceived("NotSupported", "", {})
    grid_async(0, 0, 0)
    result = await cycle()
    assert sorted(result.refused) == ["CP-A", "CP-B"]
    rows = [row async for row in ChargerBalancing.objects.order_by("charger__charge_box_id")]
    assert [row.controllable for row in rows] == [False, False]
    assert "did not answer" in rows[0].not_controllable_reason and "NotSupported" in rows[1].not_controllable_reason


async def test_an_unchanged_allocation_is_not_sent_again_but_a_new_transaction_is(chargers):
    await site_async(grid_limit_a=20)
    charger = await charger_async("CP-A")
    grid_async(0, 0, 0)
    await cycle()
    chargers.calls.clear()
    await cycle(NOW + timedelta(seconds=1))
    assert chargers.limits() == []
    state = ChargerState.from_dict(charger.state)
    state.transactions[8] = Transaction(8, 1, "TAG", 0, NOW)
    del state.transactions[7]
    await Charger.objects.filter(pk=charger.pk).aupdate(state=state.to_dict())
    await cycle(NOW + timedelta(seconds=2))
    assert chargers.limits() == [("CP-A", 20)]


async def test_a_car_arriving_at_a_charger_left_at_0_a_while_idle_gets_its_share_at_once(chargers):
    await site_async(grid_limit_a=32)
    await charger_async("CP-A", kind="ac1", phases=["L1"], max_current_a=32)
    idle = await charger_async("CP-B", kind="ac1", phases=["L1"], max_current_a=32, charging=False)
    grid_async(0, 0, 0)
    await cycle()
    row = await ChargerBalancing.objects.aget(charger__charge_box_id="CP-B")
    assert (row.limit_a, row.reason, row.sent_limit) == (0, "no car charging", 0)  # CP-A takes the whole phase
    state = ChargerState.from_dict(idle.state)
    state.connector(1).status = "Charging"
    state.transactions[9] = Transaction(9, 1, "TAG", 0, NOW + timedelta(seconds=1))
    await Charger.objects.filter(pk=idle.pk).aupdate(state=state.to_dict())
    await cycle(NOW + timedelta(seconds=2))
    row = await ChargerBalancing.objects.aget(charger__charge_box_id="CP-B")
    assert row.limit_a == 16 and row.reason == "fair share"


async def test_a_draw_reported_before_a_cut_does_not_free_capacity_that_is_not_there(chargers):
    await site_async(grid_limit_a=32)
    first = await charger_async("CP-A", kind="ac1", phases=["L1"], max_current_a=32)
    second = await charger_async("CP-B", kind="ac1", phases=["L1"], max_current_a=32)
    grid_async(0, 0, 0)
    await cycle()
    assert sorted(chargers.limits()) == [("CP-A", 16), ("CP-B", 16)]
    for charger in (first, second):  # both cars draw their 16 A, as their MeterValues say
        state = ChargerState.from_dict(charger.state)
        state.connector(1).meter.current_a = Phases(16.0, None, None)
        await Charger.objects.filter(pk=charger.pk).aupdate(state=state.to_dict())
    grid_async(50, 0, 0, at=NOW + timedelta(seconds=1))  # the building takes 18 A
    chargers.calls.clear()
    await cycle(NOW + timedelta(seconds=1))
    assert sorted(chargers.limits()) == [("CP-A", 7), ("CP-B", 7)]  # cut at once
    # The cars obey (grid 18 + 7 + 7) before their next MeterValues, which still say 16 A each.
    grid_async(32, 0, 0, at=NOW + timedelta(seconds=10))
    await cycle(NOW + timedelta(seconds=10))
    rows = [row async for row in ChargerBalancing.objects.order_by("charger__charge_box_id")]
    assert [row.limit_a for row in rows] == [7, 7]


async def test_a_lower_setpoint_is_obeyed_until_it_expires(chargers):
    await site_async(grid_limit_a=40)
    await charger_async("CP-A")
    await Setpoint.objects.acreate(max_import_a=16, valid_until=NOW + timedelta(seconds=30), set_at=NOW)
    grid_async(0, 0, 0)
    await cycle()
    assert chargers.limits() == [("CP-A", 16)]
    grid_async(0, 0, 0, at=NOW + timedelta(seconds=40))
    chargers.calls.clear()
    await cycle(NOW + timedelta(seconds=40))
    assert chargers.limits() == [("CP-A", 32)]  # its maximum: the site limit is back


async def test_chargers_with_balancing_off_or_not_connected_get_nothing(chargers):
    await site_async()
    off = await charger_async("CP-OFF")
    await Charger.objects.filter(pk=off.pk).aupdate(balancing_enabled=False)
    gone = await charger_async("CP-GONE")
    await Charger.objects.filter(pk=gone.pk).aupdate(charger_connected=False)
    grid_async(0, 0, 0)
    await cycle()
    assert chargers.calls == []
    assert (await ChargerBalancing.objects.aget(charger=gone)).reason == "not connected"


async def test_switching_balancing_off_removes_only_linkray_s_own_profile(chargers):
    await site_async()
    charger = await charger_async("CP-A")
    grid_async(0, 0, 0)
    await cycle()
    await Charger.objects.filter(pk=charger.pk).aupdate(balancing_enabled=False)
    chargers.calls.clear()
    await cycle(NOW + timedelta(seconds=1))
    for task in list(control._in_flight.values()):
        await task
    assert chargers.calls == [("CP-A", "ClearChargingProfile", {"id": profiles.BALANCING_PROFILE_ID})]
    row = await ChargerBalancing.objects.aget(charger=charger)
    assert row.sent_limit is None and row.reason == "balancing off"
    chargers.calls.clear()
    await cycle(NOW + timedelta(seconds=2))
    assert chargers.calls == []


async def test_removing_the_site_limit_removes_linkray_s_profiles_too(chargers):
    await site_async(grid_limit_a=10)
    charger = await charger_async("CP-A", kind="ac1", phases=["L1"], max_current_a=32)
    await charger_async("CP-B", kind="ac1", phases=["L1"], max_current_a=32)
    grid_async(0, 0, 0)
    await cycle()
    assert sorted(limit for _, limit in chargers.limits()) == [0, 10]  # one paused: 10 A fits one minimum
    await site_async(grid_limit_a=None)
    chargers.calls.clear()
    await cycle(NOW + timedelta(seconds=1))
    for task in list(control._in_flight.values()):
        await task
    assert sorted(chargers.calls) == [
        ("CP-A", "ClearChargingProfile", {"id": profiles.BALANCING_PROFILE_ID}),
        ("CP-B", "ClearChargingProfile", {"id": profiles.BALANCING_PROFILE_ID}),
    ]
    row = await ChargerBalancing.objects.aget(charger=charger)
    assert row.sent_limit is None and row.reason == "site limit not set"
    chargers.calls.clear()
    await cycle(NOW + timedelta(seconds=2))
    assert chargers.calls == []


async def test_a_reconnect_sends_the_limit_again(chargers):
    await site_async(grid_limit_a=20)
    charger = await charger_async("CP-A")
    grid_async(0, 0, 0)
    await cycle()
    chargers.calls.clear()
    await Charger.objects.filter(pk=charger.pk).aupdate(charger_connected_at=NOW)
    await cycle(NOW + timedelta(seconds=1))
    assert [action for _, action, _ in chargers.calls] == ["GetConfiguration", "SetChargingProfile"]


async def test_a_one_phase_charger_on_l2_is_limited_by_what_l2_leaves(chargers):
    await site_async(grid_limit_a=32)
    await charger_async("CP-1P", kind="ac1", phases=["L2"], max_current_a=32)
    grid_async(0, 25, 0)  # the building loads L2
    await cycle()
    assert chargers.limits() == [("CP-1P", 7)]


async def test_a_dc_charger_is_limited_in_watts_and_its_draw_read_from_its_power(chargers):
    await site_async(grid_limit_a=32)
    charger = await charger_async("CP-DC", kind="dc", max_power_w=50_000, max_current_a=None)
    state = ChargerState.from_dict(charger.state)
    state.connector(1).meter.power_w = 6900.0  # 10 A per phase at 230 V
    await Charger.objects.filter(pk=charger.pk).aupdate(state=state.to_dict())
    grid_async(22, 22, 22)  # 12 A of building + 10 A of this charger on each phase
    await cycle()
    request = next(payload for _, action, payload in chargers.calls if action == "SetChargingProfile")
    schedule = request["csChargingProfiles"]["chargingSchedule"]
    assert schedule["chargingRateUnit"] == "W"
    assert schedule["chargingSchedulePeriod"][0]["limit"] == pytest.approx(20 * 3 * 230, abs=1)


async def test_a_dc_charger_given_only_a_maximum_current_is_held_to_it(chargers):
    await site_async(grid_limit_a=63)
    await charger_async("CP-DC", kind="dc", max_power_w=None, max_current_a=10)
    grid_async(0, 0, 0)
    await cycle()
    row = await ChargerBalancing.objects.aget(charger__charge_box_id="CP-DC")
    assert row.limit_a == 10 and row.reason == "capped by its maximum"


async def test_no_site_limit_means_no_balancing(chargers):
    await charger_async("CP-A")
    grid_async(0, 0, 0)
    result = await cycle()
    assert result.skipped_reason == "site limit not set" and chargers.calls == []


# --- helpers in async form -----------------------------------------------------------------

from channels.db import database_sync_to_async  # noqa: E402

site_async = database_sync_to_async(site)
charger_async = database_sync_to_async(connected_charger)
grid_async = grid


def profiles_installed(purpose, limit):
    from gateway.state import InstalledProfile

    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]},
    }
    return InstalledProfile(0, 1, 0, purpose, None, profile)

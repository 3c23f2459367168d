"""The site simulator's peers against each other (no LinkRay): a simulated charger on the
sitesim CSMS obeys profiles after its reaction delay, and the simulated grid meter, read over
Modbus, shows base load plus the draw on the right phases."""

from __future__ import annotations

import asyncio
import struct

import pytest
from ocpp.v16 import call
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from sitesim.charger import IGNORE_PROFILES, NOT_SUPPORTED_PROFILES, SILENT_PROFILES, SimulatedCharger
from sitesim.csms import SimulatedCsms
from sitesim.profiles import CHARGE_POINT_MAX, TX, schedule_profile
from sitesim.site import Site
from tests.peers.waiting import wait_for

SDM630_CURRENT_ADDRESS = 0x0006


async def read_sdm630_currents_a(port: int, timeout_s: float = 2.0) -> tuple[float, float, float]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=timeout_s, retries=0)
    await client.connect()
    try:
        try:
            reply = await client.read_input_registers(SDM630_CURRENT_ADDRESS, count=6, device_id=1)
        except ModbusException as error:
            raise AssertionError(f"no answer: {error}") from error
        assert not reply.isError(), reply
        words = reply.registers
        return tuple(struct.unpack(">f", struct.pack(">HH", words[i], words[i + 1]))[0] for i in (0, 2, 4))
    finally:
        client.close()


def own_tasks() -> set[asyncio.Task]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


@pytest.fixture
async def csms_site():
    sites = []

    async def make(*chargers, base_load_a=0.0):
        site = Site(None, chargers, base_load_a=base_load_a, csms=SimulatedCsms())
        sites.append(site)
        return await site.start()

    yield make
    for site in sites:
        await site.stop()


async def test_a_charger_obeys_a_profile_only_after_its_reaction_delay(csms_site):
    charger = SimulatedCharger("CP-DELAY", kind="ac3", max_current_a=16, reaction_delay_s=0.5)
    site = await csms_site(charger)
    await charger.plug_in(20_000, max_current_a=32)
    await wait_for(lambda: charger.draw_a == 16, 5, "full draw")

    status = await site.csms.set_charging_profile("CP-DELAY", 0, schedule_profile(1, 8.0, purpose=CHARGE_POINT_MAX))

    assert status == "Accepted"
    assert [answer[1:] for answer in charger.profile_answers] == [("SetChargingProfile", "Accepted", 1)]
    assert charger.draw_a == 16  # not yet: the charger reacts after its delay
    await wait_for(lambda: charger.draw_a == 8, 5, "draw at the new limit")
    assert site.grid_current_a() == {"L1": 8, "L2": 8, "L3": 8}


async def test_the_meter_reads_base_load_plus_draw_on_the_right_phases_over_modbus(csms_site):
    charger = SimulatedCharger("CP-L2", kind="ac1", phases=("L2",), max_current_a=16, reaction_delay_s=0)
    site = await csms_site(charger, base_load_a=(5.0, 3.0, 1.0))
    await charger.plug_in(20_000)
    await wait_for(lambda: charger.draw_a == 16, 5, "full draw")

    assert charger.current_draw_a() == {"L1": 0.0, "L2": 16.0, "L3": 0.0}
    assert await read_sdm630_currents_a(site.meter.port) == pytest.approx((5.0, 19.0, 1.0))


async def test_a_three_phase_charger_wired_rotated_reports_its_own_phases_but_loads_the_site_phases(csms_site):
    charger = SimulatedCharger("CP-ROT", kind="ac3", phases=("L2", "L3", "L1"), max_current_a=10, reaction_delay_s=0)
    site = await csms_site(charger)
    await charger.plug_in(20_000)
    await wait_for(lambda: site.csms.calls_received("CP-ROT", "MeterValues"), 5, "MeterValues")

    sampled = site.csms.calls_received("CP-ROT", "MeterValues")[-1]["meterValue"][0]["sampledValue"]
    assert sorted(s["phase"] for s in sampled if s.get("measurand") == "Current.Import") == ["L1", "L2", "L3"]
    assert await read_sdm630_currents_a(site.meter.port) == pytest.approx((10.0, 10.0, 10.0))


async def test_a_power_limit_becomes_current_at_the_chargers_voltage_and_phases(csms_site):
    charger = SimulatedCharger("CP-DC", kind="dc", max_power_w=50_000, max_current_a=80, reaction_delay_s=0)
    site = await csms_site(charger)
    await charger.plug_in(50_000)
    transaction_id = charger.transaction_id

    profile = schedule_profile(2, 6900.0, purpose=TX, rate_unit="W", transaction_id=transaction_id)
    assert await site.csms.set_charging_profile("CP-DC", 1, profile) == "Accepted"

    await wait_for(lambda: abs(charger.power_w - 6900) < 1, 5, "6.9 kW")
    assert site.grid_current_a()["L1"] == pytest.approx(10.0)


async def test_a_limit_under_six_amperes_suspends_an_ac_charger(csms_site):
    charger = SimulatedCharger("CP-SUSP", kind="ac1", reaction_delay_s=0)
    site = await csms_site(charger)
    await charger.plug_in(20_000)

    await site.csms.set_charging_profile("CP-SUSP", 0, schedule_profile(3, 4.0, purpose=CHARGE_POINT_MAX))

    await wait_for(lambda: site.csms.statuses.get("CP-SUSP", {}).get(1) == "SuspendedEVSE", 5, "SuspendedEVSE")
    assert charger.current_draw_a() == {"L1": 0.0, "L2": 0.0, "L3": 0.0}


async def test_a_misbehaving_charger_answers_not_supported_and_keeps_drawing(csms_site):
    charger = SimulatedCharger("CP-NS", kind="ac1", reaction_delay_s=0)
    charger.profile_behaviour = NOT_SUPPORTED_PROFILES
    site = await csms_site(charger)
    await charger.plug_in(20_000)

    status = await site.csms.set_charging_profile("CP-NS", 0, schedule_profile(4, 6.0, purpose=CHARGE_POINT_MAX))

    assert status == "NotSupported"
    await wait_for(lambda: charger.draw_a == 16, 5, "full draw")


async def test_remote_start_and_stop_from_the_csms_run_a_transaction(csms_site):
    charger = SimulatedCharger("CP-REMOTE", kind="ac1", reaction_delay_s=0)
    site = await csms_site(charger)
    await charger.plug_in(20_000, start=False)

    assert await site.csms.remote_start("CP-REMOTE") == "Accepted"
    await wait_for(lambda: charger.transaction_id is not None, 5, "transaction")
    assert await site.csms.remote_stop("CP-REMOTE", charger.transaction_id) == "Accepted"

    await wait_for(lambda: "StopTransaction" in site.csms.actions_received("CP-REMOTE"), 5, "StopTransaction")
    assert charger.draw_a == 0


async def test_a_csms_outage_refuses_chargers_until_it_is_back(csms_site):
    charger = SimulatedCharger("CP-OUT", kind="ac1", reconnect_delay_s=0.1)
    site = await csms_site(charger)

    await site.csms.go_offline()
    await wait_for(lambda: not charger.connected.is_set(), 5, "charger dropped")
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", site.csms.port)

    await site.csms.go_online()
    await wait_for(lambda: "CP-OUT" in site.csms.connections, 5, "charger back")


async def test_stop_leaves_no_task_and_no_listening_port_behind():
    before = own_tasks()
    site = Site(None, [SimulatedCharger("CP-STOP", kind="ac3")], csms=SimulatedCsms())
    await site.start()
    await site.charger("CP-STOP").plug_in(10_000)
    site.recorder.sample()
    meter_port, csms_port = site.meter.port, site.csms.port

    await site.stop()

    assert own_tasks() - before == set()
    for port in (meter_port, csms_port):
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)


async def test_a_charger_that_ignores_profiles_accepts_them_and_keeps_drawing(csms_site):
    charger = SimulatedCharger("CP-IGN", kind="ac1", reaction_delay_s=0)
    charger.profile_behaviour = IGNORE_PROFILES
    site = await csms_site(charger)
    await charger.plug_in(20_000)

    status = await site.csms.set_charging_profile("CP-IGN", 0, schedule_profile(5, 6.0, purpose=CHARGE_POINT_MAX))

    assert status == "Accepted"
    assert charger.profile_limit_a() == 6.0  # stored ...
    await wait_for(lambda: site.csms.calls_received("CP-IGN", "MeterValues"), 5, "MeterValues")
    assert charger.draw_a == 16  # ... but not obeyed


async def test_a_silent_charger_never_answers_a_profile(csms_site):
    charger = SimulatedCharger("CP-SIL", kind="ac1", reaction_delay_s=0)
    charger.profile_behaviour = SILENT_PROFILES
    site = await csms_site(charger)
    await charger.plug_in(20_000)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(
            site.csms.set_charging_profile("CP-SIL", 0, schedule_profile(6, 6.0, purpose=CHARGE_POINT_MAX)), 0.5
        )
    assert charger.profile_limit_a() is None
    assert charger.draw_a == 16


async def test_a_dropped_charger_reconnects_and_boots_again(csms_site):
    charger = SimulatedCharger("CP-DROP", kind="ac1", reconnect_delay_s=0.1)
    site = await csms_site(charger)

    await charger.drop_connection()

    await wait_for(lambda: site.csms.actions_received("CP-DROP").count("BootNotification") == 2, 5, "second boot")
    await wait_for(charger.booted.is_set, 5, "booted again")


async def test_a_malformed_frame_reaches_the_csms_as_sent(csms_site):
    charger = SimulatedCharger("CP-BAD", kind="ac1")
    site = await csms_site(charger)

    await charger.send_malformed('[2, "bad-1", "Heartbeat"')

    await wait_for(lambda: ("in", '[2, "bad-1", "Heartbeat"') in site.csms.log["CP-BAD"], 5, "malformed frame received")


async def test_the_max_stack_level_is_a_configuration_key_the_csms_can_read_and_change(csms_site):
    charger = SimulatedCharger("CP-CONF", kind="ac3", max_stack_level=8)
    site = await csms_site(charger)

    answer = await site.csms.send("CP-CONF", call.GetConfiguration(key=["ChargeProfileMaxStackLevel", "Nope"]))
    assert answer.configuration_key == [{"key": "ChargeProfileMaxStackLevel", "readonly": False, "value": "8"}]
    assert answer.unknown_key == ["Nope"]
    answer = await site.csms.send("CP-CONF", call.ChangeConfiguration(key="ChargeProfileMaxStackLevel", value="3"))
    assert answer.status == "Accepted"

    profile = schedule_profile(8, 10.0, stack_level=4)
    assert await site.csms.set_charging_profile("CP-CONF", 0, profile) == "Rejected"


async def test_a_current_only_charger_rejects_a_power_profile(csms_site):
    charger = SimulatedCharger("CP-AONLY", kind="ac3", allowed_rate_units="Current")
    site = await csms_site(charger)

    assert await site.csms.set_charging_profile("CP-AONLY", 0, schedule_profile(9, 7000.0, rate_unit="W")) == "Rejected"
    assert await site.csms.set_charging_profile("CP-AONLY", 0, schedule_profile(9, 10.0)) == "Accepted"


async def test_the_recorder_keeps_the_peak_and_the_time_above_a_limit(csms_site):
    charger = SimulatedCharger("CP-REC", kind="ac1", phases=("L3",), reaction_delay_s=0)
    site = await csms_site(charger, base_load_a=2.0)
    await charger.plug_in(20_000)
    await wait_for(lambda: site.recorder.max_current_a()["L3"] == 18, 5, "peak recorded")

    await site.csms.set_charging_profile("CP-REC", 0, schedule_profile(10, 6.0, purpose=CHARGE_POINT_MAX))
    await wait_for(lambda: site.grid_current_a()["L3"] == 8, 5, "draw at 6 A")
    site.recorder.sample()

    assert site.recorder.max_current_a() == {"L1": 2.0, "L2": 2.0, "L3": 18.0}
    assert site.recorder.time_above_s(10.0, "L3") > 0
    assert site.recorder.time_above_s(18.0) == 0
    assert site.energy_delivered_wh()["CP-REC"] > 0


async def test_a_silenced_meter_answers_nothing_until_it_speaks_again(csms_site):
    site = await csms_site(base_load_a=(1.0, 2.0, 3.0))

    site.meter.silence()
    with pytest.raises(AssertionError):
        await read_sdm630_currents_a(site.meter.port, timeout_s=0.3)
    site.meter.speak()

    assert await read_sdm630_currents_a(site.meter.port) == pytest.approx((1.0, 2.0, 3.0))


async def test_a_stopped_meter_refuses_connections_and_comes_back_on_its_port(csms_site):
    site = await csms_site(base_load_a=4.0)
    port = site.meter.port

    await site.meter.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    await site.meter.start()

    assert site.meter.port == port
    assert await read_sdm630_currents_a(port) == pytest.approx((4.0, 4.0, 4.0))


async def test_a_base_load_step_and_pv_show_in_the_next_read(csms_site):
    site = await csms_site(base_load_a=10.0)

    site.set_base_load_a({"L1": 20.0})
    site.meter.pv_feed_in_a = (0.0, 5.0, 0.0)

    assert site.grid_current_a() == {"L1": 20.0, "L2": -5.0, "L3": 0.0}
    assert await read_sdm630_currents_a(site.meter.port) == pytest.approx((20.0, 5.0, 0.0))


async def test_a_base_load_that_is_no_current_makes_the_meter_answer_an_exception_not_crash(csms_site):
    site = await csms_site(base_load_a=lambda: None)

    with pytest.raises(AssertionError, match="Exception"):
        await read_sdm630_currents_a(site.meter.port)
    site.set_base_load_a(2.0)

    assert await read_sdm630_currents_a(site.meter.port) == pytest.approx((2.0, 2.0, 2.0))


async def test_a_charging_session_goes_through_the_statuses_and_meters_its_energy(csms_site):
    charger = SimulatedCharger("CP-LIFE", kind="ac3", heartbeat_interval_s=0.1, meter_value_interval_s=0.1, reaction_delay_s=0)
    site = await csms_site(charger)
    await charger.plug_in(20_000)
    await wait_for(lambda: len(site.csms.calls_received("CP-LIFE", "MeterValues")) >= 2, 5, "two MeterValues")
    await charger.unplug()

    await wait_for(lambda: site.csms.statuses["CP-LIFE"][1] == "Available", 5, "Available again")
    statuses = [payload["status"] for payload in site.csms.calls_received("CP-LIFE", "StatusNotification")]
    assert statuses == ["Available", "Preparing", "Charging", "Finishing", "Available"]
    stop = site.csms.calls_received("CP-LIFE", "StopTransaction")[0]
    assert stop["meterStop"] == int(charger.energy_register_wh) and charger.energy_delivered_wh > 0
    assert "Heartbeat" in site.csms.actions_received("CP-LIFE")


async def test_a_charger_keeps_the_calls_it_received_and_the_site_sums_what_its_chargers_draw(csms_site):
    one = SimulatedCharger("CP-SUM-1", kind="ac1", phases=("L2",), max_current_a=10, reaction_delay_s=0)
    three = SimulatedCharger("CP-SUM-3", kind="ac3", max_current_a=16, reaction_delay_s=0)
    site = await csms_site(one, three, base_load_a=(5.0, 5.0, 5.0))
    await one.plug_in(20_000)
    await three.plug_in(20_000)
    await site.csms.send("CP-SUM-3", call.GetConfiguration(key=["ChargeProfileMaxStackLevel"]))
    await site.csms.set_charging_profile("CP-SUM-3", 0, schedule_profile(77, 12.0, purpose=CHARGE_POINT_MAX, stack_level=3))
    await wait_for(lambda: three.draw_a == 12 and one.draw_a == 10, 5, "both drawing")

    assert three.calls_received("GetConfiguration") == [{"key": ["ChargeProfileMaxStackLevel"]}]
    assert [p["csChargingProfiles"]["chargingProfileId"] for p in three.calls_received("SetChargingProfile")] == [77]
    assert one.calls_received("SetChargingProfile") == []
    installed = three.profiles.find(77)
    assert (installed.purpose, installed.stack_level, installed.periods[0].limit, installed.rate_unit) == (CHARGE_POINT_MAX, 3, 12.0, "A")
    assert three.profiles.find(78) is None
    assert site.charging_current_a() == {"L1": 12.0, "L2": 22.0, "L3": 12.0}
    assert site.grid_current_a() == {"L1": 17.0, "L2": 27.0, "L3": 17.0}

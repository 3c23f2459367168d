"""`meter_probe` and `simulate_meter` as an installer uses them."""

from __future__ import annotations

import asyncio
import socket

import pytest
from django.core.management import CommandError, call_command

from gateway.models import Charger
from gateway.state import ChargerState, ConnectorState, MeterSnapshot, Phases
from meters.management.commands.simulate_meter import Command as SimulateMeter
from meters.simulator import SimulatedSite
from tests.peers.meter import SimulateMeterProcess
from tests.peers.waiting import wait_for


@pytest.fixture(scope="module")
def simulated_sdm630(tmp_path_factory):
    simulator = SimulateMeterProcess(
        "--model", "sdm630", "--port", "0", "--no-chargers", "--base-current", "6,4,5",
        log_path=tmp_path_factory.mktemp("simulate_meter") / "sdm630.log",
    ).start()
    yield simulator
    assert simulator.stop() == 0, simulator.output()


def probe(capsys, *args: str) -> str:
    call_command("meter_probe", *args)
    return capsys.readouterr().out


def test_meter_probe_prints_every_value_with_its_unit(simulated_sdm630, capsys):
    output = probe(capsys, "--model", "sdm630", "--host", "127.0.0.1", "--port", str(simulated_sdm630.port), "--unit", "1")
    lines = output.splitlines()
    assert lines[0] == f"Eastron SDM630 (v1/v2), unit 1 on 127.0.0.1:{simulated_sdm630.port} (Modbus TCP)"
    assert lines[1].startswith("1 request in ")
    assert lines[3].split() == ["Voltage", "230.0", "V", "230.0", "V", "230.0", "V"]
    assert lines[4].split() == ["Current", "6.00", "A", "4.00", "A", "5.00", "A"]
    assert lines[5].split() == ["Power", "1,380", "W", "920", "W", "1,150", "W"]
    assert lines[6].split() == ["Total", "power", "3,450", "W"]
    assert lines[7].split()[0] == "Import" and lines[7].endswith("kWh")
    assert lines[9].split() == ["Frequency", "50.00", "Hz"]


def test_meter_probe_accepts_host_colon_port(simulated_sdm630, capsys):
    output = probe(capsys, "--model", "sdm630", "--host", f"127.0.0.1:{simulated_sdm630.port}")
    assert "Current" in output


def test_meter_probe_names_a_wrong_unit_id(simulated_sdm630):
    with pytest.raises(CommandError, match="unit 9 refused .*gateway target failed to respond.*check the unit id"):
        call_command("meter_probe", "--model", "sdm630", "--host", "127.0.0.1", "--port", str(simulated_sdm630.port), "--unit", "9")


def test_meter_probe_names_a_wrong_model(simulated_sdm630):
    with pytest.raises(CommandError, match="illegal data address.*wrong model"):
        call_command("meter_probe", "--model", "iem3155", "--host", "127.0.0.1", "--port", str(simulated_sdm630.port))


def test_meter_probe_says_when_nothing_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CommandError, match=f"cannot connect to 127.0.0.1:{port}.*refused"):
        call_command("meter_probe", "--model", "sdm630", "--host", "127.0.0.1", "--port", str(port), "--timeout", "0.3")


def test_meter_probe_explains_bad_arguments(capsys):
    with pytest.raises(CommandError, match="expected one of .*sdm630"):
        call_command("meter_probe", "--model", "sdm999", "--port", "/dev/ttyUSB0")
    with pytest.raises(CommandError, match="give --port /dev/ttyUSB0"):
        call_command("meter_probe", "--model", "sdm630")
    with pytest.raises(CommandError, match="serial port /dev/ttyNoSuchAdapter does not exist"):
        call_command("meter_probe", "--model", "sdm630", "--port", "/dev/ttyNoSuchAdapter")
    with pytest.raises(CommandError, match="--unit 0: expected 1-247"):
        call_command("meter_probe", "--model", "sdm630", "--port", "/dev/ttyUSB0", "--unit", "0")
    with pytest.raises(CommandError, match="TCP port 'abc'"):
        call_command("meter_probe", "--model", "sdm630", "--host", "127.0.0.1:abc")
    listing = probe(capsys, "--list-models")
    assert "sdm630" in listing and "sunspec" in listing and "abb_b2x" in listing


def test_simulate_meter_refuses_bad_arguments():
    with pytest.raises(CommandError, match="--model 'nope'"):
        call_command("simulate_meter", "--model", "nope")
    with pytest.raises(CommandError, match="three currents"):
        call_command("simulate_meter", "--model", "sdm630", "--base-current", "1,2")
    with pytest.raises(CommandError, match="--unit 300"):
        call_command("simulate_meter", "--model", "sdm630", "--unit", "300")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=f"cannot listen on 127.0.0.1:{port}"):
            call_command("simulate_meter", "--model", "sdm630", "--port", str(port), "--no-chargers")
    with pytest.raises(CommandError, match="cannot open serial port /dev/ttyNoSuchAdapter"):
        call_command("simulate_meter", "--model", "sdm630", "--serial", "/dev/ttyNoSuchAdapter", "--no-chargers")


def test_the_simulated_site_adds_charging_currents_and_counts_energy():
    seconds = iter([0.0, 3600.0])
    site = SimulatedSite(base_current_a=Phases(1.0, 2.0, 3.0), clock=lambda: next(seconds), import_energy_wh=0.0)
    site.values()
    site.charging_current_a = Phases(16.0, 16.0, 0.0)
    values = site.values()
    assert (values["current_a.l1"], values["current_a.l2"], values["current_a.l3"]) == (17.0, 18.0, 3.0)
    assert values["total_power_w"] == pytest.approx(230 * 38)
    assert values["import_energy_wh"] == pytest.approx(230 * 38)  # one hour at that power


@pytest.mark.django_db(transaction=True)
async def test_simulate_meter_follows_what_the_chargers_draw(monkeypatch):
    monkeypatch.setattr("meters.management.commands.simulate_meter.CHARGING_REFRESH_S", 0.05)
    state = ChargerState("CP-1")
    state.connectors[1] = ConnectorState(1, meter=MeterSnapshot(current_a=Phases(16.0, 15.5, 0.0)))
    await Charger.objects.acreate(charge_box_id="CP-1", charger_connected=True, state=state.to_dict())
    site = SimulatedSite()
    follower = asyncio.create_task(SimulateMeter()._follow_chargers(site))
    try:
        await wait_for(lambda: site.charging_current_a.l1 == 16.0, 5, "charging currents")
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    values = site.values()
    assert values["current_a.l1"] == 22.0 and values["current_a.l2"] == 19.5 and values["current_a.l3"] == 5.0

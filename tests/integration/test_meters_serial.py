"""Modbus RTU over a real serial line: a socat pseudo-terminal pair, pymodbus's serial server
on one end, LinkRay's serial client on the other."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from meters.polling import Connection, MeterReader, MeterUnavailable, ModbusLine, read_once
from meters.registers import plan_reads
from meters.simulator import SimulatedMeter, start_serial_server
from tests.peers.meter import MeterPeer, SerialPair, SimulateMeterProcess, known_values, meter_map



def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def serial_pair(tmp_path):
    pair = SerialPair(tmp_path).start()
    yield pair
    pair.stop()


def serial_connection(port: str, baudrate: int = 9600, parity: str = "N", timeout_s: float = 0.5) -> Connection:
    return Connection(transport="rtu", serial_port=port, baudrate=baudrate, parity=parity, timeout_s=timeout_s)


@pytest.mark.parametrize(("key", "baudrate", "parity"), [("sdm630", 9600, "N"), ("sdm120", 2400, "N"), ("iem3155", 19200, "N")])
async def test_rtu_over_a_serial_line_reads_the_meter(serial_pair, key, baudrate, parity):
    model = meter_map(key)
    values = known_values(model)
    server = await start_serial_server(
        [SimulatedMeter(model, lambda: values, unit_id=1)], serial_pair.meter_end, baudrate=baudrate, parity=parity
    )
    try:
        reading, requests, _ = await read_once(serial_connection(serial_pair.linkray_end, baudrate, parity), model, 1, now)
    finally:
        await server.shutdown()
    for quantity, expected in values.items():
        assert reading.value(quantity) == pytest.approx(expected), quantity
    assert requests == len(plan_reads(model))


async def test_a_wrong_unit_id_on_the_serial_line_is_silence_with_a_hint(serial_pair):
    model = meter_map("sdm630")
    values = known_values(model)
    server = await start_serial_server([SimulatedMeter(model, lambda: values, unit_id=1)], serial_pair.meter_end)
    line = ModbusLine(serial_connection(serial_pair.linkray_end, timeout_s=0.2))
    try:
        with pytest.raises(MeterUnavailable, match="no valid answer from unit 5 on .*ttyLinkRay at 9600 baud 8N1.*parity"):
            await MeterReader(line, model, 5).read(now)
        # The port stays open and the right unit still answers on the same line.
        reading = await MeterReader(line, model, 1).read(now)
        assert reading.current_a.l1 == pytest.approx(values["current_a.l1"])
    finally:
        line.close()
        await server.shutdown()


async def test_a_missing_serial_port_is_named():
    with pytest.raises(MeterUnavailable, match="serial port /dev/ttyLinkRayMissing does not exist"):
        await read_once(serial_connection("/dev/ttyLinkRayMissing"), meter_map("sdm630"), 1, now)


async def test_serial_settings_the_port_refuses_are_reported(serial_pair):
    # A pseudo-terminal cannot do parity, as some USB adapters cannot do some settings.
    with pytest.raises(MeterUnavailable, match="cannot open .*ttyLinkRay at 9600 baud 8E1: .*Invalid argument"):
        await read_once(serial_connection(serial_pair.linkray_end, parity="E"), meter_map("sdm630"), 1, now)


async def test_permission_denied_on_the_port_says_what_to_do(serial_pair, monkeypatch):
    if os.geteuid() == 0:
        # root may open anything: stand in for a port the LinkRay user may not open.
        monkeypatch.setattr("meters.polling.os.access", lambda path, mode: False)
    else:
        os.chmod(os.path.realpath(serial_pair.linkray_end), 0)
    with pytest.raises(MeterUnavailable, match="permission denied on .*ttyLinkRay.*dialout"):
        await read_once(serial_connection(serial_pair.linkray_end), meter_map("sdm630"), 1, now)


def test_simulate_meter_on_a_serial_port_answers_meter_probe(serial_pair, tmp_path, capsys):
    simulator = SimulateMeterProcess(
        "--model", "sdm72dm", "--serial", serial_pair.meter_end, "--baudrate", "9600", "--no-chargers",
        "--base-current", "8,9,10", log_path=tmp_path / "simulate_meter.log",
    ).start()
    try:
        call_command("meter_probe", "--model", "sdm72dm", "--port", serial_pair.linkray_end, "--unit", "1", "--baudrate", "9600")
        output = capsys.readouterr().out
        assert "Eastron SDM72D-M v2, unit 1 on " in output
        assert "8.00 A" in output and "9.00 A" in output and "10.00 A" in output
        assert "230.0 V" in output and "50.00 Hz" in output
        with pytest.raises(CommandError, match="no valid answer from unit 2"):
            call_command("meter_probe", "--model", "sdm72dm", "--port", serial_pair.linkray_end, "--unit", "2", "--timeout", "0.2")
    finally:
        assert simulator.stop() == 0, simulator.output()


async def test_a_pyserial_url_port_reaches_the_meter():
    # socket://host:port is pyserial's raw TCP "serial port" (RTU framing over a socket).
    async with MeterPeer.of("sdm630", rtu_framing=True) as peer:
        reading, _, _ = await read_once(serial_connection(f"socket://127.0.0.1:{peer.port}"), meter_map("sdm630"), 1, now)
    assert reading.current_a.l1 == pytest.approx(known_values(meter_map("sdm630"))["current_a.l1"])

"""Modbus reads against pymodbus's real server on loopback: every shipped map, both TCP
framings, and the ways a meter fails."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from pymodbus.constants import ExcCodes

from meters.catalog import catalog
from meters.polling import Connection, MeterReader, MeterRefused, MeterUnavailable, ModbusLine, read_once
from meters.registers import plan_reads
from meters.simulator import SimulatedMeter
from tests.peers.meter import MeterPeer, SilentServer, known_values, meter_map

SHIPPED = sorted(catalog().maps)


def now() -> datetime:
    return datetime.now(UTC)


def assert_reading_matches(reading, values: dict[str, float]) -> None:
    for quantity, expected in values.items():
        assert reading.value(quantity) == pytest.approx(expected, rel=1e-6, abs=1e-6), quantity
    assert reading.missing == ()


async def read(connection, key: str, unit_id: int = 1):
    reading, requests, _ = await read_once(connection, meter_map(key), unit_id, now)
    return reading, requests


@pytest.mark.parametrize("rtu_framing", [False, True], ids=["tcp", "rtu_over_tcp"])
@pytest.mark.parametrize("key", SHIPPED)
async def test_every_shipped_map_reads_back_the_values_the_meter_shows(key, rtu_framing):
    model = meter_map(key)
    async with MeterPeer.of(key, rtu_framing=rtu_framing, unit_id=3) as peer:
        reading, requests = await read(peer.connection(), key, unit_id=3)
    assert_reading_matches(reading, known_values(model))
    assert reading.phases == model.phases
    if not model.is_sunspec:  # SunSpec adds its discovery reads on the first poll
        assert requests == len(plan_reads(model))


async def test_an_sdm630_poll_is_one_request_of_76_registers():
    async with MeterPeer.of("sdm630") as peer:
        _, requests = await read(peer.connection(), "sdm630")
        assert requests == 1
        assert peer.meter.requests == 1
    assert [(r.address, r.count) for r in plan_reads(meter_map("sdm630"))] == [(0, 76)]


async def test_word_order_and_scales_come_from_the_map():
    # EM24: INT32 low word first, 0.1 V: 230.1 V is the raw 2301 in the first register.
    async with MeterPeer.of("em24") as peer:
        words = await ModbusLine(peer.connection()).read(plan_reads(meter_map("em24"))[0], 1)
    assert words[0:2] == [2301, 0]
    assert words[0x0C:0x0E] == [10500, 0]  # 10.5 A at 0.001 A


async def test_sunspec_single_phase_model_reads_one_phase():
    values = {"current_a.l1": 12.5, "voltage_v.l1": 230.5, "power_w.l1": 2881.0, "total_power_w": 2881.0, "frequency_hz": 50.02, "import_energy_wh": 98_765.0, "export_energy_wh": 10.0}
    async with MeterPeer.of("sunspec", values, sunspec_model=201) as peer:
        reading, _ = await read(peer.connection(), "sunspec")
    assert reading.phases == 1
    assert reading.current_a.l1 == pytest.approx(12.5)
    assert reading.current_a.l2 is None
    assert reading.has_phase_currents


async def test_sunspec_values_marked_not_implemented_are_missing():
    values = {**known_values(meter_map("sunspec")), "frequency_hz": None, "power_w.l3": None}
    async with MeterPeer.of("sunspec", values) as peer:
        reading, _ = await read(peer.connection(), "sunspec")
    assert reading.frequency_hz is None and reading.power_w.l3 is None
    assert set(reading.missing) == {"frequency_hz", "power_w.l3"}
    assert reading.current_a.l3 == pytest.approx(7.75)


async def test_a_device_without_the_sunspec_marker_is_reported():
    async with MeterPeer.of("sdm630") as peer:
        with pytest.raises(MeterUnavailable, match="no SunSpec marker"):
            await read(peer.connection(), "sunspec")


async def test_wrong_unit_id_behind_a_tcp_gateway_names_the_unit_id():
    async with MeterPeer.of("sdm630", unit_id=1) as peer:
        with pytest.raises(MeterRefused, match="unit id") as refused:
            await read(peer.connection(), "sdm630", unit_id=7)
    assert refused.value.exception_code == ExcCodes.GATEWAY_NO_RESPONSE


async def test_wrong_unit_id_on_an_rtu_line_is_silence_with_a_hint():
    async with MeterPeer.of("sdm630", unit_id=1, rtu_framing=True, answer_unknown_units=False) as peer:
        with pytest.raises(MeterUnavailable, match="no valid answer from unit 7.*unit id, baud rate, parity"):
            await read(peer.connection(timeout_s=0.2), "sdm630", unit_id=7)


async def test_an_exception_response_is_reported_with_its_meaning():
    async with MeterPeer.of("sdm630") as peer:
        peer.meter.fault = ExcCodes.DEVICE_FAILURE
        with pytest.raises(MeterRefused, match=r"exception 4 \(device failure\)"):
            await read(peer.connection(), "sdm630")


async def test_the_wrong_model_is_reported_as_an_illegal_address():
    async with MeterPeer.of("sdm630") as peer:
        with pytest.raises(MeterRefused, match="illegal data address.*wrong model") as refused:
            await read(peer.connection(), "abb_b2x")
    assert refused.value.exception_code == ExcCodes.ILLEGAL_ADDRESS


async def test_a_meter_that_refuses_reads_across_gaps_is_read_register_by_register_block():
    model = meter_map("sdm630")
    async with MeterPeer.of("sdm630", fill_gaps=False) as peer:
        line = ModbusLine(peer.connection())
        reader = MeterReader(line, model, 1)
        first = await reader.read(now)
        second = await reader.read(now)
        line.close()
    assert_reading_matches(first, known_values(model))
    gapless = plan_reads(model, allow_gaps=False)
    assert len(gapless) == 3
    assert reader.requests_last_poll == len(gapless)  # remembered: no failed batched read again
    assert_reading_matches(second, known_values(model))


async def test_no_answer_is_a_timeout_with_a_hint():
    async with SilentServer() as silent:
        with pytest.raises(MeterUnavailable, match="no answer from unit 1 at 127.0.0.1:.*within 0.3 s"):
            await read(silent.connection(), "sdm630")
        assert silent.requests >= 1


async def test_a_closed_port_is_a_connection_error():
    async with SilentServer() as silent:
        port = silent.port
    with pytest.raises(MeterUnavailable, match=f"cannot connect to 127.0.0.1:{port}"):
        await read(Connection("tcp", "127.0.0.1", port, timeout_s=0.3), "sdm630")


@pytest.mark.parametrize("transport", ["tcp", "rtu_over_tcp"])
async def test_a_meter_that_answers_garbage_is_unavailable_not_a_crash(transport):
    async with SilentServer(garbage=b"\x00\x01\xff\xfe garbage \x13\x37" * 3) as garbage:
        with pytest.raises(MeterUnavailable, match="garbled answer"):
            await read(garbage.connection(transport), "sdm630")


async def test_crc_errors_on_rtu_framing_are_no_valid_answer():
    def corrupt_crc(sending: bool, packet: bytes) -> bytes:
        return packet[:-1] + bytes([packet[-1] ^ 0xFF]) if sending else packet

    async with MeterPeer.of("sdm630", rtu_framing=True, trace_packet=corrupt_crc) as peer:
        with pytest.raises(MeterUnavailable, match="garbled answer from unit 1.*no valid Modbus frame"):
            await read(peer.connection(timeout_s=0.2), "sdm630")


async def test_garbage_values_are_dropped_and_all_garbage_is_unavailable():
    model = meter_map("sdm630")
    values = {**known_values(model), "voltage_v.l2": 1e30, "current_a.l3": float("nan")}
    async with MeterPeer.of("sdm630", values) as peer:
        reading, _ = await read(peer.connection(), "sdm630")
    assert reading.voltage_v.l2 is None and reading.current_a.l3 is None
    assert set(reading.missing) == {"voltage_v.l2", "current_a.l3"}
    assert not reading.has_phase_currents

    async with MeterPeer.of("sdm630", dict.fromkeys(model.quantities(), float("nan"))) as peer:
        with pytest.raises(MeterUnavailable, match="no value is plausible"):
            await read(peer.connection(), "sdm630")


@pytest.mark.parametrize("rtu_framing", [False, True], ids=["tcp", "rtu_over_tcp"])
async def test_a_line_reconnects_by_itself_when_the_meter_comes_back(rtu_framing):
    model = meter_map("sdm630")
    peer = await MeterPeer.of("sdm630", rtu_framing=rtu_framing).start()
    line = ModbusLine(peer.connection(timeout_s=0.3))
    reader = MeterReader(line, model, 1)
    try:
        assert_reading_matches(await reader.read(now), known_values(model))
        await peer.stop()
        with pytest.raises(MeterUnavailable):
            await reader.read(now)
        with pytest.raises(MeterUnavailable, match="cannot connect"):
            await reader.read(now)
        await peer.start()  # same port
        assert_reading_matches(await reader.read(now), known_values(model))
    finally:
        line.close()
        await peer.stop()


async def test_meters_on_one_line_share_it_by_unit_id():
    first, second = meter_map("sdm630"), meter_map("sdm120")
    values_1, values_2 = known_values(first), known_values(second)
    meters = [SimulatedMeter(first, lambda: values_1, unit_id=1), SimulatedMeter(second, lambda: values_2, unit_id=2)]
    async with MeterPeer(meters, rtu_framing=True, answer_unknown_units=False) as peer:
        line = ModbusLine(peer.connection())
        try:
            assert_reading_matches(await MeterReader(line, first, 1).read(now), values_1)
            assert_reading_matches(await MeterReader(line, second, 2).read(now), values_2)
            # Polled at the same moment (two poller tasks), the line takes one request at a time.
            readings = await asyncio.gather(*(MeterReader(line, first, 1).read(now) for _ in range(3)), MeterReader(line, second, 2).read(now))
            for reading in readings[:3]:
                assert_reading_matches(reading, values_1)
            assert_reading_matches(readings[3], values_2)
        finally:
            line.close()

"""Poll time and requests per poll for every shipped meter map: LinkRay's batched plan against
one request per value, on pymodbus's real server on loopback.

    .venv/bin/python bench/meter_poll.py [--polls 200]

Loopback shows the software cost per poll; on RS-485 the wire dominates, so the table also
gives the wire time per poll at 9600 baud 8N1, computed from the frame sizes (request 8 bytes,
answer 5 + 2 x registers, 3.5 characters of silence after each frame; the meter's own
turnaround time, often 5-50 ms per request, comes on top and is not included). With socat
installed it also polls an SDM630 over a pseudo-terminal pair (ptys do not throttle to the
baud rate, so that row shows RTU framing cost, not 9600-baud wire time).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from meters.catalog import SHIPPED_MAPS_DIR, load_catalog  # noqa: E402
from meters.polling import Connection, MeterReader, ModbusLine  # noqa: E402
from meters.registers import MeterMap, ReadRequest, decode, plan_one_per_value, plan_reads, registers_from_responses  # noqa: E402
from meters.simulator import SimulatedMeter, bound_port, start_serial_server, start_tcp_server  # noqa: E402

BAUD = 9600
BITS_PER_CHARACTER = 10  # 8N1: start + 8 data + stop (8E1 would be 11)


def values_for(meter_map: MeterMap) -> dict[str, float]:
    values = {
        "total_power_w": 3673.0, "import_energy_wh": 12_345_600.0, "export_energy_wh": 234_500.0, "frequency_hz": 49.9,
    }
    for phase, (volts, amps) in zip(("l1", "l2", "l3"), ((230.1, 10.5), (231.2, 2.25), (229.3, 7.75))):
        values |= {f"voltage_v.{phase}": volts, f"current_a.{phase}": amps, f"power_w.{phase}": round(volts * amps)}
    return {quantity: value for quantity, value in values.items() if quantity in meter_map.quantities()}


def wire_seconds(requests: list[ReadRequest]) -> float:
    characters = sum(8 + 5 + 2 * request.count + 2 * 3.5 for request in requests)
    return characters * BITS_PER_CHARACTER / BAUD


def now() -> datetime:
    return datetime.now(UTC)


async def poll_with(requests: tuple[ReadRequest, ...], line: ModbusLine, meter_map: MeterMap, unit_id: int) -> None:
    """A poll with a given plan (contiguous-only, or one request per value as a reader without
    a plan does)."""
    responses = [await line.read(request, unit_id) for request in requests]
    words = {}
    for request, registers in zip(requests, responses):
        words |= registers_from_responses([request], [registers])
    decode(meter_map, words, measured_at=now())


async def time_polls(poll, polls: int) -> tuple[float, float]:
    await poll()  # warm up (connect; SunSpec discovery)
    samples = []
    for _ in range(polls):
        started = time.perf_counter()
        await poll()
        samples.append(time.perf_counter() - started)
    return statistics.mean(samples), statistics.quantiles(samples, n=20)[18]


async def bench_model(meter_map: MeterMap, polls: int) -> dict:
    simulated = SimulatedMeter(meter_map, lambda: values_for(meter_map))
    server = await start_tcp_server([simulated])
    line = ModbusLine(Connection("tcp", "127.0.0.1", bound_port(server), timeout_s=2.0))
    reader = MeterReader(line, meter_map, 1)
    try:
        batched_mean, batched_p95 = await time_polls(lambda: reader.read(now), polls)
        batched_requests = reader.requests_last_poll
        concrete = meter_map.at_sunspec_model(203, 40070) if meter_map.is_sunspec else meter_map
        contiguous = plan_reads(concrete, allow_gaps=False)
        contiguous_mean, _ = await time_polls(lambda: poll_with(contiguous, line, concrete, 1), polls)
        naive_mean, naive_p95 = await time_polls(lambda: poll_with(plan_one_per_value(concrete), line, concrete, 1), polls)
    finally:
        line.close()
        await server.shutdown()
    return {
        "key": meter_map.key,
        "batched_requests": batched_requests,
        "batched_registers": sum(request.count for request in plan_reads(concrete)),
        "batched_ms": batched_mean * 1000,
        "batched_p95_ms": batched_p95 * 1000,
        "contiguous_requests": len(contiguous),
        "contiguous_ms": contiguous_mean * 1000,
        "wire_contiguous_ms": wire_seconds(list(contiguous)) * 1000,
        "naive_requests": len(plan_one_per_value(concrete)),
        "naive_ms": naive_mean * 1000,
        "naive_p95_ms": naive_p95 * 1000,
        "wire_batched_ms": wire_seconds(list(plan_reads(concrete))) * 1000,
        "wire_naive_ms": wire_seconds(list(plan_one_per_value(concrete))) * 1000,
    }


async def bench_serial(meter_map: MeterMap, polls: int) -> dict | None:
    if shutil.which("socat") is None:
        return None
    with tempfile.TemporaryDirectory() as directory:
        meter_end, linkray_end = f"{directory}/ttyMeter", f"{directory}/ttyLinkRay"
        socat = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={meter_end}", f"pty,raw,echo=0,link={linkray_end}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 5
            while not (Path(meter_end).exists() and Path(linkray_end).exists()):
                if time.monotonic() > deadline:
                    return None
                await asyncio.sleep(0.02)
            server = await start_serial_server([SimulatedMeter(meter_map, lambda: values_for(meter_map))], meter_end, baudrate=BAUD)
            line = ModbusLine(Connection("rtu", serial_port=linkray_end, baudrate=BAUD, timeout_s=2.0))
            reader = MeterReader(line, meter_map, 1)
            try:
                batched_mean, _ = await time_polls(lambda: reader.read(now), polls)
                naive_mean, _ = await time_polls(lambda: poll_with(plan_one_per_value(meter_map), line, meter_map, 1), polls)
            finally:
                line.close()
                await server.shutdown()
        finally:
            socat.terminate()
            socat.wait(5)
    return {"key": meter_map.key, "batched_ms": batched_mean * 1000, "naive_ms": naive_mean * 1000}


async def main(polls: int) -> None:
    catalog = load_catalog(SHIPPED_MAPS_DIR, None)
    print(f"LinkRay meter poll bench: {polls} polls per model and plan, Modbus TCP on loopback (pymodbus server)")
    print(f"wire = computed RS-485 time per poll at {BAUD} baud 8N1, without the meter's turnaround time\n")
    print(f"{'':10} {'LinkRay plan':^37} | {'contiguous only':^24} | {'one request per value':^28}")
    header = (
        f"{'model':10} {'requests':>8} {'regs':>5} {'mean ms':>8} {'p95 ms':>7} {'wire ms':>7} |"
        f" {'requests':>8} {'mean ms':>7} {'wire ms':>7} | {'requests':>8} {'mean ms':>8} {'p95 ms':>7} {'wire ms':>7}"
    )
    print(header)
    print("-" * len(header))
    for key in sorted(catalog.maps):
        row = await bench_model(catalog.maps[key], polls)
        print(
            f"{row['key']:10} {row['batched_requests']:>8} {row['batched_registers']:>5} {row['batched_ms']:>8.2f}"
            f" {row['batched_p95_ms']:>7.2f} {row['wire_batched_ms']:>7.1f} | {row['contiguous_requests']:>8}"
            f" {row['contiguous_ms']:>7.2f} {row['wire_contiguous_ms']:>7.1f} | {row['naive_requests']:>8}"
            f" {row['naive_ms']:>8.2f} {row['naive_p95_ms']:>7.2f} {row['wire_naive_ms']:>7.1f}"
        )
    serial = await bench_serial(catalog.maps["sdm630"], max(20, polls // 4))
    if serial is None:
        print("\nRTU over a pty pair: skipped (socat not installed)")
    else:
        print(
            f"\nRTU over a socat pty pair ({serial['key']}, not throttled to {BAUD} baud): "
            f"batched {serial['batched_ms']:.2f} ms per poll, one request per value {serial['naive_ms']:.2f} ms per poll"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=200, help="polls per model and plan (default 200)")
    arguments = parser.parse_args()
    asyncio.run(main(max(arguments.polls, 20)))

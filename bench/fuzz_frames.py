#!/usr/bin/env python3
"""Hostile-input fuzzer: a few chargers send malformed and hostile frames through LinkRay while
others work, and LinkRay must shrug it off.

    .venv/bin/python bench/fuzz_frames.py                       # 10,000 frames, 5 hostile + 20 working chargers
    .venv/bin/python bench/fuzz_frames.py --frames 2000 --working 5

Three processes on 127.0.0.1: this one (the working chargers, measuring), a child process
sending the hostile frames (so its CPU does not disturb the measurements), and LinkRay
(`manage.py serve`, embedded default, fresh data directory), with the test CSMS (the `ocpp`
package) in a third child process.

Frames, taken in turn from these kinds (see `hostile_frames`): bad JSON, wrong types in every
position, huge unique ids and numbers, deep nesting (100,000 levels), invalid UTF-8 in text
frames, binary frames, NUL and lone surrogates, oversized frames, unsolicited answers,
observed actions with payloads of the wrong shape, and floods of CALLs sent without waiting.

Checked (the report says PASS/MISS):
- LinkRay is still running and /healthz answers;
- the working chargers saw no error (every CALL answered with a CALLRESULT, no disconnect);
- their p99 round trip during the fuzzing is within 10 ms of the p99 before it;
- LinkRay's RSS after the fuzzing (settled) is within 10 % of before;
- the journal holds what came in: rows for the hostile chargers vs frames that reached LinkRay
  (frames the websocket layer refuses itself, invalid UTF-8 text and frames over the hard
  limit, close the connection before LinkRay sees them: counted as such).

tests/e2e/test_hostile_input.py runs the same code small-sized and asserts the outcomes that are
not timings.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402

MAX_FRAME_BYTES = 256 * 1024  # LinkRay's default LINKRAY_MAX_FRAME_BYTES

# --- the frames -----------------------------------------------------------------------------


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def hostile_frames(rng: random.Random, only: frozenset[str] | None = None):
    """Endless (kind, frame) pairs; a frame is str (text) or bytes (binary), or
    ("invalid_utf8_text", bytes) to be sent as a text frame as-is."""
    counter = itertools.count()

    def uid() -> str:
        return f"fz{next(counter)}"

    kinds = [
        ("bad_json", lambda: rng.choice(['[2,"%s","Heartbeat",{' % uid(), "not json", "]", "", "[2,", '{"a":1}', "[", "\x00"])),
        ("wrong_types", lambda: rng.choice([
            '[2,123,"Heartbeat",{}]',
            '["2","%s","Heartbeat",{}]' % uid(),
            '[2,"%s",42,{}]' % uid(),
            '[2,"%s","StatusNotification",{"connectorId":"one","errorCode":5,"status":null}]' % uid(),
            '[2,"%s","MeterValues",{"connectorId":1,"meterValue":"x"}]' % uid(),
            '[2,"%s","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":7,"sampledValue":[{"value":[]}]}]}]' % uid(),
            '[2,"%s","StartTransaction",{"connectorId":-1,"idTag":[],"meterStart":1e308,"timestamp":"yesterday"}]' % uid(),
            '[2,"%s","StopTransaction",{"transactionId":"x","meterStop":null,"timestamp":{}}]' % uid(),
            '[2,"%s","BootNotification",[]]' % uid(),
            '[2,"%s","Authorize",{"idTag":{"a":1}}]' % uid(),
            '[3,"%s",[]]' % uid(),
            '[4,"%s",5,6,7]' % uid(),
            "{}", "null", "42", '"text"', "[]", "[9]", "[2]", "[true,false]",
        ])),
        ("huge_ids", lambda: rng.choice([
            '[2,"%s","Heartbeat",{}]' % ("x" * rng.choice([37, 1000, 100_000])),
            '[2,"%s","MeterValues",{"connectorId":%d,"transactionId":%d,"meterValue":[]}]' % (uid(), 10**30, 2**70),
            '[2,"%s","StatusNotification",{"connectorId":99999999999999999999,"errorCode":"NoError","status":"Available"}]' % uid(),
            '[2,"%s","%s",{}]' % (uid(), "A" * 64),
        ])),
        ("deep_nesting", lambda: rng.choice([
            '[2,"%s","DataTransfer",{"vendorId":"x","data":%s}]' % (uid(), _deep(100_000)),
            '[2,"%s","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available","info":%s}]' % (uid(), _deep(50_000)),
            _deep(200_000),
            '[2,"%s","MeterValues",%s]' % (uid(), '{"a":' * 20_000 + "1" + "}" * 20_000),
        ])),
        ("invalid_utf8_text", lambda: ("invalid_utf8_text", rng.choice([b'[2,"u","Heartbeat",{"x":"\xff\xfe"}]', b"\xc3\x28", b"\xed\xa0\x80"]))),
        ("binary", lambda: rng.choice([
            bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))),
            ('[2,"%s","Heartbeat",{}]' % uid()).encode(),
            b"\x00" * 100,
        ])),
        ("nul_and_surrogates", lambda: rng.choice([
            '[2,"%s","DataTransfer",{"vendorId":"a\\u0000b","data":"\\ud800"}]' % uid(),
            '[2,"%s","Authorize",{"idTag":"\\udfff\\u0000"}]' % uid(),
            '[2,"%s\\u0000","Heartbeat",{}]' % uid(),
        ])),
        ("oversized", lambda: '[2,"%s","DataTransfer",{"vendorId":"x","data":"%s"}]' % (uid(), "z" * (MAX_FRAME_BYTES + 10))),
        ("unsolicited_answers", lambda: rng.choice(['[3,"%s",{}]' % uid(), '[4,"%s","GenericError","",{}]' % uid(), '[3,"lr-deadbeef-1",{}]'])),
    ]
    if only:
        kinds = [(kind, make) for kind, make in kinds if kind in only]
    flood = 100 if not only or "flood" in only else 0
    while True:
        for kind, make in kinds:
            for _ in range(20):
                yield kind, make()
        # A flood: 100 CALLs back to back, not waiting for any answer.
        for _ in range(flood):
            yield "flood", '[2,"%s","Heartbeat",{}]' % uid()


@dataclass
class HostileTally:
    sent: int = 0
    by_kind: dict = field(default_factory=dict)
    closed_by_server: dict = field(default_factory=dict)  # close code -> count
    reconnects: int = 0
    connect_failures: int = 0
    lost: int = 0  # could not be sent (the socket closed twice)
    connect_errors: dict = field(default_factory=dict)


async def send_hostile(
    url: str, charge_box_ids: list[str], total_frames: int, seed: int = 1, only: frozenset[str] | None = None
) -> HostileTally:
    """Send `total_frames` hostile frames spread over the chargers; reconnect whoever LinkRay
    (or its websocket layer) closes. Answers are read and thrown away."""
    rng = random.Random(seed)
    frames = hostile_frames(rng, only)
    tally = HostileTally()
    sockets: dict[str, object] = {}
    readers: dict[str, asyncio.Task] = {}

    async def drain(websocket):
        try:
            async for _ in websocket:
                pass
        except websockets.ConnectionClosed:
            pass

    async def connection(charge_box_id: str):
        websocket = sockets.get(charge_box_id)
        if websocket is not None and websocket.state.name == "OPEN":
            return websocket
        if websocket is not None:
            code = int(websocket.close_code) if websocket.close_code is not None else None
            tally.closed_by_server[code] = tally.closed_by_server.get(code, 0) + 1
            tally.reconnects += 1
        for _ in range(300):
            try:
                # A long close timeout: LinkRay may still be reading (throttling) what was sent.
                websocket = await websockets.connect(
                    f"{url}/{charge_box_id}", subprotocols=["ocpp1.6"], max_size=None, open_timeout=20,
                    close_timeout=120, compression=None,
                )
                break
            except (OSError, websockets.exceptions.WebSocketException, asyncio.TimeoutError) as error:
                tally.connect_failures += 1
                tally.connect_errors[type(error).__name__ + ": " + str(error)[:80]] = tally.connect_errors.get(type(error).__name__ + ": " + str(error)[:80], 0) + 1
                await asyncio.sleep(1.0)
        else:
            raise RuntimeError(f"{charge_box_id}: cannot connect to LinkRay")
        sockets[charge_box_id] = websocket
        readers[charge_box_id] = asyncio.create_task(drain(websocket))
        return websocket

    try:
        for index in range(total_frames):
            charge_box_id = charge_box_ids[index % len(charge_box_ids)]
            kind, frame = next(frames)
            for _attempt in range(2):
                websocket = await connection(charge_box_id)
                try:
                    if isinstance(frame, tuple):
                        await websocket.send(frame[1], text=True)  # invalid UTF-8 as a text frame
                        # The websocket layer closes the connection on it: wait for that, so the
                        # frames after it are not lost in a dying socket's buffers.
                        try:
                            await asyncio.wait_for(websocket.wait_closed(), 60)
                        except asyncio.TimeoutError:
                            pass
                    else:
                        await websocket.send(frame)
                    break
                except websockets.ConnectionClosed:
                    continue  # closed by an earlier frame (e.g. invalid UTF-8): reconnect, resend once
            else:
                tally.lost += 1
            tally.sent += 1
            tally.by_kind[kind] = tally.by_kind.get(kind, 0) + 1
            if kind != "flood" and index % 50 == 0:
                await asyncio.sleep(0)  # let the readers drain now and then
    finally:
        await asyncio.gather(*(websocket.close() for websocket in sockets.values()), return_exceptions=True)
        for reader in readers.values():
            reader.cancel()
    return tally


# --- the working chargers ----------------------------------------------------------------------


@dataclass
class WorkTally:
    round_trips_ms: list = field(default_factory=list)
    errors: list = field(default_factory=list)


async def work(url: str, charge_box_id: str, stop: asyncio.Event, tally: WorkTally, interval_s: float = 0.05) -> None:
    """A well-behaved charger: one CALL at a time, each answer checked, round trips timed."""
    async with websockets.connect(f"{url}/{charge_box_id}", subprotocols=["ocpp1.6"], open_timeout=20, compression=None) as websocket:
        for number in itertools.count():
            if stop.is_set():
                return
            unique_id = f"w{number}"
            if number % 4 == 3:
                frame = json.dumps([2, unique_id, "Heartbeat", {}])
            else:
                frame = json.dumps([2, unique_id, "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}])
            started = time.perf_counter()
            try:
                await websocket.send(frame)
                answer = json.loads(await asyncio.wait_for(websocket.recv(), 10))
            except (websockets.ConnectionClosed, asyncio.TimeoutError) as error:
                tally.errors.append(f"{charge_box_id}: {type(error).__name__} {error}")
                return
            tally.round_trips_ms.append((time.perf_counter() - started) * 1000)
            if answer[:2] != [3, unique_id]:
                tally.errors.append(f"{charge_box_id}: unexpected answer {answer!r:.200}")
            await asyncio.sleep(interval_s)


def p99(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    return statistics.quantiles(values, n=100, method="inclusive")[98]


# --- the benchmark ----------------------------------------------------------------------------


def _hostile_process(url: str, charge_box_ids: list[str], total: int, seed: int, only, results) -> None:
    tally = asyncio.run(send_hostile(url, charge_box_ids, total, seed, only))
    results.put(tally.__dict__)


def _csms_process(port_out) -> None:
    import logging

    from tests.peers.csms import CsmsServer

    # The test CSMS logs a traceback for every malformed frame relayed to it: that would cost
    # this machine's two cores more than LinkRay's own work.
    logging.disable(logging.CRITICAL)

    async def main():
        csms = await CsmsServer().start()
        port_out.put(csms.port)
        await asyncio.Event().wait()

    asyncio.run(main())


def rss_bytes(pid: int) -> int:
    import psutil

    return psutil.Process(pid).memory_info().rss


async def settled_rss(pid: int, quiet_s: float = 3.0) -> int:
    await asyncio.sleep(quiet_s)
    return rss_bytes(pid)


def journal_rows(data_dir: Path, charge_box_ids: list[str]) -> int:
    with sqlite3.connect(data_dir / "linkray.sqlite3") as connection:
        marks = ",".join("?" * len(charge_box_ids))
        return connection.execute(
            f"SELECT count(*) FROM gateway_journalentry WHERE charge_box_id IN ({marks}) AND direction LIKE 'charger>%'",
            charge_box_ids,
        ).fetchone()[0]


async def run(args) -> int:
    from tests.peers.linkray import LinkRayProcess

    spawn = multiprocessing.get_context("spawn")
    port_queue = spawn.Queue()
    csms_process = spawn.Process(target=_csms_process, args=(port_queue,), daemon=True)
    csms_process.start()
    csms_port = port_queue.get(timeout=30)
    data_dir = Path(tempfile.mkdtemp(prefix="linkray-fuzz-"))
    linkray = LinkRayProcess({"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{csms_port}", "LINKRAY_LOG_LEVEL": os.environ.get("FUZZ_LOG_LEVEL", "warning")}, data_dir).start()
    pid = linkray.process.pid
    hostile_ids = [f"FUZZ-{index}" for index in range(args.hostile)]
    working_ids = [f"WORK-{index}" for index in range(args.working)]
    try:
        stop = asyncio.Event()
        before, during = WorkTally(), WorkTally()
        # Five CALLs a second each: busier than real chargers, inside LinkRay's frame budget.
        workers = [asyncio.create_task(work(linkray.url, cbid, stop, before, interval_s=0.2)) for cbid in working_ids]
        await asyncio.sleep(args.warmup)
        rss_before = rss_bytes(pid)
        before.round_trips_ms.clear()
        await asyncio.sleep(args.baseline)
        baseline = list(before.round_trips_ms)
        # Same chargers, now counted into `during`.
        during_start = len(before.round_trips_ms)
        results = spawn.Queue()
        hostile = spawn.Process(target=_hostile_process, args=(linkray.url, hostile_ids, args.frames, args.seed, args.kinds, results))
        started = time.monotonic()
        hostile.start()
        hostile_tally = await asyncio.to_thread(results.get, True, args.max_runtime)
        hostile.join(10)
        fuzz_s = time.monotonic() - started
        during.round_trips_ms = before.round_trips_ms[during_start:]
        stop.set()
        await asyncio.gather(*workers)
        alive = linkray.process.poll() is None
        health = None
        if alive:
            with urllib.request.urlopen(linkray.http_url + "/healthz", timeout=10) as response:
                health = response.status
        rss_after = await settled_rss(pid) if alive else None
        rows, previous = journal_rows(data_dir, hostile_ids), -1
        while rows != previous:  # until the journal has caught up (flushes every second)
            await asyncio.sleep(2.0)
            rows, previous = journal_rows(data_dir, hostile_ids), rows
        log = linkray.log()
    finally:
        linkray.stop()
        csms_process.kill()

    p99_before, p99_during = p99(baseline), p99(during.round_trips_ms)
    added_ms = (p99_during - p99_before) if p99_before is not None and p99_during is not None else None
    rss_change = (rss_after - rss_before) / rss_before if rss_after else None
    # Invalid UTF-8 in a text frame is refused by the websocket layer (connection closed, logged
    # as frame_rejected); frames over the size limit are journaled cut to their first kilobyte.
    not_journaled = hostile_tally["by_kind"].get("invalid_utf8_text", 0)
    reached = hostile_tally["sent"] - hostile_tally["lost"] - not_journaled
    checks = [
        ("LinkRay still running, /healthz 200", alive and health == 200),
        ("working chargers saw no error", not before.errors),
        ("p99 added during fuzzing <= 10 ms", added_ms is not None and added_ms <= 10),
        ("RSS within 10 % afterwards", rss_change is not None and abs(rss_change) <= 0.10),
        ("no traceback in LinkRay's log", "Traceback" not in log),
        ("journal holds every frame that reached LinkRay", rows >= reached),
    ]
    print(f"# Hostile-input fuzzing: {args.frames} frames from {args.hostile} chargers, {args.working} working\n")
    print(f"- fuzzing took {fuzz_s:.1f} s ({args.frames / fuzz_s:.0f} frames/s)")
    print(f"- frames by kind: {json.dumps(hostile_tally['by_kind'], sort_keys=True)}")
    print(f"- hostile sockets closed by LinkRay, by code: {hostile_tally['closed_by_server']} ({hostile_tally['reconnects']} reconnects)")
    print(f"- hostile reconnects that failed: {hostile_tally['connect_failures']} {json.dumps(hostile_tally['connect_errors'])}")
    print(f"- working chargers: {len(baseline)} round trips before, {len(during.round_trips_ms)} during; "
          f"p99 {fmt(p99_before)} ms before, {fmt(p99_during)} ms during (added {fmt(added_ms)} ms); errors: {len(before.errors)}")
    for error in before.errors[:5]:
        print(f"  - {error}")
    print(f"- RSS {rss_before / 2**20:.1f} MiB before, {rss_after / 2**20 if rss_after else float('nan'):.1f} MiB after "
          f"({fmt(rss_change * 100 if rss_change is not None else None)} %)")
    print(f"- journal: {rows} rows from the hostile chargers for {hostile_tally['sent']} frames sent, {reached} of which "
          f"reached LinkRay ({not_journaled} invalid UTF-8, refused by the websocket layer and logged; {hostile_tally['lost']} lost)")
    print()
    print("| check | result |\n|---|---|")
    for name, ok in checks:
        print(f"| {name} | {'PASS' if ok else 'MISS'} |")
    return 0 if all(ok for _, ok in checks) else 1


def fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--hostile", type=int, default=5, help="hostile chargers")
    parser.add_argument("--working", type=int, default=20, help="well-behaved chargers measured meanwhile")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds measured before the fuzzing")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-runtime", type=float, default=600.0)
    parser.add_argument("--kinds", type=lambda text: frozenset(text.split(",")), default=None,
                        help="only these kinds, comma-separated (to find which one costs)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(asyncio.run(run(parse_args())))

#!/usr/bin/env python3
"""Replay benchmark: how long LinkRay takes to hand a CSMS the messages it kept during an outage,
and whether live chargers keep their latency meanwhile.

    .venv/bin/python bench/replay.py                                  # 10,000 messages, 100 chargers
    .venv/bin/python bench/replay.py --chargers 10 --messages 20      # smoke test

All on 127.0.0.1. The CSMS is a child process (plain `websockets`, answers every CALL at once). Steps:

1. CSMS up; --live chargers and --chargers outage chargers connect through LinkRay (`manage.py
   serve`, embedded default, data in a temp dir). Baseline: live chargers send Heartbeats at
   --live-rate CALLs/s for --baseline seconds; round trips are recorded.
2. The CSMS goes away. Each outage charger sends --messages CALLs (a StartTransaction, MeterValues,
   a StopTransaction, StatusNotifications): LinkRay answers them and stores them durably.
3. The CSMS comes back. Clock starts when it listens again; it stops when the CSMS has received
   every stored message. Live chargers keep sending Heartbeats at the same rate throughout (once
   their own CSMS legs are back), and their round trips are compared with the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"LinkRay listening on http://[^ ]+:(\d+)/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- CSMS process --------------------------------------------------------------------------


def csms_main(port: int, replayed, connected, done_at, expected: int, stop_event) -> None:
    """Answer every CALL at once; count CALLs from outage chargers (ids starting 'RPL')."""

    async def handler(websocket):
        charge_box_id = websocket.request.path.rsplit("/", 1)[-1]
        outage = charge_box_id.startswith("RPL")
        with connected.get_lock():
            connected.value += 1
        transaction_id = 0
        try:
            async for raw in websocket:
                message = json.loads(raw)
                if message[0] != 2:
                    continue
                if outage:
                    with replayed.get_lock():
                        replayed.value += 1
                        if replayed.value == expected:
                            done_at.value = time.time()
                if message[2] == "StartTransaction":
                    transaction_id += 1
                    payload = {"transactionId": transaction_id, "idTagInfo": {"status": "Accepted"}}
                elif message[2] == "StopTransaction":
                    payload = {"idTagInfo": {"status": "Accepted"}}
                elif message[2] == "Heartbeat":
                    payload = {"currentTime": "2026-11-25T00:00:00Z"}
                else:
                    payload = {}
                await websocket.send(json.dumps([3, message[1], payload]))
        except websockets.ConnectionClosed:
            pass
        finally:
            with connected.get_lock():
                connected.value -= 1

    async def main():
        async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp1.6"], compression=None, max_queue=None):
            while not stop_event.is_set():
                await asyncio.sleep(0.05)

    asyncio.run(main())


class CsmsProcess:
    def __init__(self, port: int, expected: int):
        self.port = port
        self.replayed = multiprocessing.Value("q", 0)
        self.connected = multiprocessing.Value("q", 0)
        self.done_at = multiprocessing.Value("d", 0.0)
        self.expected = expected
        self.process = None
        self.stop_event = None

    def start(self) -> None:
        self.stop_event = multiprocessing.Event()
        self.process = multiprocessing.Process(
            target=csms_main,
            args=(self.port, self.replayed, self.connected, self.done_at, self.expected, self.stop_event),
            daemon=True,
        )
        self.process.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("CSMS did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # an outage: connections drop, nothing is said
            self.process.join(5)
            self.process = None
        self.connected.value = 0


# --- chargers ------------------------------------------------------------------------------


class Charger:
    def __init__(self, url: str, charge_box_id: str):
        self.url = f"{url}/{charge_box_id}"
        self.charge_box_id = charge_box_id
        self.websocket = None
        self.counter = 0

    async def connect(self):
        self.websocket = await connect(self.url, subprotocols=["ocpp1.6"], compression=None, open_timeout=30, ping_interval=None)
        return self

    async def call(self, action: str, payload: dict, timeout: float = 30.0) -> tuple[dict, float]:
        self.counter += 1
        unique_id = str(self.counter)
        started = time.perf_counter()
        await self.websocket.send(json.dumps([2, unique_id, action, payload]))
        while True:
            raw = await asyncio.wait_for(self.websocket.recv(), timeout)
            message = json.loads(raw)
            if message[0] in (3, 4) and message[1] == unique_id:
                return (message[2] if message[0] == 3 else {}), (time.perf_counter() - started) * 1000
            # A CALL from LinkRay or the CSMS: answer it so nothing waits on us.
            if message[0] == 2:
                await self.websocket.send(json.dumps([3, message[1], {}]))


def outage_messages(count: int) -> list[tuple[str, dict]]:
    stamp = "2026-11-25T12:00:00Z"
    messages = [("StartTransaction", {"connectorId": 1, "idTag": "BENCH", "meterStart": 0, "timestamp": stamp})]
    sample = [
        {"value": "16.0", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
        {"value": "16.1", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
        {"value": "15.9", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
        {"value": "11000", "measurand": "Power.Active.Import", "unit": "W"},
    ]
    while len(messages) < count - 1:
        energy = len(messages) * 100
        messages.append(
            (
                "MeterValues",
                {"connectorId": 1, "transactionId": None, "meterValue": [{"timestamp": stamp, "sampledValue": sample + [{"value": str(energy), "unit": "Wh"}]}]},
            )
        )
    messages.append(("StopTransaction", {"transactionId": None, "meterStop": count * 100, "timestamp": stamp}))
    return messages[:count]


async def send_outage_messages(charger: Charger, count: int) -> None:
    transaction_id = None
    for action, payload in outage_messages(count):
        if "transactionId" in payload:
            payload = {**payload, "transactionId": transaction_id}
        answer, _ = await charger.call(action, payload)
        if action == "StartTransaction":
            transaction_id = answer["transactionId"]


async def live_traffic(chargers: list[Charger], rate: float, stop: asyncio.Event, samples: list[float], failures: list[int]):
    interval = 1.0 / rate
    busy: set[int] = set()
    next_at = time.perf_counter()
    index = 0

    async def one(position: int):
        try:
            _, rtt = await chargers[position].call("Heartbeat", {}, timeout=10)
            samples.append(rtt)
        except Exception:
            failures.append(1)
        finally:
            busy.discard(position)

    tasks = set()
    while not stop.is_set():
        position = index % len(chargers)
        index += 1
        if position not in busy:
            busy.add(position)
            task = asyncio.create_task(one(position))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    if tasks:
        await asyncio.wait(tasks, timeout=15)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- the run -------------------------------------------------------------------------------


def start_linkray(data_dir: Path, csms_port: int) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    log_path = data_dir / "linkray.log"
    env = {
        **os.environ,
        "LINKRAY_DATA_DIR": str(data_dir),
        "LINKRAY_CSMS_URL": f"ws://127.0.0.1:{csms_port}",
        "LINKRAY_CSMS_RECONNECT_MIN_S": "0.2",
        "LINKRAY_CSMS_RECONNECT_MAX_S": "1.0",
        "LINKRAY_LOG_LEVEL": "warning",
    }
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None or LISTENING.search(log_path.read_text(errors="replace")):
            break
        time.sleep(0.05)
    if process.poll() is not None or not LISTENING.search(log_path.read_text(errors="replace")):
        raise RuntimeError("LinkRay did not start:\n" + log_path.read_text(errors="replace")[-3000:])
    return process, port, log_path


async def run(args) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="linkray-replay-bench-"))
    csms_port = free_port()
    expected = args.chargers * args.messages
    csms = CsmsProcess(csms_port, expected)
    linkray = None
    try:
        csms.start()
        linkray, port, log_path = start_linkray(data_dir, csms_port)
        url = f"ws://127.0.0.1:{port}/ocpp"
        live = [await Charger(url, f"LIVE-{n}").connect() for n in range(args.live)]
        outage = []
        for start in range(0, args.chargers, 50):
            outage += await asyncio.gather(*(Charger(url, f"RPL-{n}").connect() for n in range(start, min(args.chargers, start + 50))))
        await wait_until(lambda: csms.connected.value == args.live + args.chargers, 30, "all CSMS legs up")

        baseline, baseline_failures = [], []
        stop = asyncio.Event()
        task = asyncio.create_task(live_traffic(live, args.live_rate, stop, baseline, baseline_failures))
        await asyncio.sleep(args.baseline)
        stop.set()
        await task

        csms.stop()
        csms.replayed.value = 0
        await asyncio.sleep(0.5)  # let LinkRay see the legs drop (answers are local either way)
        queue_started = time.perf_counter()
        await asyncio.gather(*(send_outage_messages(charger, args.messages) for charger in outage))
        queue_s = time.perf_counter() - queue_started

        during, during_failures = [], []
        csms.start()
        back_at = time.time()
        await wait_until(lambda: csms.connected.value >= args.live + args.chargers, 60, "CSMS legs back")
        stop = asyncio.Event()
        task = asyncio.create_task(live_traffic(live, args.live_rate, stop, during, during_failures))
        await wait_until(lambda: csms.replayed.value >= expected, args.timeout, f"{expected} replayed messages")
        replay_s = csms.done_at.value - back_at
        stop.set()
        await task
        for charger in live + outage:
            await charger.websocket.close()
        return {
            "messages": expected,
            "chargers": args.chargers,
            "queue_s": queue_s,
            "replay_s": replay_s,
            "replay_rate": expected / replay_s if replay_s > 0 else float("nan"),
            "baseline": baseline,
            "during": during,
            "failures": len(baseline_failures) + len(during_failures),
            "duplicates": csms.replayed.value - expected,
        }
    finally:
        csms.stop()
        if linkray is not None:
            linkray.send_signal(signal.SIGTERM)
            try:
                linkray.wait(20)
            except subprocess.TimeoutExpired:
                linkray.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


async def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=100, help="chargers with stored messages (default 100)")
    parser.add_argument("--messages", type=int, default=100, help="stored messages per charger (default 100)")
    parser.add_argument("--live", type=int, default=20, help="live chargers measured meanwhile (default 20)")
    parser.add_argument("--live-rate", type=float, default=50.0, help="live Heartbeats per second (default 50)")
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of baseline traffic (default 5)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds of replay")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    base, during = result["baseline"], result["during"]
    print(f"LinkRay replay benchmark ({os.cpu_count()} cores, embedded default: SQLite, one process)")
    print(f"  stored during the outage : {result['messages']} messages from {result['chargers']} chargers in {result['queue_s']:.1f} s "
          f"({result['messages'] / result['queue_s']:.0f} msg/s, each committed before its answer)")
    print(f"  replay                   : {result['replay_s']:.1f} s from CSMS back to last message ({result['replay_rate']:.0f} msg/s)")
    print(f"  duplicates at the CSMS   : {result['duplicates']}")
    print(f"  live Heartbeat round trip: baseline p50 {percentile(base, .5):.2f} ms p99 {percentile(base, .99):.2f} ms ({len(base)} calls)")
    print(f"                             during replay p50 {percentile(during, .5):.2f} ms p99 {percentile(during, .99):.2f} ms ({len(during)} calls)")
    print(f"  failed live calls        : {result['failures']}")
    if base and during:
        print(f"  comparison               : p50 x{percentile(during, .5) / percentile(base, .5):.2f}, "
              f"p99 x{percentile(during, .99) / percentile(base, .99):.2f} during replay vs baseline; mean {statistics.fmean(during):.2f} vs {statistics.fmean(base):.2f} ms")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Relay benchmark: simulated chargers through LinkRay to a CSMS on loopback, against the same
chargers straight to the CSMS, in one run.

    .venv/bin/python bench/relay.py                                 # 1000 chargers, 100/500/1000 CALLs/s
    .venv/bin/python bench/relay.py --chargers 50 --duration 3      # smoke test, about a minute
    .venv/bin/python bench/relay.py --csms-compression              # adds the deflate-on-CSMS-leg rows

Three processes, all on 127.0.0.1:

- this one, the load generator: N chargers on plain `websockets` (asyncio), raw JSON text frames,
  no compression, no keepalive pings of its own;
- the CSMS, a child process (multiprocessing, spawn): answers every CALL at once with a prebuilt
  CALLRESULT, and sends its own CALLs (GetConfiguration, TriggerMessage) when told to over a Pipe;
- LinkRay, `manage.py serve` as operators run it, with its data directory in a temporary folder.

Each charger is connected twice, once through LinkRay (CSMS path /via/<id>) and once straight to
the CSMS (/direct/<id>). At every rate the direct leg runs first, then the LinkRay leg, each for
--duration seconds, on an open-loop schedule: CALLs evenly spaced at the rate, chargers taken in
turn, at most one outstanding CALL per charger per direction (a charger whose previous CALL is
still out when its turn comes is counted as skipped, not queued). --csms-share of the rate is
CSMS->charger CALLs, the rest charger->CSMS (3 MeterValues, then a Heartbeat, per charger).

Figures (see docs/performance.md for the method and the last results):

- LinkRay CPU per relayed CALL round trip: LinkRay's CPU time (process and children, user+system,
  psutil) over the traffic window (traffic, drain, --settle for the journal flush), minus its idle
  rate (measured with all chargers connected and no traffic, for --idle seconds) times the window,
  divided by the CALL round trips that completed through LinkRay in both directions;
- added latency: through-LinkRay round trip minus direct round trip, p50 vs p50 and p99 vs p99,
  each direction measured by the side that sent the CALL;
- resident memory per charger: LinkRay's RSS with all chargers connected (settled) minus its RSS
  after a warm-up with none connected, divided by the chargers connected;
- connect/disconnect cycles: all chargers connect (each sends a BootNotification), then all
  disconnect; RSS after every cycle, the last compared with the first.

Progress goes to stderr, the report (Markdown tables, targets PASS/MISS) to stdout, also when the
run is cut short (Ctrl-C, LinkRay exiting, --max-runtime): then it says so, shows LinkRay's log
tail, and the exit status is 1. Failed calls are counted, never fatal. --py-spy DIR profiles
LinkRay during its traffic phases (py-spy is not a project dependency: pip install it yourself).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import multiprocessing
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
OCPP16 = "ocpp1.6"
LISTENING = re.compile(r"LinkRay listening on http://[^ ]+:(\d+)/")
KIB = 1024
MIB = 1024 * 1024

# Targets from the issue, at 1000 chargers.
TARGET_CPU_PER_CALL_MS = 0.2
TARGET_ADDED_P50_MS = 0.5
TARGET_ADDED_P99_MS = 3.0
TARGET_MEMORY_PER_CHARGER_KIB = 100
TARGET_CYCLE_GROWTH = 0.10
TARGET_LATENCY_RATE = 100
TARGET_NO_FAILURE_RATE = 1000

# --- frames ----------------------------------------------------------------------------------
# Prebuilt: a CALL is '[2,"' + unique_id + '","Action",' + payload + ']', an answer
# '[3,"' + unique_id + '",' + payload + ']'. Nothing is encoded per message.

_STAMP = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")

CSMS_ANSWERS = {
    "Heartbeat": '{"currentTime":"%s"}' % _STAMP,
    "MeterValues": "{}",
    "BootNotification": '{"currentTime":"%s","interval":300,"status":"Accepted"}' % _STAMP,
    "StatusNotification": "{}",
}
CHARGER_ANSWERS = {
    "GetConfiguration": '{"configurationKey":[{"key":"HeartbeatInterval","readonly":false,"value":"300"}],"unknownKey":[]}',
    "TriggerMessage": '{"status":"Accepted"}',
}
CSMS_CALLS = (
    ("GetConfiguration", '{"key":["HeartbeatInterval"]}'),
    ("TriggerMessage", '{"requestedMessage":"StatusNotification","connectorId":1}'),
)
BOOT_PAYLOAD = '{"chargePointVendor":"LinkRayBench","chargePointModel":"Sim-22","firmwareVersion":"1.0.0"}'


def meter_values_payload(index: int) -> str:
    """A three-phase 11-16 A session's periodic sample, as chargers send them."""
    current_a = [16.0 - (index % 7) * 0.5, 15.8 - (index % 5) * 0.5, 15.9 - (index % 3) * 0.5]
    power_w = round(sum(current_a) * 230)
    energy_wh = 100_000 + index * 37

    def sample(value, measurand, unit, phase=None):
        entry = {"value": value, "context": "Sample.Periodic", "measurand": measurand, "location": "Outlet", "unit": unit}
        if phase:
            entry["phase"] = phase
        return entry

    sampled_value = [sample(f"{current:.1f}", "Current.Import", "A", phase) for current, phase in zip(current_a, ("L1", "L2", "L3"))]
    sampled_value.append(sample(str(power_w), "Power.Active.Import", "W"))
    sampled_value.append(sample(str(energy_wh), "Energy.Active.Import.Register", "Wh"))
    payload = {"connectorId": 1, "transactionId": 1000 + index, "meterValue": [{"timestamp": _STAMP, "sampledValue": sampled_value}]}
    return json.dumps(payload, separators=(",", ":"))


def read_head(message: str | bytes) -> tuple[str, str, str | None]:
    """(message type digit, unique id, action) of a frame. Fast path for the compact frames both
    peers here write (LinkRay relays them unchanged); json for anything else. Raises ValueError."""
    if isinstance(message, bytes):
        message = message.decode("utf-8")
    if message[:1] == "[" and message[2:4] == ',"':
        kind = message[1]
        end = message.index('"', 4)
        action = None
        if kind == "2":
            start = end + 3
            action = message[start : message.index('"', start)]
        return kind, message[4:end], action
    frame = json.loads(message)
    if not isinstance(frame, list) or len(frame) < 3:
        raise ValueError("not an OCPP-J frame")
    return str(frame[0]), str(frame[1]), str(frame[2]) if frame[0] == 2 else None


# --- one side's CALLs --------------------------------------------------------------------------


class CallRecorder:
    """The CALLs one side sent in one phase and how they came back."""

    def __init__(self):
        self.sent = 0
        self.outstanding = 0
        self.latencies_s: list[float] = []
        self.call_errors = 0
        self.timed_out = 0
        self.lost = 0  # connection closed with the CALL out
        self.skipped = 0  # the charger's previous CALL in this direction was still out
        self.schedule_lag_s: list[float] = []

    def summary(self) -> dict:
        lag = sorted(self.schedule_lag_s)
        return {
            "sent": self.sent,
            "ok": len(self.latencies_s),
            "call_errors": self.call_errors,
            "timed_out": self.timed_out,
            "lost": self.lost,
            "skipped": self.skipped,
            "latencies_ms": [latency * 1000 for latency in self.latencies_s],
            "schedule_lag_p99_ms": (percentile(lag, 0.99) or 0.0) * 1000,
        }


class Peer:
    """One websocket as seen by the side issuing CALLs on it: one outstanding CALL at a time."""

    __slots__ = ("connection", "charge_box_id", "index", "calls", "pending_id", "pending_at", "pending_recorder", "closed", "reader")

    def __init__(self, connection, charge_box_id: str, index: int = 0):
        self.connection = connection
        self.charge_box_id = charge_box_id
        self.index = index
        self.calls = 0
        self.pending_id: str | None = None
        self.pending_at = 0.0
        self.pending_recorder: CallRecorder | None = None
        self.closed = False
        self.reader: asyncio.Task | None = None

    def resolve(self, kind: str, unique_id: str, now: float) -> bool:
        if self.pending_id != unique_id or self.pending_recorder is None:
            return False
        recorder = self.pending_recorder
        if kind == "3":
            recorder.latencies_s.append(now - self.pending_at)
        else:
            recorder.call_errors += 1
        recorder.outstanding -= 1
        self.pending_id = None
        self.pending_recorder = None
        return True

    def give_up(self, outcome: str) -> None:
        recorder = self.pending_recorder
        if recorder is not None:
            setattr(recorder, outcome, getattr(recorder, outcome) + 1)
            recorder.outstanding -= 1
        self.pending_id = None
        self.pending_recorder = None

    def connection_lost(self) -> None:
        self.closed = True
        self.give_up("lost")


async def run_open_loop(peers: list[Peer], rate_per_s: float, duration_s: float, *, first_peer: int,
                        build_call, recorder: CallRecorder, call_timeout_s: float, unique_ids) -> None:
    """Send rate_per_s * duration_s CALLs evenly spaced in time, taking peers in turn."""
    total = int(rate_per_s * duration_s)
    if total <= 0 or not peers:
        return
    interval_s = 1.0 / rate_per_s
    clock = time.perf_counter
    start = clock() + 0.005
    count = len(peers)
    for number in range(total):
        due = start + number * interval_s
        now = clock()
        if due > now + 0.0002:
            await asyncio.sleep(due - now)
            now = clock()
        recorder.schedule_lag_s.append(max(0.0, now - due))
        peer = peers[(first_peer + number) % count]
        if peer.pending_id is not None:
            if now - peer.pending_at < call_timeout_s:
                recorder.skipped += 1
                continue
            peer.give_up("timed_out")
        if peer.closed:
            recorder.lost += 1
            recorder.sent += 1
            continue
        unique_id = next(unique_ids)
        frame = build_call(peer, unique_id)
        peer.calls += 1
        peer.pending_id = unique_id
        peer.pending_recorder = recorder
        recorder.sent += 1
        recorder.outstanding += 1
        peer.pending_at = clock()
        try:
            await peer.connection.send(frame)
        except ConnectionClosed:
            peer.connection_lost()


async def drain(peers: list[Peer], recorder: CallRecorder, timeout_s: float) -> None:
    """Wait for the answers still out; what is still out after timeout_s has timed out."""
    deadline = time.monotonic() + timeout_s
    while recorder.outstanding > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    if recorder.outstanding > 0:
        for peer in peers:
            if peer.pending_recorder is recorder:
                peer.give_up("timed_out")


@dataclass
class FrameCounters:
    unmatched: int = 0  # answers to no outstanding CALL (late, after a timeout)
    malformed: int = 0


async def answer_and_resolve(peer: Peer, answers: dict[str, str], counters: FrameCounters) -> None:
    """Read one websocket until it closes: answer every CALL at once with the prebuilt payload
    for its action, match every answer to this side's outstanding CALL."""
    connection = peer.connection
    clock = time.perf_counter
    try:
        async for message in connection:
            now = clock()
            try:
                kind, unique_id, action = read_head(message)
            except (ValueError, IndexError, TypeError):
                counters.malformed += 1
                continue
            if kind == "2":
                await connection.send('[3,"' + unique_id + '",' + answers.get(action, "{}") + "]")
            elif not peer.resolve(kind, unique_id, now):
                counters.unmatched += 1
    except ConnectionClosed:
        pass
    finally:
        peer.connection_lost()


def charger_call(meter_values: list[str]):
    def build(peer: Peer, unique_id: str) -> str:
        # Per charger: MeterValues, MeterValues, MeterValues, Heartbeat, ...
        if peer.calls % 4 == 3:
            return '[2,"' + unique_id + '","Heartbeat",{}]'
        return '[2,"' + unique_id + '","MeterValues",' + meter_values[peer.index % len(meter_values)] + "]"

    return build


def csms_call(peer: Peer, unique_id: str) -> str:
    action, payload = CSMS_CALLS[peer.calls % len(CSMS_CALLS)]
    return '[2,"' + unique_id + '","' + action + '",' + payload + "]"


# --- the CSMS (child process) ----------------------------------------------------------------


def csms_process_main(control, compression: bool, open_files: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it, also on Ctrl-C
    raise_open_files_limit(open_files)
    asyncio.run(CsmsServer(control, compression).run())


class CsmsServer:
    """Answers every CALL at once; sends its own CALLs on the parent's command."""

    def __init__(self, control, compression: bool):
        self.control = control
        self.compression = compression
        self.legs: dict[str, dict[str, Peer]] = collections.defaultdict(dict)
        self.unique_ids = (f"c{number}" for number in itertools.count(1))
        self.counters = FrameCounters()
        self.stopped: asyncio.Future | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.stopped = loop.create_future()
        async with serve(
            self.handle,
            "127.0.0.1",
            0,
            subprotocols=[OCPP16],
            compression="deflate" if self.compression else None,
            ping_interval=None,
            close_timeout=5,
            open_timeout=60,
            server_header=None,
            backlog=2048,
        ) as server:
            self.control.send({"port": server.sockets[0].getsockname()[1]})
            loop.add_reader(self.control.fileno(), self._on_control)
            await self.stopped

    async def handle(self, connection) -> None:
        leg, _, charge_box_id = connection.request.path.strip("/").partition("/")
        peers = self.legs[leg]
        peer = Peer(connection, charge_box_id)
        peers[charge_box_id] = peer
        try:
            await answer_and_resolve(peer, CSMS_ANSWERS, self.counters)
        finally:
            if peers.get(charge_box_id) is peer:
                del peers[charge_box_id]

    def _on_control(self) -> None:
        try:
            while self.control.poll():
                asyncio.ensure_future(self._serve_request(self.control.recv()))
        except (EOFError, OSError):
            if not self.stopped.done():
                self.stopped.set_result(None)

    async def _serve_request(self, request: dict) -> None:
        operation = request["op"]
        reply: dict = {"id": request["id"]}
        if operation == "count":
            reply["counts"] = {leg: len(peers) for leg, peers in self.legs.items()}
            reply["unmatched"] = self.counters.unmatched
            reply["malformed"] = self.counters.malformed
        elif operation == "run":
            peers = sorted(self.legs[request["leg"]].values(), key=lambda peer: peer.charge_box_id)
            for index, peer in enumerate(peers):
                peer.index = index
            recorder = CallRecorder()
            await run_open_loop(
                peers,
                request["rate_per_s"],
                request["duration_s"],
                first_peer=len(peers) // 2,  # not in step with the chargers' own CALLs
                build_call=csms_call,
                recorder=recorder,
                call_timeout_s=request["call_timeout_s"],
                unique_ids=self.unique_ids,
            )
            await drain(peers, recorder, request["call_timeout_s"])
            reply["result"] = recorder.summary()
        elif operation == "stop":
            self.stopped.set_result(None)
        self.control.send(reply)


class CsmsControl:
    """The parent's end of the Pipe: request/reply, matched by id."""

    def __init__(self, connection):
        self.connection = connection
        self.waiting: dict[int, asyncio.Future] = {}
        self.ids = itertools.count(1)
        asyncio.get_running_loop().add_reader(connection.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self.connection.poll():
                reply = self.connection.recv()
                waiter = self.waiting.pop(reply.get("id"), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(reply)
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.connection.fileno())
            for waiter in self.waiting.values():
                if not waiter.done():
                    waiter.set_exception(RuntimeError("the CSMS process went away"))

    async def request(self, timeout_s: float, **request) -> dict:
        request["id"] = next(self.ids)
        waiter = asyncio.get_running_loop().create_future()
        self.waiting[request["id"]] = waiter
        self.connection.send(request)
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        finally:
            self.waiting.pop(request["id"], None)

    def close(self) -> None:
        try:
            asyncio.get_running_loop().remove_reader(self.connection.fileno())
        except (RuntimeError, ValueError, OSError):
            pass


# --- the chargers (this process) -------------------------------------------------------------


class Fleet:
    """N simulated chargers on one leg (through LinkRay or straight to the CSMS)."""

    def __init__(self, base_url: str, charge_box_ids: list[str], *, batch_size: int, open_timeout_s: float):
        self.base_url = base_url.rstrip("/")
        self.charge_box_ids = charge_box_ids
        self.batch_size = batch_size
        self.open_timeout_s = open_timeout_s
        self.peers: list[Peer] = []
        self.counters = FrameCounters()
        self.connect_errors: collections.Counter = collections.Counter()

    async def connect(self) -> None:
        for start in range(0, len(self.charge_box_ids), self.batch_size):
            batch = self.charge_box_ids[start : start + self.batch_size]
            results = await asyncio.gather(*(self._open(charge_box_id) for charge_box_id in batch), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    if isinstance(result, asyncio.CancelledError):
                        raise result
                    self.connect_errors[type(result).__name__] += 1
                else:
                    result.index = len(self.peers)
                    self.peers.append(result)

    async def _open(self, charge_box_id: str) -> Peer:
        connection = await connect(
            f"{self.base_url}/{charge_box_id}",
            subprotocols=[OCPP16],
            compression=None,
            ping_interval=None,
            open_timeout=self.open_timeout_s,
            close_timeout=5,
            proxy=None,
            user_agent_header=None,
        )
        peer = Peer(connection, charge_box_id)
        peer.reader = asyncio.create_task(answer_and_resolve(peer, CHARGER_ANSWERS, self.counters))
        return peer

    @property
    def connected(self) -> int:
        return sum(1 for peer in self.peers if not peer.closed)

    async def boot(self, unique_ids, timeout_s: float) -> CallRecorder:
        """Every charger sends a BootNotification at once, as after a restart."""
        recorder = CallRecorder()
        for peer in self.peers:
            if peer.closed or peer.pending_id is not None:
                continue
            unique_id = next(unique_ids)
            peer.pending_id, peer.pending_recorder, peer.pending_at = unique_id, recorder, time.perf_counter()
            recorder.sent += 1
            recorder.outstanding += 1
            try:
                await peer.connection.send('[2,"' + unique_id + '","BootNotification",' + BOOT_PAYLOAD + "]")
            except ConnectionClosed:
                peer.connection_lost()
        await drain(self.peers, recorder, timeout_s)
        return recorder

    async def close(self) -> None:
        for start in range(0, len(self.peers), 200):
            batch = self.peers[start : start + 200]
            await asyncio.gather(*(peer.connection.close() for peer in batch), return_exceptions=True)
        readers = [peer.reader for peer in self.peers if peer.reader is not None]
        if readers:
            await asyncio.wait(readers, timeout=10)
        for peer in self.peers:
            if peer.reader is not None and not peer.reader.done():
                peer.reader.cancel()


# --- LinkRay (subprocess) --------------------------------------------------------------------


class LinkRayDied(RuntimeError):
    pass


class LinkRayServer:
    """`manage.py serve` on an ephemeral loopback port, its log in the work directory."""

    def __init__(self, name: str, work_dir: Path, csms_url: str, extra_env: dict[str, str], port: int = 0):
        self.name = name
        self.data_dir = work_dir / f"linkray-{name}"
        self.log_path = work_dir / f"linkray-{name}.log"
        self.csms_url = csms_url
        self.extra_env = extra_env
        self.popen: subprocess.Popen | None = None
        self.process: psutil.Process | None = None
        self.port = port  # 0: an ephemeral one, known once listening

    async def start(self, timeout_s: float = 120) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith("LINKRAY_")}
        # The embedded default (SQLite, in-memory layer), whatever this shell has set.
        env.pop("REDIS_URL", None)
        env.pop("DATABASE_URL", None)
        env.update(
            {
                "LINKRAY_CSMS_URL": self.csms_url,
                "LINKRAY_DATA_DIR": str(self.data_dir),
                "LINKRAY_ADMIN_PASSWORD": "bench-only-password",
                "PYTHONUNBUFFERED": "1",
                **self.extra_env,
            }
        )
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the benchmark only; it stops LinkRay itself
            )
        self.process = psutil.Process(self.popen.pid)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise LinkRayDied(f"LinkRay ({self.name}) exited with {self.popen.returncode} while starting")
            match = LISTENING.search(self.log_text())
            if match:
                self.port = int(match.group(1))
                return
            await asyncio.sleep(0.1)
        raise LinkRayDied(f"LinkRay ({self.name}) did not start within {timeout_s:.0f} s")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def check_alive(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            raise LinkRayDied(f"LinkRay ({self.name}) exited with {self.popen.returncode if self.popen else '?'}")

    def _tree(self) -> list[psutil.Process]:
        self.check_alive()
        return [self.process, *self.process.children(recursive=True)]

    def cpu_s(self) -> float:
        total = 0.0
        for process in self._tree():
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss_bytes(self) -> int:
        total = 0
        for process in self._tree():
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def open_files_limit(self) -> int | None:
        try:
            return self.process.rlimit(psutil.RLIMIT_NOFILE)[0]
        except (psutil.Error, AttributeError):
            return None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_problems(self) -> collections.Counter:
        """WARNING/ERROR/CRITICAL lines by level and event name."""
        problems: collections.Counter = collections.Counter()
        for line in self.log_text().splitlines():
            match = re.match(r"\S+ \S+ (WARNING|ERROR|CRITICAL) (\S+) (\S+)", line)
            if match:
                problems[f"{match.group(1)} {match.group(2)} {match.group(3)}"] += 1
            elif line.startswith("Traceback"):
                problems["Traceback"] += 1
        return problems

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, timeout_s: float = 20) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


# --- measuring -------------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Linear interpolation between order statistics (numpy's default)."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def latency_stats(latencies_ms: list[float]) -> dict:
    ordered = sorted(latencies_ms)
    return {
        "n": len(ordered),
        "p50_ms": percentile(ordered, 0.50),
        "p99_ms": percentile(ordered, 0.99),
        "max_ms": ordered[-1] if ordered else None,
    }


def raise_open_files_limit(needed: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def process_cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def machine_busy_s() -> float:
    """CPU time all processes on the machine have used in user and system mode (every core;
    interrupt and softirq time, where loopback networking partly lands, is left out)."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system


async def wait_until_quiet(cpu_s, *, threshold_cores: float = 0.03, window_s: float = 0.5, timeout_s: float = 30.0) -> bool:
    """Until the process has used under threshold_cores for two windows in a row."""
    deadline = time.monotonic() + timeout_s
    quiet_windows = 0
    while time.monotonic() < deadline:
        before, started = cpu_s(), time.monotonic()
        await asyncio.sleep(window_s)
        used = (cpu_s() - before) / (time.monotonic() - started)
        quiet_windows = quiet_windows + 1 if used < threshold_cores else 0
        if quiet_windows >= 2:
            return True
    return False


def progress(start: float, text: str) -> None:
    print(f"[{time.monotonic() - start:6.1f}s] {text}", file=sys.stderr, flush=True)


@dataclass
class Phase:
    label: str  # "direct", "linkray" or "linkray+deflate"
    rate_per_s: int
    window_s: float
    charger_calls: dict
    csms_calls: dict
    linkray_cpu_s: float | None
    csms_cpu_s: float
    load_generator_cpu_s: float
    other_cpu_s: float  # other processes on the machine in the window: noise

    @property
    def round_trips_ok(self) -> int:
        return self.charger_calls["ok"] + self.csms_calls["ok"]

    @property
    def failed(self) -> int:
        return sum(calls[key] for calls in (self.charger_calls, self.csms_calls) for key in ("call_errors", "timed_out", "lost"))

    @property
    def skipped(self) -> int:
        return self.charger_calls["skipped"] + self.csms_calls["skipped"]


@dataclass
class LinkRayFigures:
    label: str
    rss_started_bytes: int = 0
    rss_baseline_bytes: int = 0
    rss_connected_bytes: int = 0
    rss_after_traffic_bytes: int = 0
    connected: int = 0
    connect_errors: dict = field(default_factory=dict)
    connect_s: float = 0.0
    connect_cpu_per_charger_ms: float | None = None
    idle_cores: float = 0.0
    idle_window_s: float = 0.0
    open_files_limit: int | None = None

    @property
    def memory_per_charger_kib(self) -> float | None:
        if not self.connected:
            return None
        return (self.rss_connected_bytes - self.rss_baseline_bytes) / self.connected / KIB


@dataclass
class Cycle:
    number: int
    connected: int
    connect_s: float
    connect_cpu_per_charger_ms: float
    boot: dict
    rss_connected_bytes: int
    rss_after_bytes: int


@dataclass
class Report:
    args: argparse.Namespace
    machine: dict
    linkray: list[LinkRayFigures] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    cycles: list[Cycle] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    aborted: str | None = None
    log_problems: dict = field(default_factory=dict)
    log_tails: dict = field(default_factory=dict)
    elapsed_s: float = 0.0

    def phase(self, label: str, rate_per_s: int) -> Phase | None:
        return next((phase for phase in self.phases if phase.label == label and phase.rate_per_s == rate_per_s), None)

    def figures(self, label: str) -> LinkRayFigures | None:
        return next((figures for figures in self.linkray if figures.label == label), None)

    def cpu_per_call_ms(self, phase: Phase) -> float | None:
        figures = self.figures(phase.label)
        if phase.linkray_cpu_s is None or figures is None or not phase.round_trips_ok:
            return None
        return (phase.linkray_cpu_s - figures.idle_cores * phase.window_s) / phase.round_trips_ok * 1000

    def added_ms(self, phase: Phase, direction: str, key: str) -> float | None:
        direct = self.phase("direct", phase.rate_per_s)
        if direct is None:
            return None
        through = latency_stats(getattr(phase, direction)["latencies_ms"])[key]
        baseline = latency_stats(getattr(direct, direction)["latencies_ms"])[key]
        if through is None or baseline is None:
            return None
        return through - baseline


# --- the run ---------------------------------------------------------------------------------


class Benchmark:
    def __init__(self, args: argparse.Namespace, report: Report, work_dir: Path):
        self.args = args
        self.report = report
        self.work_dir = work_dir
        self.started = time.monotonic()
        self.csms_process: multiprocessing.Process | None = None
        self.csms: CsmsControl | None = None
        self.csms_port = 0
        self.servers: list[LinkRayServer] = []
        self.fleets: list[Fleet] = []
        self.unique_ids = (f"g{number}" for number in itertools.count(1))
        self.meter_values = [meter_values_payload(index) for index in range(64)]
        self.load_generator = psutil.Process()
        self.charge_box_ids = [f"BENCH{index:05d}" for index in range(args.chargers)]
        self.stray_frames: collections.Counter = collections.Counter()

    def say(self, text: str) -> None:
        progress(self.started, text)

    # --- processes --------------------------------------------------------------------------

    async def start_csms(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        self.csms_process = context.Process(
            target=csms_process_main,
            args=(child_end, self.args.csms_compression, self.open_files_needed()),
            name="bench-csms",
            daemon=True,
        )
        self.csms_process.start()
        child_end.close()
        loop = asyncio.get_running_loop()
        ready = loop.create_future()

        def first_message():
            loop.remove_reader(parent_end.fileno())
            try:
                ready.set_result(parent_end.recv())
            except (EOFError, OSError) as error:
                ready.set_exception(RuntimeError(f"the CSMS process failed to start: {error!r}"))

        loop.add_reader(parent_end.fileno(), first_message)
        self.csms_port = (await asyncio.wait_for(ready, 30))["port"]
        self.csms = CsmsControl(parent_end)
        self.csms_cpu = psutil.Process(self.csms_process.pid)

    def open_files_needed(self) -> int:
        return 4 * self.args.chargers + 1024

    def stop_processes(self) -> None:
        for server in self.servers:
            try:
                server.stop()
            except Exception as error:  # keep stopping the others
                self.report.notes.append(f"stopping LinkRay ({server.name}) failed: {error!r}")
        if self.csms is not None:
            try:
                self.csms.connection.send({"id": 0, "op": "stop"})
            except (OSError, ValueError):
                pass
        if self.csms_process is not None:
            self.csms_process.join(5)
            if self.csms_process.is_alive():
                self.csms_process.terminate()
                self.csms_process.join(5)
            if self.csms_process.is_alive():
                self.csms_process.kill()
                self.csms_process.join(5)

    async def csms_count(self, leg: str) -> int:
        reply = await self.csms.request(10, op="count")
        return reply["counts"].get(leg, 0)

    async def wait_for_csms_count(self, leg: str, expected: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await self.csms_count(leg) == expected:
                return True
            await asyncio.sleep(0.2)
        return False

    def fleet(self, base_url: str, charge_box_ids: list[str] | None = None) -> Fleet:
        fleet = Fleet(
            base_url,
            charge_box_ids or self.charge_box_ids,
            batch_size=self.args.batch,
            open_timeout_s=self.args.open_timeout,
        )
        self.fleets.append(fleet)
        return fleet

    async def close_fleet(self, fleet: Fleet) -> None:
        await fleet.close()
        if fleet in self.fleets:
            self.fleets.remove(fleet)
        self.stray_frames["unmatched answers at the chargers"] += fleet.counters.unmatched
        self.stray_frames["unreadable frames at the chargers"] += fleet.counters.malformed

    async def note_stray_frames(self) -> None:
        """Answers nobody waited for (late ones, after a timeout) and unreadable frames."""
        reply = await self.csms.request(10, op="count")
        self.stray_frames["unmatched answers at the CSMS"] += reply["unmatched"]
        self.stray_frames["unreadable frames at the CSMS"] += reply["malformed"]
        for what, count in self.stray_frames.items():
            if count:
                self.report.notes.append(f"{count} {what}")

    # --- steps ------------------------------------------------------------------------------

    async def run(self) -> None:
        args = self.args
        before, started = machine_busy_s(), time.monotonic()
        await asyncio.sleep(1.0)
        other_cores = (machine_busy_s() - before) / (time.monotonic() - started)
        if other_cores > 0.2:
            self.report.notes.append(f"the machine was busy before the run ({other_cores:.2f} cores used by other processes): figures are noisier")
        self.say(f"machine load before the run: {other_cores:.2f} cores")
        await self.start_csms()
        self.say(f"CSMS listening on 127.0.0.1:{self.csms_port} (pid {self.csms_process.pid})")
        direct = self.fleet(f"ws://127.0.0.1:{self.csms_port}/direct")
        await direct.connect()
        self.say(f"{direct.connected}/{args.chargers} chargers connected straight to the CSMS")
        if direct.connect_errors:
            self.report.notes.append(f"direct connect errors: {dict(direct.connect_errors)}")

        server, via = await self.start_linkray("linkray", "via", {})
        for rate_per_s in args.rates:
            await self.traffic_phase("direct", direct, rate_per_s, None)
            await self.traffic_phase("linkray", via, rate_per_s, server)
        figures = self.report.figures("linkray")
        figures.rss_after_traffic_bytes = server.rss_bytes()
        await self.close_fleet(via)
        await self.wait_for_csms_count("via", 0, 60)
        await self.connect_cycles(server)
        self.record_log(server)
        server.stop()

        if args.csms_compression:
            server, deflated = await self.start_linkray("linkray+deflate", "viaz", {"LINKRAY_CSMS_COMPRESSION": "true"})
            for rate_per_s in args.rates:
                await self.traffic_phase("linkray+deflate", deflated, rate_per_s, server)
            self.report.figures("linkray+deflate").rss_after_traffic_bytes = server.rss_bytes()
            await self.close_fleet(deflated)
            self.record_log(server)
            server.stop()
        await self.close_fleet(direct)
        await self.note_stray_frames()

    def record_log(self, server: LinkRayServer) -> None:
        self.report.log_problems[server.name] = dict(server.log_problems())

    async def start_linkray(self, label: str, leg: str, extra_env: dict[str, str]) -> tuple[LinkRayServer, Fleet]:
        """Start one LinkRay, warm it up, connect all chargers through it, measure memory and idle CPU."""
        args = self.args
        server = LinkRayServer(label, self.work_dir, f"ws://127.0.0.1:{self.csms_port}/{leg}", extra_env)
        self.servers.append(server)
        figures = LinkRayFigures(label)
        self.report.linkray.append(figures)
        await server.start()
        figures.open_files_limit = server.open_files_limit()
        await wait_until_quiet(server.cpu_s, timeout_s=20)
        figures.rss_started_bytes = server.rss_bytes()
        self.say(f"{label}: listening on 127.0.0.1:{server.port} (pid {server.process.pid}), RSS {figures.rss_started_bytes / MIB:.1f} MiB")

        # Warm-up: imports, database connection, thread pool and the first sessions' allocations
        # are one-time costs, kept out of the per-charger figure.
        warm = self.fleet(server.url, [f"WARMUP{index:03d}" for index in range(min(20, args.chargers))])
        await warm.connect()
        await self.traffic(warm, leg, 20, 1.0)
        await self.close_fleet(warm)
        await self.wait_for_csms_count(leg, 0, 30)
        await wait_until_quiet(server.cpu_s, timeout_s=30)
        figures.rss_baseline_bytes = server.rss_bytes()

        fleet = self.fleet(server.url)
        cpu_before, started = server.cpu_s(), time.monotonic()
        await fleet.connect()
        figures.connect_s = time.monotonic() - started
        await wait_until_quiet(server.cpu_s, timeout_s=60)
        elapsed_s = time.monotonic() - started
        figures.connected = fleet.connected
        figures.connect_errors = dict(fleet.connect_errors)
        if figures.connect_errors:
            self.report.notes.append(f"{label}: {args.chargers - fleet.connected} chargers failed to connect: {figures.connect_errors}")
        upstream = await self.csms_count(leg)
        if upstream != fleet.connected:
            self.report.notes.append(f"{label}: {fleet.connected} chargers connected but the CSMS sees {upstream} LinkRay legs")
        figures.rss_connected_bytes = server.rss_bytes()
        connect_cpu_s = server.cpu_s() - cpu_before
        self.say(
            f"{label}: {fleet.connected}/{args.chargers} chargers connected in {figures.connect_s:.1f} s, "
            f"RSS {figures.rss_connected_bytes / MIB:.1f} MiB"
            + (f", connect errors {figures.connect_errors}" if figures.connect_errors else "")
        )

        started, cpu_before = time.monotonic(), server.cpu_s()
        await asyncio.sleep(args.idle)
        figures.idle_window_s = time.monotonic() - started
        figures.idle_cores = (server.cpu_s() - cpu_before) / figures.idle_window_s
        if fleet.connected:
            figures.connect_cpu_per_charger_ms = (connect_cpu_s - figures.idle_cores * elapsed_s) / fleet.connected * 1000
        self.say(f"{label}: idle {figures.idle_cores * 1000:.1f} ms CPU/s holding {fleet.connected} chargers")
        return server, fleet

    async def traffic(self, fleet: Fleet, leg: str, rate_per_s: float, duration_s: float) -> tuple[dict, dict]:
        """Both directions at once: charger->CSMS here, CSMS->charger in the CSMS process."""
        args = self.args
        csms_rate = rate_per_s * args.csms_share
        csms_run = asyncio.ensure_future(
            self.csms.request(
                duration_s + 2 * args.call_timeout + 30,
                op="run",
                leg=leg,
                rate_per_s=csms_rate,
                duration_s=duration_s,
                call_timeout_s=args.call_timeout,
            )
        )
        recorder = CallRecorder()
        try:
            await run_open_loop(
                fleet.peers,
                rate_per_s - csms_rate,
                duration_s,
                first_peer=0,
                build_call=charger_call(self.meter_values),
                recorder=recorder,
                call_timeout_s=args.call_timeout,
                unique_ids=self.unique_ids,
            )
            await drain(fleet.peers, recorder, args.call_timeout)
            csms_reply = await csms_run
        finally:
            if not csms_run.done():
                csms_run.cancel()
        return recorder.summary(), csms_reply["result"]

    async def traffic_phase(self, label: str, fleet: Fleet, rate_per_s: int, server: LinkRayServer | None) -> None:
        args = self.args
        leg = {"direct": "direct", "linkray": "via", "linkray+deflate": "viaz"}[label]
        if server is not None:
            await wait_until_quiet(server.cpu_s, timeout_s=15)
        profiler = self.start_profiler(server, f"{label}-{rate_per_s}") if server is not None else None
        processes = [server.cpu_s if server else (lambda: 0.0), lambda: process_cpu_s(self.csms_cpu),
                     lambda: process_cpu_s(self.load_generator), machine_busy_s]
        before = [read() for read in processes]
        started = time.monotonic()
        charger_calls, csms_calls = await self.traffic(fleet, leg, rate_per_s, args.duration)
        if server is not None:
            await asyncio.sleep(args.settle)  # the journal and state flush of the last second
        linkray_s, csms_s, load_generator_s, machine_s = (read() - value for read, value in zip(processes, before))
        window_s = time.monotonic() - started
        if profiler is not None:
            await asyncio.get_running_loop().run_in_executor(None, profiler.wait)
        phase = Phase(
            label=label,
            rate_per_s=rate_per_s,
            window_s=window_s,
            charger_calls=charger_calls,
            csms_calls=csms_calls,
            linkray_cpu_s=linkray_s if server else None,
            csms_cpu_s=csms_s,
            load_generator_cpu_s=load_generator_s,
            other_cpu_s=max(0.0, machine_s - linkray_s - csms_s - load_generator_s),
        )
        self.report.phases.append(phase)
        cpu_text = ""
        if server is not None:
            cpu_per_call_ms = self.report.cpu_per_call_ms(phase)
            cpu_text = f", LinkRay {cpu_per_call_ms:.3f} ms CPU/CALL" if cpu_per_call_ms is not None else ""
        charger_stats = latency_stats(charger_calls["latencies_ms"])
        self.say(
            f"{label:>15} {rate_per_s:>5}/s: {phase.round_trips_ok} ok, {phase.failed} failed, {phase.skipped} skipped, "
            f"charger->CSMS p50 {fmt(charger_stats['p50_ms'], 2)} ms p99 {fmt(charger_stats['p99_ms'], 2)} ms{cpu_text}"
        )

    def start_profiler(self, server: LinkRayServer, name: str) -> subprocess.Popen | None:
        """py-spy on LinkRay for the traffic part of the phase (--py-spy): collapsed stacks."""
        if self.args.py_spy is None:
            return None
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.args.py_spy.mkdir(parents=True, exist_ok=True)
        output = self.args.py_spy.resolve() / f"{name.replace('+', '-')}.txt"
        try:
            return subprocess.Popen(
                [py_spy, "record", "--pid", str(server.process.pid), "--duration", str(max(1, round(self.args.duration))),
                 "--rate", "200", "--nonblocking", "--threads", "--format", "raw", "--output", str(output)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
        except OSError as error:
            self.report.notes.append(f"py-spy could not start ({error}); install it with `.venv/bin/pip install py-spy`")
            self.args.py_spy = None
            return None

    async def connect_cycles(self, server: LinkRayServer) -> None:
        figures = self.report.figures("linkray")
        for number in range(1, self.args.cycles + 1):
            fleet = self.fleet(server.url)
            cpu_before, started = server.cpu_s(), time.monotonic()
            await fleet.connect()
            connect_s = time.monotonic() - started
            await wait_until_quiet(server.cpu_s, timeout_s=60)
            connect_cpu_s = server.cpu_s() - cpu_before - figures.idle_cores * (time.monotonic() - started)
            boot = await fleet.boot(self.unique_ids, self.args.call_timeout)
            await wait_until_quiet(server.cpu_s, timeout_s=30)
            rss_connected = server.rss_bytes()
            connected = fleet.connected
            if fleet.connect_errors:
                self.report.notes.append(f"cycle {number}: connect errors {dict(fleet.connect_errors)}")
            await self.close_fleet(fleet)
            if not await self.wait_for_csms_count("via", 0, 60):
                self.report.notes.append(f"cycle {number}: LinkRay legs still open at the CSMS 60 s after disconnecting")
            await wait_until_quiet(server.cpu_s, timeout_s=60)
            cycle = Cycle(
                number=number,
                connected=connected,
                connect_s=connect_s,
                connect_cpu_per_charger_ms=connect_cpu_s / connected * 1000 if connected else 0.0,
                boot=boot.summary(),
                rss_connected_bytes=rss_connected,
                rss_after_bytes=server.rss_bytes(),
            )
            self.report.cycles.append(cycle)
            self.say(
                f"cycle {number}: {connected} connected in {connect_s:.1f} s, RSS {rss_connected / MIB:.1f} MiB connected, "
                f"{cycle.rss_after_bytes / MIB:.1f} MiB after disconnect"
            )


# --- the report ------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def describe_machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(len(os.sched_getaffinity(0)))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gateway", "linkray_site"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        commit += " (gateway/ has uncommitted changes)" if dirty else ""
    except OSError:
        commit = "unknown"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": nproc,
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "websockets": websockets.__version__,
        "commit": commit,
    }


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("PASS" if ok else "MISS")


def render(report: Report) -> str:
    args = report.args
    machine = report.machine
    out: list[str] = []
    out.append("## LinkRay relay benchmark")
    out.append("")
    out.append(
        f"{args.chargers} chargers, rates {', '.join(map(str, args.rates))} CALLs/s ({args.csms_share:.0%} CSMS->charger), "
        f"{args.duration:g} s per phase, idle window {args.idle:g} s, {args.cycles} connect/disconnect cycles; "
        f"run took {report.elapsed_s:.0f} s."
    )
    out.append(
        f"Machine: nproc {machine['nproc']}, {machine['cpu_model']}, {machine['memory_gib']} GiB, Linux {machine['kernel']}, "
        f"Python {machine['python']}, websockets {machine['websockets']}, commit {machine['commit']}, {machine['date']}."
    )
    if report.aborted:
        out.append("")
        out.append(f"**ABORTED:** {report.aborted}")

    linkray_labels = [figures.label for figures in report.linkray]
    cpu_rows = []
    for phase in report.phases:
        if phase.label == "direct":
            continue
        cpu_rows.append(
            [
                phase.label,
                str(phase.rate_per_s),
                str(phase.round_trips_ok),
                fmt(phase.linkray_cpu_s, 2),
                fmt(report.figures(phase.label).idle_cores * phase.window_s, 2),
                fmt(report.cpu_per_call_ms(phase), 3),
                fmt(phase.csms_cpu_s / phase.round_trips_ok * 1000 if phase.round_trips_ok else None, 3),
                fmt(phase.load_generator_cpu_s / phase.round_trips_ok * 1000 if phase.round_trips_ok else None, 3),
                fmt(phase.other_cpu_s / phase.window_s, 2),
            ]
        )
    for phase in report.phases:
        if phase.label == "direct":
            cpu_rows.append(
                [
                    "direct (no relay, for scale)",
                    str(phase.rate_per_s),
                    str(phase.round_trips_ok),
                    "-",
                    "-",
                    "-",
                    fmt(phase.csms_cpu_s / phase.round_trips_ok * 1000 if phase.round_trips_ok else None, 3),
                    fmt(phase.load_generator_cpu_s / phase.round_trips_ok * 1000 if phase.round_trips_ok else None, 3),
                    fmt(phase.other_cpu_s / phase.window_s, 2),
                ]
            )
    if cpu_rows:
        out += ["", "### LinkRay CPU per relayed CALL round trip", ""]
        out.append(
            table(
                ["leg", "CALLs/s", "round trips ok", "LinkRay CPU in window (s)", "idle cost for window (s)",
                 "**LinkRay CPU per CALL (ms)**", "CSMS CPU per CALL (ms)", "load generator CPU per CALL (ms)", "other processes (cores)"],
                cpu_rows,
            )
        )

    latency_rows = []
    for phase in report.phases:
        for direction, name in (("charger_calls", "charger->CSMS"), ("csms_calls", "CSMS->charger")):
            calls = getattr(phase, direction)
            stats = latency_stats(calls["latencies_ms"])
            is_relay = phase.label != "direct"
            latency_rows.append(
                [
                    phase.label,
                    str(phase.rate_per_s),
                    name,
                    f"{stats['n']}/{calls['sent']}",
                    fmt(stats["p50_ms"]),
                    fmt(stats["p99_ms"]),
                    fmt(stats["max_ms"], 1),
                    fmt(report.added_ms(phase, direction, "p50_ms")) if is_relay else "",
                    fmt(report.added_ms(phase, direction, "p99_ms")) if is_relay else "",
                    f"{calls['call_errors']}/{calls['timed_out']}/{calls['lost']}",
                    str(calls["skipped"]),
                    fmt(calls["schedule_lag_p99_ms"], 1),
                ]
            )
    if latency_rows:
        out += ["", "### Round-trip latency (added = through LinkRay minus direct, p50 vs p50, p99 vs p99)", ""]
        out.append(
            table(
                ["leg", "CALLs/s", "direction", "ok/sent", "p50 ms", "p99 ms", "max ms", "added p50 ms", "added p99 ms",
                 "errors/timeouts/lost", "skipped (busy)", "generator lag p99 ms"],
                latency_rows,
            )
        )

    if report.linkray:
        out += ["", "### LinkRay resident memory", ""]
        rows = []
        for figures in report.linkray:
            rows.append(
                [
                    figures.label,
                    fmt(figures.rss_started_bytes / MIB, 1),
                    fmt(figures.rss_baseline_bytes / MIB, 1),
                    f"{figures.connected}",
                    fmt(figures.rss_connected_bytes / MIB, 1),
                    fmt(figures.memory_per_charger_kib, 1),
                    fmt(figures.rss_after_traffic_bytes / MIB, 1) if figures.rss_after_traffic_bytes else "-",
                    f"{figures.connect_s:.1f}",
                    fmt(figures.connect_cpu_per_charger_ms, 2),
                    fmt(figures.idle_cores * 1000, 1),
                    str(figures.open_files_limit),
                ]
            )
        out.append(
            table(
                ["LinkRay", "RSS started MiB", "RSS after warm-up MiB", "chargers", "RSS connected MiB",
                 "**KiB per charger**", "RSS after traffic MiB", "connect all (s)", "connect CPU per charger (ms)",
                 "idle CPU (ms/s)", "RLIMIT_NOFILE"],
                rows,
            )
        )

    if report.cycles:
        out += ["", "### Connect/disconnect cycles (all chargers; each sends a BootNotification)", ""]
        rows = []
        first = report.cycles[0]
        for cycle in report.cycles:
            boot = cycle.boot
            rows.append(
                [
                    str(cycle.number),
                    str(cycle.connected),
                    f"{cycle.connect_s:.1f}",
                    fmt(cycle.connect_cpu_per_charger_ms, 2),
                    f"{boot['ok']}/{boot['sent']}",
                    fmt(cycle.rss_connected_bytes / MIB, 1),
                    fmt(cycle.rss_after_bytes / MIB, 1),
                    f"{(cycle.rss_after_bytes / first.rss_after_bytes - 1) * 100:+.1f} %",
                ]
            )
        out.append(
            table(
                ["cycle", "connected", "connect (s)", "connect CPU per charger (ms)", "BootNotification ok",
                 "RSS connected MiB", "RSS after disconnect MiB", "vs cycle 1"],
                rows,
            )
        )

    out += ["", "### Targets" + ("" if args.chargers == 1000 else f" (set for 1000 chargers; this run had {args.chargers})"), ""]
    out.append(table(["target", "measured", "result"], target_rows(report)))

    if report.notes:
        out += ["", "### Notes", ""] + [f"- {note}" for note in report.notes]
    for name, problems in report.log_problems.items():
        if problems:
            out += ["", f"### LinkRay ({name}) log: warnings and errors", ""]
            out += [f"- {count} x {line}" for line, count in sorted(problems.items(), key=lambda item: -item[1])[:20]]
    for name, tail in report.log_tails.items():
        out += ["", f"### LinkRay ({name}) log tail", "", "```", tail, "```"]
    return "\n".join(out)


def target_rows(report: Report) -> list[list[str]]:
    rows = []
    for rate_per_s in report.args.rates:
        phase = report.phase("linkray", rate_per_s)
        value = report.cpu_per_call_ms(phase) if phase else None
        rows.append([f"LinkRay CPU per relayed CALL <= {TARGET_CPU_PER_CALL_MS} ms at {rate_per_s} CALLs/s",
                     f"{fmt(value, 3)} ms", verdict(None if value is None else value <= TARGET_CPU_PER_CALL_MS)])
    phase = report.phase("linkray", TARGET_LATENCY_RATE)
    for direction, name in (("charger_calls", "charger->CSMS"), ("csms_calls", "CSMS->charger")):
        for key, limit in (("p50_ms", TARGET_ADDED_P50_MS), ("p99_ms", TARGET_ADDED_P99_MS)):
            value = report.added_ms(phase, direction, key) if phase else None
            rows.append([f"added latency {key[:3]} <= {limit} ms at {TARGET_LATENCY_RATE} CALLs/s, {name}",
                         f"{fmt(value)} ms", verdict(None if value is None else value <= limit)])
    phase = report.phase("linkray", TARGET_NO_FAILURE_RATE)
    if phase:
        rows.append([f"no failed call at {TARGET_NO_FAILURE_RATE} CALLs/s (errors, timeouts, lost; skipped also counted)",
                     f"{phase.failed} failed, {phase.skipped} skipped of {phase.charger_calls['sent'] + phase.csms_calls['sent'] + phase.skipped} scheduled",
                     verdict(phase.failed == 0 and phase.skipped == 0)])
    else:
        rows.append([f"no failed call at {TARGET_NO_FAILURE_RATE} CALLs/s", "-", verdict(None)])
    figures = report.figures("linkray")
    value = figures.memory_per_charger_kib if figures else None
    rows.append([f"resident memory per charger <= {TARGET_MEMORY_PER_CHARGER_KIB} KiB", f"{fmt(value, 1)} KiB",
                 verdict(None if value is None else value <= TARGET_MEMORY_PER_CHARGER_KIB)])
    if len(report.cycles) >= 2:
        first, last = report.cycles[0], report.cycles[-1]
        growth = last.rss_after_bytes / first.rss_after_bytes - 1
        rows.append([f"RSS after cycle {last.number} within {TARGET_CYCLE_GROWTH:.0%} of cycle 1",
                     f"{first.rss_after_bytes / MIB:.1f} -> {last.rss_after_bytes / MIB:.1f} MiB ({growth * 100:+.1f} %)",
                     verdict(abs(growth) <= TARGET_CYCLE_GROWTH)])
    else:
        rows.append([f"RSS after the last cycle within {TARGET_CYCLE_GROWTH:.0%} of cycle 1", "-", verdict(None)])
    return rows


def report_json(report: Report) -> dict:
    def phase_json(phase: Phase) -> dict:
        result = {"label": phase.label, "rate_per_s": phase.rate_per_s, "window_s": phase.window_s,
                  "linkray_cpu_s": phase.linkray_cpu_s, "csms_cpu_s": phase.csms_cpu_s,
                  "load_generator_cpu_s": phase.load_generator_cpu_s, "other_cpu_s": phase.other_cpu_s,
                  "linkray_cpu_per_call_ms": report.cpu_per_call_ms(phase)}
        for direction in ("charger_calls", "csms_calls"):
            calls = dict(getattr(phase, direction))
            calls.update(latency_stats(calls.pop("latencies_ms")))
            if phase.label != "direct":
                calls["added_p50_ms"] = report.added_ms(phase, direction, "p50_ms")
                calls["added_p99_ms"] = report.added_ms(phase, direction, "p99_ms")
            result[direction] = calls
        return result

    return {
        "args": vars(report.args),
        "machine": report.machine,
        "aborted": report.aborted,
        "phases": [phase_json(phase) for phase in report.phases],
        "linkray": [dict(vars(figures), memory_per_charger_kib=figures.memory_per_charger_kib) for figures in report.linkray],
        "cycles": [vars(cycle) for cycle in report.cycles],
        "targets": target_rows(report),
        "notes": report.notes,
        "log_problems": report.log_problems,
    }


# --- entry point -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=1000, help="simulated chargers (default 1000)")
    parser.add_argument("--rates", default="100,500,1000", help="total CALLs/s, both directions together (default 100,500,1000)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of traffic per leg and rate (default 10)")
    parser.add_argument("--idle", type=float, default=None, help="seconds of the idle-cost window (default: --duration)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after the last answer kept in the CPU window, for LinkRay's 1 s journal/state flush (default 2)")
    parser.add_argument("--csms-share", type=float, default=0.2, help="fraction of the rate sent as CSMS->charger CALLs (default 0.2)")
    parser.add_argument("--cycles", type=int, default=5, help="connect/disconnect cycles of all chargers (default 5)")
    parser.add_argument("--batch", type=int, default=50, help="chargers connecting at once (default 50)")
    parser.add_argument("--call-timeout", type=float, default=10.0, help="seconds before an unanswered CALL counts as timed out (default 10)")
    parser.add_argument("--open-timeout", type=float, default=30.0, help="seconds for one websocket handshake (default 30)")
    parser.add_argument("--csms-compression", action="store_true", help="also run a LinkRay with LINKRAY_CSMS_COMPRESSION=true (extra rows)")
    parser.add_argument("--max-runtime", type=float, default=900.0, help="abort (with a report) after this many seconds (default 900)")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="profile LinkRay with py-spy (not a project dependency) during each of its traffic phases; collapsed stacks go to DIR; CPU figures of such a run include py-spy's interference")
    parser.add_argument("--json", type=Path, help="also write the figures (without latency samples) to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (LinkRay data and logs)")
    args = parser.parse_args(argv)
    try:
        args.rates = [int(rate) for rate in args.rates.split(",") if rate.strip()]
    except ValueError:
        parser.error(f"--rates {args.rates!r}: expected whole numbers separated by commas")
    if args.chargers < 1 or not args.rates or min(args.rates) < 1 or args.duration <= 0:
        parser.error("--chargers, --rates and --duration must be positive")
    if not 0 <= args.csms_share <= 1:
        parser.error("--csms-share must be between 0 and 1")
    args.idle = args.duration if args.idle is None else args.idle
    return args


async def run_with_limits(benchmark: Benchmark, max_runtime_s: float) -> None:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await asyncio.wait_for(benchmark.run(), max_runtime_s)
    finally:
        # Close what is still open while the loop runs, so LinkRay sees clean disconnects.
        for fleet in list(benchmark.fleets):
            try:
                await asyncio.wait_for(fleet.close(), 15)
            except (Exception, asyncio.CancelledError):
                pass
        if benchmark.csms is not None:
            benchmark.csms.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report(args=args, machine=describe_machine())
    work_dir = Path(tempfile.mkdtemp(prefix="linkray-bench-"))
    benchmark = Benchmark(args, report, work_dir)
    soft, hard = raise_open_files_limit(benchmark.open_files_needed())
    if soft < benchmark.open_files_needed():
        report.notes.append(f"RLIMIT_NOFILE is {soft} (hard {hard}), below the {benchmark.open_files_needed()} this run wants")
    try:
        asyncio.run(run_with_limits(benchmark, args.max_runtime))
    except KeyboardInterrupt:
        report.aborted = "interrupted (Ctrl-C)"
    except asyncio.CancelledError:
        report.aborted = "stopped (SIGTERM)"
    except (TimeoutError, asyncio.TimeoutError):
        report.aborted = f"the run exceeded --max-runtime {args.max_runtime:.0f} s"
    except LinkRayDied as error:
        report.aborted = str(error)
    except Exception:
        report.aborted = "unexpected error:\n```\n" + traceback.format_exc() + "```"
    finally:
        benchmark.stop_processes()
        report.elapsed_s = time.monotonic() - benchmark.started
        for server in benchmark.servers:
            report.log_problems.setdefault(server.name, dict(server.log_problems()))
            failing = report.aborted or any(key.startswith(("ERROR", "CRITICAL", "Traceback")) for key in report.log_problems[server.name])
            if failing:
                report.log_tails[server.name] = server.log_tail(40)
        print(render(report), flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report_json(report), indent=2, default=str))
        if args.keep:
            print(f"\nwork directory kept: {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if report.aborted else 0


if __name__ == "__main__":
    sys.exit(main())

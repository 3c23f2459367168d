#!/usr/bin/env python3
"""Scale benchmark: N chargers reconnecting at once (a restart storm) and paced, through LinkRay
on the embedded default and on two server processes (Redis + PostgreSQL) behind one port.

    .venv/bin/python bench/scale.py                                     # quick: 300 chargers, embedded
    .venv/bin/python bench/scale.py --chargers 1000,2000,5000 --stacks embedded,scaleout

Reuses bench/relay.py's simulated chargers (plain `websockets`, raw frames), its CSMS (a child
process answering every CALL at once) and its LinkRay process handling. For each stack and N:

- burst: all N chargers open their websockets in the same moment, then each sends a
  BootNotification; "relayed" is the CSMS's answer back at the charger. Reported: time from the
  first connection attempt until the last answer, failures (handshakes refused or dropped, boots
  unanswered), LinkRay CPU per (re)connect, RSS per charger, the kernel's listen-queue overflows
  during the burst (nstat TcpExtListenOverflows, machine-wide);
- CALLs/s held: charger->CSMS CALLs at increasing rates (--rates, --duration s each) over the
  connected fleet; the highest rate whose round-trip p99 stays under 50 ms with no failure;
- paced: the same N connecting evenly over --pace seconds after all disconnected.

Scale-out needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (user postgres, as the
e2e tests use); a database is created per run and dropped after. Progress goes to stderr, the
report (Markdown, targets PASS/MISS) to stdout. The whole run is bounded by --max-runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import multiprocessing
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from relay import (  # noqa: E402 (bench/ is not a package)
    MIB,
    BOOT_PAYLOAD,
    CallRecorder,
    CsmsControl,
    Fleet,
    LinkRayDied,
    LinkRayServer,
    charger_call,
    csms_process_main,
    describe_machine,
    drain,
    latency_stats,
    meter_values_payload,
    raise_open_files_limit,
    run_open_loop,
    wait_until_quiet,
)

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/8"

TARGET_CHARGERS = 5000
TARGET_BURST_S = 60.0
TARGET_MEMORY_PER_CHARGER_KIB = 100
TARGET_P99_MS = 50.0


@dataclass
class Run:
    stack: str
    chargers: int
    mode: str  # "burst" | "paced"
    relayed: int = 0
    failures: dict = field(default_factory=dict)
    connect_s: float | None = None
    relayed_s: float | None = None
    cpu_per_connect_ms: float | None = None
    rss_per_charger_kib: float | None = None
    listen_overflows: int | None = None
    csms_legs: int | None = None
    handshake_p99_s: float | None = None
    load_average: float | None = None  # the machine's 1-minute load average as the run began

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


@dataclass
class Held:
    stack: str
    chargers: int
    rate_per_s: int
    p50_ms: float | None
    p99_ms: float | None
    failed: int


def nstat_overflows() -> int | None:
    try:
        output = subprocess.run(["nstat", "-az", "TcpExtListenOverflows"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in output.splitlines():
        parts = line.split()
        if parts and parts[0] == "TcpExtListenOverflows":
            return int(parts[1])
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TimedFleet(Fleet):
    """relay.Fleet, remembering how long each websocket handshake took."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handshake_s: list[float] = []

    async def _open(self, charge_box_id: str):
        started = time.monotonic()
        peer = await super()._open(charge_box_id)
        self.handshake_s.append(time.monotonic() - started)
        return peer


class ScaleBench:
    def __init__(self, args: argparse.Namespace, work_dir: Path):
        self.args = args
        self.work_dir = work_dir
        self.started = time.monotonic()
        self.runs: list[Run] = []
        self.held: list[Held] = []
        self.notes: list[str] = []
        self.servers: list[LinkRayServer] = []
        self.fleets: list[Fleet] = []
        self.databases: list[str] = []
        self.csms_process = None
        self.csms: CsmsControl | None = None
        self.csms_port = 0
        self.unique_ids = (f"s{number}" for number in itertools.count(1))
        self.meter_values = [meter_values_payload(index) for index in range(64)]

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f} s] {text}", file=sys.stderr, flush=True)

    # --- processes --------------------------------------------------------------------------

    async def start_csms(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        self.csms_process = context.Process(
            target=csms_process_main, args=(child_end, False, self.open_files_needed()), name="bench-csms", daemon=True
        )
        self.csms_process.start()
        child_end.close()
        self.csms_port = (await asyncio.get_running_loop().run_in_executor(None, parent_end.recv))["port"]
        self.csms = CsmsControl(parent_end)

    def open_files_needed(self) -> int:
        return 4 * max(self.args.chargers) + 1024

    async def csms_count(self, leg: str) -> int:
        reply = await self.csms.request(30, op="count")
        return reply["counts"].get(leg, 0)

    async def wait_for_csms_count(self, leg: str, expected: int, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        count = await self.csms_count(leg)
        while count != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            count = await self.csms_count(leg)
        return count

    def create_database(self) -> str:
        import psycopg

        name = "linkray_bench_" + secrets.token_hex(4)
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        self.databases.append(name)
        return name

    def drop_databases(self) -> None:
        if not self.databases:
            return
        import psycopg

        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
            for name in self.databases:
                connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.databases.clear()

    async def start_stack(self, stack: str, leg: str) -> list[LinkRayServer]:
        env = {"LINKRAY_MAX_CONNECTIONS_PER_ADDRESS": str(max(self.args.chargers) + 1000)}
        if stack == "embedded":
            server = LinkRayServer(f"{stack}-{leg}", self.work_dir, f"ws://127.0.0.1:{self.csms_port}/{leg}", env)
            self.servers.append(server)
            await server.start()
            return [server]
        database = self.create_database()
        env.update(
            {
                "DATABASE_URL": f"{POSTGRES}/{database}",
                "REDIS_URL": REDIS,
                "LINKRAY_CHANNEL_PREFIX": database,
                "LINKRAY_REUSE_PORT": "true",
            }
        )
        port = free_port()
        servers = []
        for name in ("a", "b"):  # one after the other: the first applies the migrations
            server = LinkRayServer(f"{stack}-{leg}-{name}", self.work_dir, f"ws://127.0.0.1:{self.csms_port}/{leg}", env, port=port)
            self.servers.append(server)
            await server.start()
            servers.append(server)
        return servers

    @staticmethod
    def stop_stack(servers: list[LinkRayServer]) -> None:
        for server in servers:
            server.stop()

    # --- steps ------------------------------------------------------------------------------

    async def run(self) -> None:
        await self.start_csms()
        self.say(f"CSMS on 127.0.0.1:{self.csms_port}")
        for stack in self.args.stacks:
            for chargers in self.args.chargers:
                await self.run_one(stack, chargers)

    async def run_one(self, stack: str, chargers: int) -> None:
        leg = f"{stack}{chargers}"
        servers = await self.start_stack(stack, leg)
        cpu = lambda: sum(server.cpu_s() for server in servers)  # noqa: E731
        rss = lambda: sum(server.rss_bytes() for server in servers)  # noqa: E731
        url = f"ws://127.0.0.1:{servers[0].port}/ocpp"
        try:
            warm = self.fleet(url, [f"WARM{index:03d}" for index in range(20)], 20)
            await warm.connect()
            await warm.boot(self.unique_ids, 30)
            await self.close_fleet(warm)
            await self.wait_for_csms_count(leg, 0, 30)
            await wait_until_quiet(cpu, timeout_s=30)
            rss_before = rss()
            charge_box_ids = [f"{stack[:1].upper()}{index:05d}" for index in range(chargers)]
            for mode in self.args.modes:
                fleet = self.fleet(url, charge_box_ids, chargers if mode == "burst" else 1)
                run = Run(stack, chargers, mode, load_average=os.getloadavg()[0])
                self.runs.append(run)
                overflows_before = nstat_overflows()
                cpu_before, started = cpu(), time.monotonic()
                if mode == "burst":
                    await fleet.connect()
                else:
                    await self.connect_paced(fleet, self.args.pace)
                run.connect_s = time.monotonic() - started
                boot = await fleet.boot(self.unique_ids, self.args.boot_timeout)
                run.relayed_s = time.monotonic() - started
                overflows_after = nstat_overflows()
                if overflows_before is not None and overflows_after is not None:
                    run.listen_overflows = overflows_after - overflows_before
                summary = boot.summary()
                run.relayed = summary["ok"]
                run.failures = {**dict(fleet.connect_errors)}
                for outcome in ("call_errors", "timed_out", "lost"):
                    if summary[outcome]:
                        run.failures[f"boot {outcome}"] = summary[outcome]
                closed = collections.Counter(
                    f"closed before booting (code {peer.connection.close_code})" for peer in fleet.peers if peer.closed and peer.pending_recorder is None and peer.calls == 0
                )
                unaccounted = chargers - run.relayed - sum(run.failures.values())
                if unaccounted > 0:
                    run.failures.update(dict(closed) if sum(closed.values()) == unaccounted else {"not relayed": unaccounted})
                if fleet.handshake_s:
                    ordered = sorted(fleet.handshake_s)
                    run.handshake_p99_s = ordered[int(0.99 * (len(ordered) - 1))]
                await wait_until_quiet(cpu, timeout_s=60)
                connected = fleet.connected
                if connected:
                    run.cpu_per_connect_ms = (cpu() - cpu_before) / connected * 1000
                    run.rss_per_charger_kib = (rss() - rss_before) / connected / 1024
                run.csms_legs = await self.csms_count(leg)
                self.say(
                    f"{stack} {chargers} {mode}: {run.relayed}/{chargers} relayed in {run.relayed_s:.1f} s "
                    f"(handshakes {run.connect_s:.1f} s, p99 {run.handshake_p99_s or 0:.1f} s), failures {run.failures or 0}, "
                    f"CPU {run.cpu_per_connect_ms or 0:.2f} ms/connect, RSS {run.rss_per_charger_kib or 0:.1f} KiB/charger, "
                    f"listen overflows {run.listen_overflows}, CSMS legs {run.csms_legs}"
                )
                if mode == self.args.modes[0] and self.args.rates:
                    await self.calls_held(stack, chargers, fleet, cpu)
                await self.close_fleet(fleet)
                remaining = await self.wait_for_csms_count(leg, 0, 120)
                if remaining:
                    self.notes.append(f"{stack} {chargers} {mode}: {remaining} CSMS legs still open 120 s after the chargers left")
                await wait_until_quiet(cpu, timeout_s=60)
        finally:
            for server in servers:
                problems = server.log_problems()
                if problems:
                    self.notes.append(f"{server.name} log: {dict(problems.most_common(6))}")
            self.stop_stack(servers)

    async def connect_paced(self, fleet: TimedFleet, pace_s: float) -> None:
        """Connect the fleet evenly over pace_s seconds (in 100 ms steps)."""
        ids = fleet.charge_box_ids
        steps = max(1, int(pace_s * 10))
        per_step = max(1, -(-len(ids) // steps))
        tasks = []
        start = time.monotonic()
        for number, offset in enumerate(range(0, len(ids), per_step)):
            delay = start + number * 0.1 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            batch = TimedFleet(fleet.base_url, ids[offset : offset + per_step], batch_size=per_step, open_timeout_s=fleet.open_timeout_s)
            tasks.append((batch, asyncio.ensure_future(batch.connect())))
        for batch, task in tasks:
            await task
            for peer in batch.peers:
                peer.index = len(fleet.peers)
                fleet.peers.append(peer)
            fleet.connect_errors.update(batch.connect_errors)
            fleet.handshake_s.extend(batch.handshake_s)

    async def calls_held(self, stack: str, chargers: int, fleet: Fleet, cpu) -> None:
        for rate_per_s in self.args.rates:
            await wait_until_quiet(cpu, timeout_s=15)
            recorder = CallRecorder()
            await run_open_loop(
                [peer for peer in fleet.peers if not peer.closed],
                rate_per_s,
                self.args.duration,
                first_peer=0,
                build_call=charger_call(self.meter_values),
                recorder=recorder,
                call_timeout_s=10,
                unique_ids=self.unique_ids,
            )
            await drain(fleet.peers, recorder, 10)
            summary = recorder.summary()
            stats = latency_stats(summary["latencies_ms"])
            failed = summary["call_errors"] + summary["timed_out"] + summary["lost"]
            self.held.append(Held(stack, chargers, rate_per_s, stats["p50_ms"], stats["p99_ms"], failed))
            self.say(f"{stack} {chargers}: {rate_per_s} CALLs/s p50 {stats['p50_ms'] or 0:.1f} ms p99 {stats['p99_ms'] or 0:.1f} ms, {failed} failed")
            if failed or (stats["p99_ms"] or 0) >= TARGET_P99_MS:
                break

    def fleet(self, url: str, charge_box_ids: list[str], batch_size: int) -> TimedFleet:
        fleet = TimedFleet(url, charge_box_ids, batch_size=batch_size, open_timeout_s=self.args.open_timeout)
        self.fleets.append(fleet)
        return fleet

    async def close_fleet(self, fleet: Fleet) -> None:
        await fleet.close()
        if fleet in self.fleets:
            self.fleets.remove(fleet)

    def stop_all(self) -> None:
        for server in self.servers:
            try:
                server.stop()
            except Exception as error:
                self.notes.append(f"stopping {server.name} failed: {error!r}")
        if self.csms is not None:
            try:
                self.csms.connection.send({"id": 0, "op": "stop"})
            except (OSError, ValueError):
                pass
        if self.csms_process is not None:
            self.csms_process.join(5)
            if self.csms_process.is_alive():
                self.csms_process.kill()
                self.csms_process.join(5)
        try:
            self.drop_databases()
        except Exception as error:
            self.notes.append(f"dropping the bench databases failed: {error!r}")


# --- report ----------------------------------------------------------------------------------


def fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def best_held(bench: ScaleBench, stack: str, chargers: int) -> Held | None:
    good = [held for held in bench.held if held.stack == stack and held.chargers == chargers and not held.failed
            and held.p99_ms is not None and held.p99_ms < TARGET_P99_MS]
    return max(good, key=lambda held: held.rate_per_s) if good else None


def render(bench: ScaleBench, machine: dict, aborted: str | None) -> str:
    lines = ["# bench/scale.py", ""]
    lines.append(
        f"Machine: nproc {machine.get('nproc')}, {machine.get('cpu_model')}, {machine.get('memory_gib')} GiB, Linux {machine.get('kernel')}, Python {machine.get('python')}, {machine.get('date')}, LinkRay {machine.get('commit')}; "
        f"args: {' '.join(sys.argv[1:]) or '(defaults)'}; {time.monotonic() - bench.started:.0f} s"
    )
    if aborted:
        lines += ["", f"**Run cut short: {aborted}**"]
    lines += ["", "| stack | chargers | mode | relayed | failures | handshakes done | all relayed | handshake p99 | CPU per connect | RSS per charger | listen overflows | CSMS legs | CALLs/s held (p99 < 50 ms) | load average |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in bench.runs:
        held = best_held(bench, run.stack, run.chargers) if run.mode == bench.args.modes[0] else None
        held_text = "-" if run.mode != bench.args.modes[0] else (f"{held.rate_per_s} (p99 {held.p99_ms:.1f} ms)" if held else "none tried passed")
        lines.append(
            f"| {run.stack} | {run.chargers} | {run.mode} | {run.relayed} | {run.failed}{' ' + json.dumps(run.failures) if run.failures else ''} | "
            f"{fmt(run.connect_s)} s | {fmt(run.relayed_s)} s | {fmt(run.handshake_p99_s)} s | {fmt(run.cpu_per_connect_ms, 2)} ms | "
            f"{fmt(run.rss_per_charger_kib)} KiB | {run.listen_overflows if run.listen_overflows is not None else '-'} | {run.csms_legs} | {held_text} | "
            f"{fmt(run.load_average)} |"
        )
    if bench.held:
        lines += ["", "| stack | chargers | CALLs/s | p50 | p99 | failed |", "|---|---|---|---|---|---|"]
        for held in bench.held:
            lines.append(f"| {held.stack} | {held.chargers} | {held.rate_per_s} | {fmt(held.p50_ms, 2)} ms | {fmt(held.p99_ms, 2)} ms | {held.failed} |")
    lines += ["", "## Targets (5,000 chargers on this machine)", "", "| stack | target | measured | result |", "|---|---|---|---|"]
    for stack in bench.args.stacks:
        bursts = [run for run in bench.runs if run.stack == stack and run.mode == "burst"]
        biggest = max(bursts, key=lambda run: run.chargers) if bursts else None
        if biggest is None:
            continue
        at_target = biggest.chargers >= TARGET_CHARGERS
        scope = "" if at_target else f" (largest run: {biggest.chargers}; the target is {TARGET_CHARGERS})"
        verdict = lambda ok: ("PASS" if ok else "MISS") if at_target else ("pass at this size" if ok else "MISS")  # noqa: E731
        lines.append(f"| {stack} | burst fully relayed within {TARGET_BURST_S:.0f} s | {fmt(biggest.relayed_s)} s{scope} | "
                     f"{verdict(biggest.relayed == biggest.chargers and (biggest.relayed_s or 1e9) <= TARGET_BURST_S)} |")
        lines.append(f"| {stack} | 0 failures | {biggest.failed}{scope} | {verdict(biggest.failed == 0)} |")
        lines.append(f"| {stack} | under {TARGET_MEMORY_PER_CHARGER_KIB} KiB per charger | {fmt(biggest.rss_per_charger_kib)} KiB{scope} | "
                     f"{verdict(biggest.rss_per_charger_kib is not None and biggest.rss_per_charger_kib < TARGET_MEMORY_PER_CHARGER_KIB)} |")
    lines += ["", "Load average: the machine's, as each run began (2 cores; the load generator and the CSMS add to it during the run)."]
    if bench.notes:
        lines += ["", "Notes:"] + [f"- {note}" for note in bench.notes]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", default="300", help="comma-separated fleet sizes (default 300; the targets: 1000,2000,5000)")
    parser.add_argument("--stacks", default="embedded", help="embedded and/or scaleout (default embedded)")
    parser.add_argument("--modes", default="burst,paced", help="burst and/or paced (default both)")
    parser.add_argument("--pace", type=float, default=10.0, help="seconds a paced connection spreads over (default 10)")
    parser.add_argument("--rates", default="200,500,1000", help="CALLs/s tried for the p99 < 50 ms figure, stopping at the first miss (default 200,500,1000; empty: skip)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per rate (default 5)")
    parser.add_argument("--open-timeout", type=float, default=120.0, help="a charger's handshake timeout (default 120)")
    parser.add_argument("--boot-timeout", type=float, default=120.0, help="seconds a BootNotification may take (default 120)")
    parser.add_argument("--max-runtime", type=float, default=1800.0, help="abort (with a report) after this many seconds (default 1800)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (LinkRay data and logs)")
    args = parser.parse_args(argv)
    try:
        args.chargers = [int(value) for value in args.chargers.split(",") if value.strip()]
        args.rates = [int(value) for value in args.rates.split(",") if value.strip()]
    except ValueError:
        parser.error("--chargers and --rates take whole numbers separated by commas")
    args.stacks = [value.strip() for value in args.stacks.split(",") if value.strip()]
    args.modes = [value.strip() for value in args.modes.split(",") if value.strip()]
    if not args.chargers or min(args.chargers) < 1:
        parser.error("--chargers must be positive")
    if not set(args.stacks) <= {"embedded", "scaleout"} or not args.stacks:
        parser.error("--stacks: embedded and/or scaleout")
    if not set(args.modes) <= {"burst", "paced"} or not args.modes:
        parser.error("--modes: burst and/or paced")
    return args


async def run_bounded(bench: ScaleBench, max_runtime_s: float) -> None:
    try:
        await asyncio.wait_for(bench.run(), max_runtime_s)
    finally:
        for fleet in list(bench.fleets):
            try:
                await asyncio.wait_for(fleet.close(), 30)
            except (Exception, asyncio.CancelledError):
                pass
        if bench.csms is not None:
            bench.csms.close()


def main(argv=None) -> int:
    args = parse_args(argv)
    work_dir = Path(tempfile.mkdtemp(prefix="linkray-scale-"))
    bench = ScaleBench(args, work_dir)
    soft, hard = raise_open_files_limit(bench.open_files_needed())
    if soft < bench.open_files_needed():
        bench.notes.append(f"RLIMIT_NOFILE is {soft} (hard {hard}), below the {bench.open_files_needed()} this run wants")
    aborted = None
    try:
        asyncio.run(run_bounded(bench, args.max_runtime))
    except KeyboardInterrupt:
        aborted = "interrupted"
    except (TimeoutError, asyncio.TimeoutError):
        aborted = f"the run exceeded --max-runtime {args.max_runtime:.0f} s"
    except LinkRayDied as error:
        aborted = str(error)
    except Exception:
        aborted = "unexpected error:\n```\n" + traceback.format_exc() + "```"
    finally:
        bench.stop_all()
        print(render(bench, describe_machine(), aborted), flush=True)
        if args.json:
            args.json.write_text(json.dumps({"runs": [run.__dict__ for run in bench.runs], "held": [held.__dict__ for held in bench.held],
                                             "notes": bench.notes, "aborted": aborted}, indent=2, default=str))
        if args.keep:
            print(f"work directory kept: {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if aborted else 0


if __name__ == "__main__":
    sys.exit(main())

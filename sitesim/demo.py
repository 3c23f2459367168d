"""`make demo`: a whole simulated site on loopback with LinkRay in the middle.

Starts the simulated CSMS and grid meter, then `manage.py serve` (its own data directory under
data/demo, free loopback ports), configures LinkRay through its JSON API (site limit, meter,
each charger's balancing), connects the simulated chargers, prints the dashboard's address and
the demo login, and plays the scenario: base load, PV, cars arriving and leaving, CSMS outages.
Keys: `o` takes the CSMS offline / online, `q` quits (Ctrl-C and SIGTERM too). At the end, the
report (sitesim.report).

    python -m sitesim.demo --scenario office-day --speed 60
    report = await run_demo(DemoOptions(scenario="evening-peak", speed=1200, keys=False))

Time: scenario time runs `speed` times faster than the wall clock. The chargers' reaction delay
and MeterValues interval are scenario times and shrink with it (with floors); LinkRay's control
period, meter poll and pacing stay real. Energy is scaled too: a car wanting 20 kWh at speed 60
takes 20/60 kWh of real (simulated) energy, and the report shows scenario energy again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sitesim.charger import SimulatedCharger
from sitesim.csms import SimulatedCsms
from sitesim.report import CarOutcome, Report, billing_check, build_report
from sitesim.scenario import CarSpec, Scenario, ScenarioError, parse_duration_s, parse_scenario
from sitesim.site import Site

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"
DEFAULT_DATA_DIR = ROOT / "data" / "demo"
DEMO_USER = "admin"
DEMO_ID_TAG = "DEMO-DRIVER"  # every car's RFID card: one the CSMS knows, so LinkRay's offline cache does too
RETAP_INTERVAL_S = 2.0  # wall seconds between a refused driver's taps of the card

METER_POLL_INTERVAL_S = 0.5  # LinkRay's poll of the simulated meter (real seconds)
CONTROL_PERIOD_S = 1.0  # LinkRay's default control period (real seconds)
SEND_SLACK_S = 1.0  # a SetChargingProfile's round trip and one cycle's work, on a busy machine
MIN_REACTION_DELAY_S = 0.05
MIN_METER_VALUE_INTERVAL_S = 1.0
STATUS_INTERVAL_S = 2.0
BILLING_WAIT_S = 30.0
# LinkRay's balancing policy durations, in site time, scaled by --speed so fairness plays out as on
# a real site: (environment variable, LinkRay's default s, floor in wall s). The floors keep them
# above LinkRay's real control period and meter poll, which are not scaled.
SCALED_POLICY_S = (
    ("LINKRAY_BALANCING_ROTATION_PERIOD_S", 900.0, 5.0),  # a charger that ran this long yields
    ("LINKRAY_BALANCING_RESUME_AFTER_S", 30.0, 2.0),  # a paused charger stays paused this long
    ("LINKRAY_BALANCING_LEND_AFTER_S", 60.0, 2.0),  # unused capacity is lent after this long
    ("LINKRAY_BALANCING_INCREASE_INTERVAL_S", 5.0, 1.0),  # raises per charger at most this often
)
_LISTENING = re.compile(r"LinkRay listening on http://[^:]+:(\d+)/")


class DemoError(Exception):
    """The demo cannot start; the message says why and what to do."""


class DemoStopped(DemoError):
    """Stopped (Ctrl-C, SIGTERM, q) before the scenario began: nothing to report."""


class DemoAlreadyRunning(DemoError):
    def __init__(self, pid: int, lock_path: Path):
        super().__init__(
            f"a demo is already running (pid {pid}, lock {lock_path}); stop it with q or Ctrl-C in its"
            f" terminal, or `kill {pid}`"
        )
        self.pid = pid


# --- scenarios ---------------------------------------------------------------------------------


def scenario_names() -> list[str]:
    return sorted(path.stem for path in SCENARIOS_DIR.glob("*.toml"))


def find_scenario(name_or_path: str) -> Path:
    """A shipped scenario's name ("office-day", "office day") or a path to a TOML file."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or os.sep in name_or_path:
        if not path.is_file():
            raise DemoError(f"scenario file {path} does not exist")
        return path
    shipped = SCENARIOS_DIR / f"{name_or_path.strip().lower().replace(' ', '-').replace('_', '-')}.toml"
    if not shipped.is_file():
        raise DemoError(f"no scenario {name_or_path!r}; shipped: {', '.join(scenario_names())}, or give a path to a .toml file")
    return shipped


def load_scenario(name_or_path: str) -> Scenario:
    path = find_scenario(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DemoError(f"cannot read scenario {path}: {error}") from None
    try:
        return parse_scenario(text, source=path.name)
    except ScenarioError as error:
        raise DemoError(f"bad scenario: {error}") from None


# --- one demo at a time ------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DemoLock:
    """A lock file holding the running demo's pid; a stale one (its pid gone) is taken over."""

    def __init__(self, path: Path):
        self.path = path
        self.held = False

    def acquire(self) -> DemoLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pid = self.holder()
                if pid is not None and pid != os.getpid() and pid_alive(pid):
                    raise DemoAlreadyRunning(pid, self.path) from None
                logger.info("demo_lock_stale path=%s pid=%s", self.path, pid)
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{os.getpid()}\n")
            self.held = True
            return self
        raise DemoError(f"could not take the demo lock {self.path}")

    def holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held and self.holder() == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.held = False


# --- LinkRay as a subprocess -------------------------------------------------------------------


try:  # resolved before any fork: the child only calls it
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None
_PR_SET_PDEATHSIG = 1


def _die_with_the_demo() -> None:
    """In the child, before exec: SIGTERM when the demo's thread that started it dies (even by
    SIGKILL), so no LinkRay is left orphaned on its port."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


class LinkRayServer:
    """`manage.py serve` on 127.0.0.1, port 0 (it picks a free one and prints it)."""

    def __init__(self, data_dir: Path, env: dict[str, str], *, python: str = sys.executable, port: int = 0):
        self.data_dir = data_dir
        self.env = env
        self.python = python
        self.requested_port = port
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir.parent / "linkray.log"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def spawn(self) -> LinkRayServer:
        """Start the process (call from the event loop's thread: the child's death signal
        follows the thread that forked it). Its own session: the terminal's Ctrl-C reaches
        only the demo, which stops LinkRay in order."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "LINKRAY_DATA_DIR": str(self.data_dir), "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [self.python, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.requested_port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_the_demo,  # noqa: PLW1509 (one pre-resolved libc call)
            )
        return self

    def wait_listening(self, timeout_s: float = 90.0, stopped: Callable[[], bool] = lambda: False) -> LinkRayServer:
        """Block until serve prints its address (the port it picked); DemoStopped as soon as
        `stopped()` says so."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if stopped():
                raise DemoStopped("stopped while LinkRay was starting")
            match = _LISTENING.search(self.log())
            if match:
                self.port = int(match[1])
                return self
            if self.process.poll() is not None:
                raise DemoError(f"LinkRay exited with {self.process.returncode} at start; its log ({self.log_path}):\n{self.log()[-3000:]}")
            time.sleep(0.1)
        self.stop()
        raise DemoError(f"LinkRay did not start within {timeout_s:.0f} s; its log: {self.log_path}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM and wait (daphne drains and LinkRay flushes); SIGKILL after `timeout_s`."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("demo_linkray_killed pid=%s reason=no_exit_after_sigterm", process.pid)
                process.kill()
                process.wait(10)
        return process.returncode


class LinkRayApi:
    """LinkRay's configuration API with the bootstrap token (blocking; call via to_thread)."""

    def __init__(self, base_url: str, token: str, timeout_s: float = 15.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw or b"null")
        except ValueError:
            return status, raw.decode("utf-8", errors="replace")[:500]


def scaled_policy_env(speed: float) -> dict[str, str]:
    """LinkRay's policy durations at `speed` (wall seconds, never under their floors)."""
    return {name: f"{max(floor_s, default_s / speed):g}" for name, default_s, floor_s in SCALED_POLICY_S}


def balancing_requests(scenario: Scenario, meter_port: int) -> list[tuple[str, str, dict]]:
    """The configuration an installer would script: (method, path, body), in order."""
    site = scenario.site
    body = {
        "grid_limit_a": site.fuse_a,
        "margin_a": site.margin_a,
        "failsafe_current_a": site.failsafe_current_a,
        "nominal_voltage_v": site.nominal_voltage_v,
    }
    if site.grid_limit_kw is not None:
        body["grid_limit_kw"] = site.grid_limit_kw
    requests = [("PUT", "/api/site", body)]
    requests.append((
        "POST",
        "/api/meters",
        {"name": "grid", "model": "sdm630", "transport": "tcp", "host": "127.0.0.1", "port": meter_port,
         "unit_id": 1, "role": "grid", "poll_interval_s": METER_POLL_INTERVAL_S, "stale_after_s": 5.0},
    ))
    for charger in scenario.chargers:
        balancing = {
            "enabled": charger.balanced,
            "kind": charger.kind,
            "phases": list(charger.phases),
            "min_current_a": charger.min_current_a if charger.kind != "dc" else 0,
            "max_current_a": charger.max_current_a,
            "max_power_w": charger.max_power_w,
            "priority": charger.priority,
            "rate_unit": charger.rate_unit,
        }
        requests.append(("PUT", f"/api/chargers/{charger.charge_box_id}/balancing", balancing))
    return requests


def configure_linkray(api: LinkRayApi, scenario: Scenario, meter_port: int, say: Callable[[str], None]) -> str:
    """Configure through the API; "on", or why balancing is not applied (LinkRay still relays)."""
    for method, path, body in balancing_requests(scenario, meter_port):
        status, answer = api.request(method, path, body)
        if status == 404 and path.startswith(("/api/site", "/api/chargers")):
            return "off: this LinkRay has no balancing API yet (it relays; balancing is not applied)"
        if status >= 400:
            raise DemoError(f"LinkRay refused {method} {path} {json.dumps(body)}: {status} {answer}")
        logger.info("demo_configured method=%s path=%s status=%s", method, path, status)
    say(f"Configured LinkRay through its API: site limit {scenario.site.fuse_a:g} A per phase, margin"
        f" {scenario.site.margin_a:g} A, grid meter, {len(scenario.chargers)} chargers with balancing")
    return "on"


# --- the run -----------------------------------------------------------------------------------


@dataclass
class DemoOptions:
    scenario: str = "office-day"
    speed: float = 60.0
    duration_s: float | None = None  # scenario seconds; None: the scenario's own
    data_dir: Path = DEFAULT_DATA_DIR
    keys: bool = True  # read `o` / `q` from the console
    handle_signals: bool = True
    report_json: Path | None = None
    python: str = sys.executable
    port: int = 0  # LinkRay's HTTP/OCPP port; 0: a free one
    status_interval_s: float = STATUS_INTERVAL_S
    say: Callable[[str], None] = field(default=lambda text: print(text, flush=True))


@dataclass
class _CarRun:
    spec: CarSpec
    arrived: bool = False
    departed: bool = False
    energy_delivered_wh: float = 0.0  # scenario energy
    unplugged_at_end: bool = False


class DemoRun:
    """One demo: owns every process, socket and task it starts, and stops them all."""

    def __init__(self, options: DemoOptions, scenario: Scenario):
        if not options.speed > 0:
            raise DemoError(f"--speed must be more than 0, got {options.speed}")
        self.options = options
        self.scenario = scenario
        self.speed = float(options.speed)
        self.duration_s = options.duration_s or scenario.duration_s
        self.say = options.say
        self.stop_requested = asyncio.Event()
        self.interrupted = False
        self.hurry = False
        self.started_at_s: float | None = None  # time.monotonic() at scenario time 0
        self.token = secrets.token_urlsafe(24)
        self.password = secrets.token_urlsafe(9)
        self.reaction_delay_s = max(MIN_REACTION_DELAY_S, scenario.reaction_delay_s / self.speed)
        self.chargers = [
            SimulatedCharger(
                spec.charge_box_id,
                kind=spec.kind,
                phases=spec.phases,
                max_current_a=spec.max_current_a,
                max_power_w=spec.max_power_w,
                voltage_v=scenario.site.nominal_voltage_v,
                allowed_rate_units=spec.allowed_rate_units,
                reaction_delay_s=self.reaction_delay_s,
                meter_value_interval_s=max(MIN_METER_VALUE_INTERVAL_S, scenario.meter_value_interval_s / self.speed),
                reconnect_delay_s=1.0,
                id_tag=DEMO_ID_TAG,
            )
            for spec in scenario.chargers
        ]
        self.site = Site(
            None,
            self.chargers,
            base_load_a=lambda: self.scenario.base_load_a(self.scenario_time_s()),
            pv_feed_in_a=lambda: self.scenario.pv_feed_in_a(self.scenario_time_s()),
            csms=SimulatedCsms(heartbeat_interval_s=60),
            record_interval_s=0.1,
        )
        self.cars = [_CarRun(spec) for spec in sorted(scenario.cars, key=lambda car: car.arrive_s)]
        self.charger_locks = {spec.charge_box_id: asyncio.Lock() for spec in scenario.chargers}
        self.linkray: LinkRayServer | None = None
        self.balancing = "not configured"
        self.tasks: set[asyncio.Task] = set()
        self.lock = DemoLock(options.data_dir / "demo.lock")
        self.ports: dict[str, int] = {}
        self.linkray_pid: int | None = None

    @property
    def reaction_bound_s(self) -> float:
        """How long the grid may stay above the limit at a stretch: LinkRay notices at the next
        meter poll, decides within a control period, the charger answers and then follows after
        its reaction delay."""
        return CONTROL_PERIOD_S + METER_POLL_INTERVAL_S + self.reaction_delay_s + SEND_SLACK_S

    def scenario_time_s(self) -> float:
        if self.started_at_s is None:
            return 0.0
        return min(self.duration_s, (time.monotonic() - self.started_at_s) * self.speed)

    # --- start and stop ------------------------------------------------------------------

    async def run(self) -> Report:
        self.lock.acquire()
        loop = asyncio.get_running_loop()
        restore_console = None
        try:
            if self.options.handle_signals:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(signum, self.request_stop, f"signal {signal.Signals(signum).name}")
            await self.start()
            if self.options.keys:
                restore_console = self.listen_to_console()
            await self.play()
        finally:
            if restore_console is not None:
                restore_console()
            try:
                if self.started_at_s is not None:
                    report = await self.finish()
            finally:
                await self.stop_everything()
                if self.options.handle_signals:
                    for signum in (signal.SIGINT, signal.SIGTERM):
                        loop.remove_signal_handler(signum)
                self.lock.release()
        return report

    def request_stop(self, why: str = "quit") -> None:
        """The first request ends the scenario (report, then a clean stop); a second one while
        stopping skips the wait for LinkRay to hand the CSMS its billing messages."""
        if not self.stop_requested.is_set():
            self.say(f"Stopping ({why})...")
            self.interrupted = True
            self.stop_requested.set()
        elif not self.hurry:
            self.say(f"Stopping now ({why} again): not waiting for the CSMS to get everything")
            self.hurry = True

    async def start(self) -> None:
        scenario = self.scenario
        self.say(f"LinkRay demo: {scenario.name} - {scenario.description}")
        await self.site.start_peers()
        self.ports = {"csms": self.site.csms.port, "meter": self.site.meter.port}
        linkray_dir = self.options.data_dir / "linkray"
        shutil.rmtree(linkray_dir, ignore_errors=True)  # a fresh site every run
        self.linkray = LinkRayServer(
            linkray_dir,
            {
                "LINKRAY_CSMS_URL": self.site.csms.url,
                "LINKRAY_API_TOKEN": self.token,
                "LINKRAY_ADMIN_PASSWORD": self.password,
                "LINKRAY_CSMS_RECONNECT_MIN_S": "0.2",
                "LINKRAY_CSMS_RECONNECT_MAX_S": "2",
                "LINKRAY_CSMS_CONNECT_TIMEOUT_S": "3",
                "LINKRAY_ORPHAN_REPLAY_AFTER_S": "5",
                "LINKRAY_ORPHAN_CHECK_INTERVAL_S": "1",
                "LINKRAY_LOG_LEVEL": os.environ.get("LINKRAY_LOG_LEVEL", "info"),
                **scaled_policy_env(self.speed),
            },
            python=self.options.python,
            port=self.options.port,
        )
        self.say("Starting LinkRay (manage.py serve)...")
        self.linkray.spawn()
        await asyncio.to_thread(self.linkray.wait_listening, 90.0, self.stop_requested.is_set)
        self.linkray_pid = self.linkray.process.pid
        self.ports["linkray"] = self.linkray.port
        api = LinkRayApi(self.linkray.http_url, self.token)
        self.balancing = await asyncio.to_thread(configure_linkray, api, scenario, self.site.meter.port, self.say)
        if self.balancing != "on":
            self.say(f"Balancing {self.balancing}")
        self.site.linkray_url = self.linkray.ocpp_url
        if self.stop_requested.is_set():
            raise DemoStopped("stopped before the chargers connected")
        await self.site.connect_chargers(timeout_s=30)
        self.say("")
        self.say(f"  Dashboard:  {self.linkray.http_url}/")
        self.say(f"  Log in as:  {DEMO_USER} / {self.password}")
        self.say(f"  Chargers:   {len(self.chargers)} at {self.linkray.ocpp_url}/<id>; CSMS {self.site.csms.url};"
                 f" meter modbus 127.0.0.1:{self.site.meter.port}")
        self.say(f"  Scenario:   {_hours(self.duration_s)} at speed {self.speed:g} = {self.duration_s / self.speed:.0f} s"
                 f" (LinkRay log: {self.linkray.log_path})")
        if self.options.keys:
            self.say("  Keys:       o = CSMS offline/online, q = quit (Ctrl-C works too)")
        self.say("")

    async def stop_everything(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        await self.site.stop()
        if self.linkray is not None:
            await asyncio.to_thread(self.linkray.stop)

    # --- the console ---------------------------------------------------------------------

    def listen_to_console(self) -> Callable[[], None] | None:
        """`o` / `q` as single keys on a terminal (cbreak mode), or as lines otherwise."""
        stream = sys.stdin
        try:
            fd = stream.fileno()
        except (AttributeError, ValueError, OSError):
            return None
        loop = asyncio.get_running_loop()
        restore: Callable[[], None] = lambda: None  # noqa: E731
        if os.isatty(fd):
            import termios
            import tty

            saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            restore = lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved)  # noqa: E731

        def on_input() -> None:
            try:
                data = os.read(fd, 1024).decode(errors="replace")
            except OSError:
                data = ""
            if not data:  # end of input: keys are gone, the demo goes on
                loop.remove_reader(fd)
                return
            for key in data.strip().lower() or " ":
                self.on_key(key)

        try:
            loop.add_reader(fd, on_input)
        except (OSError, ValueError, NotImplementedError, PermissionError):
            restore()
            return None

        def stop_listening() -> None:
            with contextlib.suppress(Exception):
                loop.remove_reader(fd)
            restore()

        return stop_listening

    def on_key(self, key: str) -> None:
        if key == "q":
            self.request_stop("q pressed")
        elif key == "o":
            self.spawn(self.toggle_csms())
        elif not key.isspace():
            self.say("keys: o = CSMS offline/online, q = quit")

    async def toggle_csms(self) -> None:
        csms = self.site.csms
        if csms.online:
            await csms.go_offline()
            self.say(f"[{self.scenario.clock(self.scenario_time_s())}] CSMS OFFLINE: LinkRay serves the chargers and keeps their billing messages")
        else:
            await csms.go_online()
            self.say(f"[{self.scenario.clock(self.scenario_time_s())}] CSMS back ONLINE: LinkRay hands it what it kept")

    def spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("demo_task_failed error=%r", task.exception())
            self.say(f"demo step failed: {task.exception()!r}")

    # --- the scenario --------------------------------------------------------------------

    def timeline(self) -> list[tuple[float, str, object]]:
        events: list[tuple[float, str, object]] = []
        for car in self.cars:
            events.append((car.spec.arrive_s, "arrive", car))
            if car.spec.leave_s is not None:
                events.append((car.spec.leave_s, "leave", car))
        for outage in self.scenario.csms_outages:
            events.append((outage.from_s, "csms_offline", outage))
            events.append((outage.to_s, "csms_online", outage))
        order = {"leave": 0, "csms_online": 1, "csms_offline": 2, "arrive": 3}
        return sorted((event for event in events if event[0] < self.duration_s), key=lambda e: (e[0], order[e[1]]))

    async def play(self) -> None:
        events = self.timeline()
        self.started_at_s = time.monotonic()
        next_status_s = 0.0
        while not self.stop_requested.is_set():
            now_s = self.scenario_time_s()
            while events and events[0][0] <= now_s:
                _, kind, subject = events.pop(0)
                self.handle(kind, subject)
            if now_s >= self.duration_s:
                break
            wall_s = time.monotonic() - self.started_at_s
            if wall_s >= next_status_s:
                self.say(self.status_line())
                next_status_s = wall_s + self.options.status_interval_s
            wait_s = self.options.status_interval_s
            if events:
                wait_s = min(wait_s, (events[0][0] - now_s) / self.speed)
            wait_s = min(wait_s, (self.duration_s - now_s) / self.speed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), max(0.01, wait_s))
        self.say(self.status_line())
        self.stop_requested.set()  # the end: drivers still tapping give up

    def handle(self, kind: str, subject) -> None:
        if kind == "arrive":
            self.spawn(self.arrive(subject))
        elif kind == "leave":
            self.spawn(self.leave(subject))
        elif kind == "csms_offline" and self.site.csms.online:
            self.spawn(self.toggle_csms())
        elif kind == "csms_online" and not self.site.csms.online:
            self.spawn(self.toggle_csms())

    async def arrive(self, car: _CarRun) -> None:
        spec = car.spec
        charger = self.site.charger(spec.charge_box_id)
        async with self.charger_locks[spec.charge_box_id]:
            car.arrived = True
            self.say(f"[{self.scenario.clock(spec.arrive_s)}] car arrives at {spec.charge_box_id} wanting {spec.energy_wh / 1000:g} kWh")
            await charger.plug_in(
                spec.energy_wh / self.speed,
                max_current_a=spec.max_current_a,
                max_power_w=spec.max_power_w,
                taper_from=spec.taper_from,
                timeout_s=30,
            )
        # Refused (say LinkRay had never seen the card accepted and the CSMS is away): the driver
        # taps the card again until a transaction starts or the car leaves.
        while charger.transaction_id is None and not car.departed and not self.stop_requested.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), RETAP_INTERVAL_S)
            async with self.charger_locks[spec.charge_box_id]:
                if charger.transaction_id is None and charger.car is not None and not car.departed:
                    logger.info("demo_card_tapped_again charge_box_id=%s", spec.charge_box_id)
                    charger.remote_start(DEMO_ID_TAG, None)

    async def leave(self, car: _CarRun) -> None:
        spec = car.spec
        charger = self.site.charger(spec.charge_box_id)
        async with self.charger_locks[spec.charge_box_id]:
            if not car.arrived or car.departed:
                return
            await charger.unplug(timeout_s=30)
            car.departed = True
            car.energy_delivered_wh = charger.energy_delivered_wh * self.speed
            self.say(
                f"[{self.scenario.clock(self.scenario_time_s())}] car leaves {spec.charge_box_id} with"
                f" {car.energy_delivered_wh / 1000:.1f} of {spec.energy_wh / 1000:g} kWh"
            )

    def status_line(self) -> str:
        grid = self.site.grid_current_a()
        limit_a = self.scenario.site.fuse_a
        charging = sum(1 for charger in self.chargers if charger.draw_a > 0)
        plugged = sum(1 for charger in self.chargers if charger.car is not None)
        phases = "  ".join(f"{phase} {grid[phase]:5.1f}" for phase in ("L1", "L2", "L3"))
        power_kw = sum(charger.power_w for charger in self.chargers) / 1000
        return (
            f"[{self.scenario.clock(self.scenario_time_s())}] grid A {phases} / {limit_a:g} A   charging"
            f" {charging}/{plugged} cars {power_kw:5.1f} kW   CSMS {'online' if self.site.csms.online else 'OFFLINE'}"
        )

    # --- the end -------------------------------------------------------------------------

    async def finish(self) -> Report:
        """Cars still plugged in are unplugged (their transactions end), the CSMS comes back if
        it was away, LinkRay gets time to hand it everything, then the report."""
        wall_s = (time.monotonic() - self.started_at_s) if self.started_at_s is not None else 0.0
        scenario_s = self.scenario_time_s()
        samples = list(self.site.recorder.samples)
        if self.started_at_s is not None:
            samples = [sample for sample in samples if sample[0] >= self.started_at_s]
        for task in list(self.tasks):  # arrivals and departures under way
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), 30)
        still = [car for car in self.cars if car.arrived and not car.departed]
        if still:
            await asyncio.gather(*(self._unplug_at_end(car) for car in still), return_exceptions=True)
        if self.site.csms is not None and self.started_at_s is not None and not self.site.csms.online:
            await self.toggle_csms()
        billing = self._billing()
        if self.started_at_s is not None and not billing.billed_exactly_once:
            self.say("Waiting for LinkRay to hand the CSMS every billing message...")
            deadline = time.monotonic() + BILLING_WAIT_S
            while time.monotonic() < deadline and not billing.billed_exactly_once and not self.hurry:
                await asyncio.sleep(0.25)
                billing = self._billing()
        outcomes = [
            CarOutcome(
                charge_box_id=car.spec.charge_box_id,
                arrive_s=car.spec.arrive_s,
                leave_s=car.spec.leave_s if car.departed and not car.unplugged_at_end else None,
                energy_wanted_wh=car.spec.energy_wh,
                energy_delivered_wh=car.energy_delivered_wh,
                departed=car.departed and not car.unplugged_at_end,
            )
            for car in self.cars
            if car.arrived
        ]
        report = build_report(
            scenario=self.scenario.name,
            speed=self.speed,
            scenario_s=scenario_s,
            wall_s=wall_s,
            limit_a=self.scenario.site.fuse_a,
            reaction_bound_s=self.reaction_bound_s,
            samples=samples,
            cars=outcomes,
            billing=billing,
            charge_box_ids=[spec.charge_box_id for spec in self.scenario.chargers],
            balancing=self.balancing,
            interrupted=self.interrupted,
        )
        self.say("")
        self.say(report.format())
        if self.options.report_json is not None:
            self.options.report_json.parent.mkdir(parents=True, exist_ok=True)
            self.options.report_json.write_text(report.to_json(), encoding="utf-8")
        return report

    async def _unplug_at_end(self, car: _CarRun) -> None:
        car.unplugged_at_end = True
        await self.leave(car)

    def _billing(self):
        sent = {charger.charge_box_id: [raw for way, raw in charger.log if way == "out"] for charger in self.chargers}
        received = {
            charge_box_id: [raw for way, raw in self.site.csms.log.get(charge_box_id, []) if way == "in"]
            for charge_box_id in sent
        }
        return billing_check(sent, received)


def _hours(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


async def run_demo(options: DemoOptions) -> Report:
    """Run one demo to its end (or until stopped) and return its report. DemoError when it
    cannot start (bad scenario, a demo already running, LinkRay not starting)."""
    scenario = load_scenario(options.scenario)
    return await DemoRun(options, scenario).run()


# --- the command line --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> DemoOptions:
    parser = argparse.ArgumentParser(
        prog="python -m sitesim.demo",
        description="A simulated site (CSMS, grid meter, chargers, cars) with LinkRay in the middle, on loopback.",
    )
    parser.add_argument("--scenario", default="office-day", help=f"a shipped scenario ({', '.join(scenario_names())}) or a .toml path")
    parser.add_argument("--speed", type=float, default=60.0, help="scenario time runs N times faster than the clock (default 60)")
    parser.add_argument("--duration", default=None, help="scenario time to run, e.g. 2h, 90m, 3600 (default: the scenario's)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help=f"where LinkRay's data, its log and the lock live (default {DEFAULT_DATA_DIR})")
    parser.add_argument("--port", type=int, default=0, help="LinkRay's port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--no-keys", action="store_true", help="do not read o/q from the console")
    parser.add_argument("--report-json", type=Path, default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    if not args.speed > 0:
        parser.error(f"--speed must be more than 0, got {args.speed:g}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0-65535, got {args.port}")
    duration_s = None
    if args.duration is not None:
        try:
            duration_s = parse_duration_s(args.duration, "--duration")
        except ScenarioError as error:
            parser.error(str(error))
    return DemoOptions(
        scenario=args.scenario,
        speed=args.speed,
        duration_s=duration_s,
        data_dir=args.data_dir.expanduser().resolve(),
        keys=not args.no_keys,
        report_json=args.report_json,
        port=args.port,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    try:
        report = asyncio.run(run_demo(options))
    except DemoStopped as error:
        print(f"demo: {error}; everything it started is stopped", file=sys.stderr)
        return 130
    except DemoError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130
    if report.interrupted:  # stopped early: cars that had just arrived may have had nothing yet
        return 0 if report.within_reaction_bound and report.billing.billed_exactly_once else 1
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""`make demo` end to end: a shipped scenario at high speed through a real `manage.py serve`
(embedded: the demo is the one-box default; scale-out needs Celery workers the demo does not
start), with the simulated CSMS going away and coming back, and Ctrl-C stopping it all.

The whole runs in-process (sitesim.demo.DemoRun) so the test can read its ports and pids; the
Ctrl-C test runs `python -m sitesim.demo` as a subprocess, as `make demo` does."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from sitesim.demo import ROOT, DemoOptions, DemoRun, load_scenario, pid_alive
from tests.peers.waiting import wait_for_sync


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def processes_using(data_dir: Path) -> list[int]:
    """Pids of this user's processes started with LINKRAY_DATA_DIR under `data_dir`."""
    marker = f"LINKRAY_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(item.startswith(marker) for item in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


async def test_the_evening_peak_at_900x_stays_under_the_fuse_bills_once_and_leaves_nothing_running(tmp_path):
    scenario = load_scenario("evening-peak")
    lines: list[str] = []
    options = DemoOptions(
        scenario="evening-peak", speed=900, data_dir=tmp_path / "demo", keys=False, handle_signals=False,
        report_json=tmp_path / "report.json", say=lines.append,
    )
    run = DemoRun(options, scenario)
    tasks_before = asyncio.all_tasks()
    report = await run.run()
    text = "\n".join(lines)

    assert report.balancing == "on", text
    assert "CSMS OFFLINE" in text and "CSMS back ONLINE" in text  # the scenario's outage happened
    # Never above the fuse for longer than LinkRay's reaction bound at a stretch.
    assert report.within_reaction_bound, report.format()
    assert max(phase.peak_a for phase in report.phases) > 0.5 * scenario.site.fuse_a  # the site was busy
    # Every transaction the chargers started reached the CSMS exactly once, outage or not.
    assert report.billing.billed_exactly_once, report.format()
    assert report.billing.transactions_started == len(scenario.cars), report.format()
    # Every car got energy.
    assert len(report.cars) == len(scenario.cars)
    assert not report.cars_without_energy, report.format()
    assert report.ok and (tmp_path / "report.json").exists()

    # Nothing left running: LinkRay exited, every port is free, no task of the demo remains.
    assert run.linkray.process.returncode is not None and not pid_alive(run.linkray_pid)
    assert processes_using(tmp_path / "demo") == []
    assert set(run.ports) == {"csms", "meter", "linkray"}
    assert all(port_is_free(port) for port in run.ports.values()), run.ports
    assert asyncio.all_tasks() - tasks_before - {asyncio.current_task()} == set()
    assert not (tmp_path / "demo" / "demo.lock").exists()


def test_ctrl_c_stops_the_demo_with_a_report_and_leaves_no_process_or_port(tmp_path):
    data_dir = tmp_path / "demo"
    process = subprocess.Popen(
        [sys.executable, "-m", "sitesim.demo", "--scenario", "solar-noon", "--speed", "60", "--no-keys", "--data-dir", str(data_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )
    output: list[str] = []
    try:
        dashboard = None
        for line in process.stdout:  # until the demo is up
            output.append(line)
            dashboard = dashboard or re.search(r"Dashboard:\s+http://127\.0\.0\.1:(\d+)/", line)
            if "Log in as:" in line:
                break
        assert dashboard, "".join(output)
        assert (data_dir / "demo.lock").read_text().strip() == str(process.pid)
        assert processes_using(data_dir)  # LinkRay is running
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    text = "".join(output) + rest
    assert process.returncode in (0, 1), text
    assert "Stopping (signal SIGINT)" in text and "(stopped early)" in text
    assert "LinkRay demo report: solar noon" in text and "Billing:" in text
    wait_for_sync(lambda: processes_using(data_dir) == [], 10, "no process of the demo left")
    assert port_is_free(int(dashboard[1]))
    assert not (data_dir / "demo.lock").exists()

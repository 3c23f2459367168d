"""The demo runner's own pieces (sitesim/demo.py): scenarios by name, the lock, the command line,
and the configuration it sends LinkRay. No LinkRay here: tests/e2e/test_demo.py runs the whole."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.peers.waiting import wait_for

from sitesim.demo import (
    ROOT,
    DemoAlreadyRunning,
    DemoOptions,
    DemoRun,
    DemoError,
    DemoLock,
    balancing_requests,
    configure_linkray,
    find_scenario,
    load_scenario,
    parse_args,
    scaled_policy_env,
    scenario_names,
)


def test_a_shipped_scenario_is_found_by_its_name_with_spaces_or_dashes():
    assert find_scenario("office day") == find_scenario("office-day")
    assert set(scenario_names()) >= {"office-day", "evening-peak", "depot-night", "solar-noon"}


def test_an_unknown_scenario_lists_the_shipped_ones():
    with pytest.raises(DemoError, match="no scenario 'beach party'; shipped: depot-night, evening-peak"):
        find_scenario("beach party")


def test_a_scenario_file_with_a_mistake_is_a_clear_demo_error(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "x"\nduration = "1h"\n[site]\nfuse_a = "big"\n')
    with pytest.raises(DemoError, match=r"bad scenario: mine.toml: site.fuse_a: expected a number"):
        load_scenario(str(path))
    with pytest.raises(DemoError, match="does not exist"):
        load_scenario(str(tmp_path / "missing.toml"))


def test_the_lock_refuses_a_second_demo_while_the_first_is_alive(tmp_path):
    path = tmp_path / "demo.lock"
    path.write_text(f"{os.getppid()}\n")  # a live process that is not this one
    with pytest.raises(DemoAlreadyRunning) as caught:
        DemoLock(path).acquire()
    assert f"a demo is already running (pid {os.getppid()}" in str(caught.value)
    assert path.read_text().strip() == str(os.getppid())


def test_a_stale_lock_is_taken_over_and_released_at_the_end(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    path = tmp_path / "demo.lock"
    path.write_text(finished.stdout)  # that process is gone
    lock = DemoLock(path).acquire()
    assert path.read_text().strip() == str(os.getpid())
    lock.release()
    assert not path.exists()


def test_a_second_make_demo_says_a_demo_is_running_and_exits_2(tmp_path):
    (tmp_path / "demo.lock").write_text(f"{os.getpid()}\n")
    result = subprocess.run(
        [sys.executable, "-m", "sitesim.demo", "--data-dir", str(tmp_path), "--no-keys", "--scenario", "solar-noon"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert f"demo: a demo is already running (pid {os.getpid()}" in result.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--speed", "0"], "--speed must be more than 0"), (["--duration", "soon"], "--duration"), (["--port", "70000"], "--port")],
)
def test_bad_command_line_options_are_refused_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as caught:
        parse_args(argv)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_the_command_line_reads_speed_duration_and_scenario():
    options = parse_args(["--scenario", "depot-night", "--speed", "120", "--duration", "2h", "--no-keys"])
    assert (options.scenario, options.speed, options.duration_s, options.keys) == ("depot-night", 120, 7200, False)


def test_linkray_is_configured_as_issue_8s_api_describes():
    scenario = load_scenario("depot-night")
    requests = balancing_requests(scenario, meter_port=15020)
    assert requests[0] == ("PUT", "/api/site", {"grid_limit_a": 100, "margin_a": 5, "failsafe_current_a": 6, "nominal_voltage_v": 230})
    method, path, meter = requests[1]
    assert (method, path) == ("POST", "/api/meters")
    assert meter | {"port": 15020} == meter and meter["model"] == "sdm630" and meter["role"] == "grid" and meter["transport"] == "tcp"
    by_path = {path: body for _, path, body in requests[2:]}
    dc = by_path["/api/chargers/DEPOT-DC-1/balancing"]
    assert dc["kind"] == "dc" and dc["max_power_w"] == 50_000 and dc["rate_unit"] == "W" and dc["enabled"] is True
    rotated = by_path["/api/chargers/DEPOT-AC-2/balancing"]
    assert rotated["phases"] == ["L2", "L3", "L1"] and rotated["max_current_a"] == 32 and rotated["rate_unit"] == "A"
    assert len(by_path) == len(scenario.chargers)


def test_linkrays_fairness_durations_run_at_the_demos_speed_but_never_under_their_floors():
    assert scaled_policy_env(1) == {
        "LINKRAY_BALANCING_ROTATION_PERIOD_S": "900",
        "LINKRAY_BALANCING_RESUME_AFTER_S": "30",
        "LINKRAY_BALANCING_LEND_AFTER_S": "60",
        "LINKRAY_BALANCING_INCREASE_INTERVAL_S": "5",
    }
    fast = scaled_policy_env(60)
    assert fast["LINKRAY_BALANCING_ROTATION_PERIOD_S"] == "15"
    assert fast["LINKRAY_BALANCING_RESUME_AFTER_S"] == "2" and fast["LINKRAY_BALANCING_INCREASE_INTERVAL_S"] == "1"
    assert scaled_policy_env(10_000)["LINKRAY_BALANCING_ROTATION_PERIOD_S"] == "5"


async def test_the_o_key_takes_the_csms_offline_and_back_and_q_stops_the_demo(tmp_path):
    lines: list[str] = []
    run = DemoRun(DemoOptions(data_dir=tmp_path, say=lines.append), load_scenario("solar-noon"))
    await run.site.csms.start()
    try:
        run.on_key("o")
        await wait_for(lambda: not run.site.csms.online, 10, "the CSMS offline")
        run.on_key("o")
        await wait_for(lambda: run.site.csms.online, 10, "the CSMS back online")
        assert any("CSMS OFFLINE" in line for line in lines) and any("CSMS back ONLINE" in line for line in lines)
        run.on_key("x")
        assert lines[-1] == "keys: o = CSMS offline/online, q = quit"
        run.on_key("q")
        assert run.stop_requested.is_set() and run.interrupted and not run.hurry
        run.on_key("q")  # again while stopping: do not wait for the CSMS
        assert run.hurry
    finally:
        await run.site.csms.stop()


async def test_typed_lines_work_as_keys_when_the_input_is_not_a_terminal(tmp_path, monkeypatch):
    read_fd, write_fd = os.pipe()
    monkeypatch.setattr(sys, "stdin", os.fdopen(read_fd))
    run = DemoRun(DemoOptions(data_dir=tmp_path, say=lambda line: None), load_scenario("solar-noon"))
    stop_listening = run.listen_to_console()
    assert stop_listening is not None
    try:
        os.write(write_fd, b"q\n")
        await wait_for(run.stop_requested.is_set, 5, "q read from the input")
    finally:
        stop_listening()
        os.close(write_fd)
        sys.stdin.close()


class AnsweringApi:
    """LinkRay's API as the demo sees it: every request answered with one status."""

    def __init__(self, status: int, answer: object):
        self.status, self.answer = status, answer
        self.requests: list[tuple[str, str]] = []

    def request(self, method, path, body=None):
        self.requests.append((method, path))
        return self.status, self.answer


def test_a_linkray_without_the_balancing_api_still_runs_the_demo_and_says_balancing_is_off():
    api = AnsweringApi(404, {"detail": "Not Found"})
    outcome = configure_linkray(api, load_scenario("solar-noon"), 15020, say=lambda line: None)
    assert outcome.startswith("off: this LinkRay has no balancing API yet")
    assert api.requests == [("PUT", "/api/site")]


def test_linkray_refusing_the_configuration_stops_the_demo_with_its_answer():
    api = AnsweringApi(400, {"error": "invalid input", "fields": {"grid_limit_a": "must be more than 0"}})
    with pytest.raises(DemoError, match=r"LinkRay refused PUT /api/site .*400 .*grid_limit_a"):
        configure_linkray(api, load_scenario("solar-noon"), 15020, say=lambda line: None)

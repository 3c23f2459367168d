"""The embedded default end to end: `manage.py serve` polls a meter added in its database and the
meters page shows the live reading within seconds (simulate_meter as the meter)."""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request


from tests.peers.linkray import ROOT, LinkRayProcess
from tests.peers.meter import SimulateMeterProcess
from tests.peers.waiting import wait_for_sync

PASSWORD = "meters-test-password"


def logged_in_opener(base_url: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    login_page = opener.open(f"{base_url}/accounts/login/", timeout=5).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
    form = urllib.parse.urlencode({"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token}).encode()
    opener.open(urllib.request.Request(f"{base_url}/accounts/login/", data=form, headers={"Referer": f"{base_url}/accounts/login/"}), timeout=5)
    return opener


def test_serve_polls_a_new_meter_and_the_page_shows_it_live(tmp_path):
    simulator = SimulateMeterProcess(
        "--model", "sdm630", "--port", "0", "--no-chargers", "--base-current", "11,12,13", log_path=tmp_path / "sim.log"
    ).start()
    linkray = LinkRayProcess({"LINKRAY_ADMIN_PASSWORD": PASSWORD, "LINKRAY_METER_CONFIG_RELOAD_S": "0.2"}, tmp_path / "linkray")
    try:
        linkray.start()
        subprocess.run(
            [
                sys.executable, "manage.py", "shell", "-c",
                "from meters.models import Meter; "
                f"Meter.objects.create(name='Grid', model_key='sdm630', transport='tcp', host='127.0.0.1', port={simulator.port})",
            ],
            cwd=ROOT, env={**os.environ, **linkray.env, "LINKRAY_DATA_DIR": str(linkray.data_dir)}, check=True, capture_output=True,
        )
        opener = logged_in_opener(linkray.http_url)

        def live_rows_once_read() -> str:
            request = urllib.request.Request(f"{linkray.http_url}/meters/", headers={"HX-Request": "true"})
            rows = opener.open(request, timeout=5).read().decode()
            return rows if 'data-state="ok"' in rows else ""

        html = wait_for_sync(live_rows_once_read, 10, "a live reading on /meters/")
        assert "11.00 A" in html and "12.00 A" in html and "13.00 A" in html
    finally:
        linkray.stop()
        simulator.stop()



def test_a_failing_meter_logs_one_linkray_line_per_change_and_no_pymodbus_hex_dumps(tmp_path):
    # A real poll in `manage.py serve` of a meter that never answers (wrong unit id behind an
    # RTU-over-TCP gateway). pymodbus would log "No response received" with ">>>>> send: 0x7
    # ..." every second: asgi.py runs django.setup() a second time, which used to reset the
    # level set in MetersConfig.ready().
    simulator = SimulateMeterProcess(
        "--model", "sdm630", "--port", "0", "--rtu-over-tcp", "--no-chargers", log_path=tmp_path / "sim.log"
    ).start()
    linkray = LinkRayProcess({"LINKRAY_ADMIN_PASSWORD": PASSWORD, "LINKRAY_METER_CONFIG_RELOAD_S": "0.2"}, tmp_path / "linkray")
    try:
        linkray.start()
        subprocess.run(
            [
                sys.executable, "manage.py", "shell", "-c",
                "from meters.models import Meter; "
                "Meter.objects.create(name='Grid', model_key='sdm630', transport='rtu_over_tcp', host='127.0.0.1', "
                f"port={simulator.port}, unit_id=7, timeout_s=0.2, poll_interval_s=0.2, stale_after_s=1)",
            ],
            cwd=ROOT, env={**os.environ, **linkray.env, "LINKRAY_DATA_DIR": str(linkray.data_dir)}, check=True, capture_output=True,
        )
        opener = logged_in_opener(linkray.http_url)

        def failed_polls() -> int:
            request = urllib.request.Request(f"{linkray.http_url}/meters/1/", headers={"HX-Request": "true"})
            match = re.search(r"(\d+) failed poll", opener.open(request, timeout=5).read().decode())
            return int(match.group(1)) if match else 0

        wait_for_sync(lambda: failed_polls() >= 5, 20, "five failed polls of the silent meter")
        log = linkray.log()
        assert ">>>>>" not in log and "pymodbus.logging" not in log, log[-3000:]
        assert log.count("meter_unavailable meter=Grid") == 1  # once per change of reason, not per poll
    finally:
        linkray.stop()
        simulator.stop()


#!/usr/bin/env python3
"""Take the README's screenshots: the dashboard and a charger page, desktop (1366 px) and phone
(390 px), headless Chromium against `manage.py serve` with the site of tests/peers/site.py
(a CSMS and four chargers on loopback, one charging, one offline), balanced under a 63 A main
fuse read by a simulated SDM630 grid meter (pymodbus on loopback).

    .venv/bin/python docs/screenshots/take.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import urllib.request
from contextlib import AsyncExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tests.peers.browser import chromium  # noqa: E402
from tests.peers.csms import CsmsServer  # noqa: E402
from tests.peers.linkray import LinkRayProcess  # noqa: E402
from tests.peers.meter import MeterPeer  # noqa: E402
from tests.peers.site import CHARGERS, CREATE_USERS, OFFLINE_CHARGER, PASSWORDS, boot_site  # noqa: E402

SIZES = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
TOKEN = "screenshots-bootstrap-token"
# The building's load plus the charging car, as the grid meter reads it.
GRID = {"current_a.l1": 31.4, "current_a.l2": 24.8, "current_a.l3": 27.2, "voltage_v.l1": 231.0,
        "voltage_v.l2": 230.2, "voltage_v.l3": 229.6, "total_power_w": 19_150.0}


def api(linkray, method: str, path: str, body: dict) -> None:
    request = urllib.request.Request(
        f"{linkray.http_url}/api{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method=method,
    )
    urllib.request.urlopen(request, timeout=30).close()


async def main() -> None:
    import os
    import subprocess

    async with AsyncExitStack() as exits:
        csms = await CsmsServer().start()
        exits.push_async_callback(csms.stop)
        data_dir = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="linkray-shots-")))
        meter = await MeterPeer.of("sdm630", GRID).start()
        exits.push_async_callback(meter.stop)
        env = {"LINKRAY_CSMS_URL": csms.url, "LINKRAY_STATE_FLUSH_INTERVAL_S": "0.2", "LINKRAY_TIME_ZONE": "Europe/Berlin",
               "LINKRAY_API_TOKEN": TOKEN}
        linkray = LinkRayProcess(env, data_dir).start()
        exits.callback(linkray.stop)
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", CREATE_USERS],
            cwd=HERE.parents[1], env={**os.environ, **env, "LINKRAY_DATA_DIR": str(data_dir)}, check=True, capture_output=True,
        )
        await boot_site(linkray.url, exits)
        api(linkray, "POST", "/meters", {"name": "Grid (main switchboard)", "model": "sdm630", "transport": "tcp",
                                         "host": "127.0.0.1", "port": meter.port, "unit_id": 1, "role": "grid"})
        api(linkray, "PUT", "/site", {"grid_limit_a": 63, "margin_a": 3})
        for charge_box_id in (OFFLINE_CHARGER, *CHARGERS[:2]):  # the AC wallboxes
            api(linkray, "PUT", f"/chargers/{charge_box_id}/balancing", {"enabled": True, "kind": "ac3", "max_current_a": 32})
        browser = await exits.enter_async_context(chromium(linkray.http_url))
        page = browser.page
        await browser.log_in("operator", PASSWORDS["operator"])
        # Until the meter is read and a cycle has run, the panel shows the failsafe.
        await page.locator("#site-allocations td.num", has_text=" A").first.wait_for(timeout=30_000)
        await page.locator("#site-meter", has_text="ok").wait_for(timeout=30_000)
        for name, size in SIZES.items():
            await page.set_viewport_size(size)
            for shot, path in (("dashboard", "/"), ("charger", f"/chargers/{CHARGERS[0]}/")):
                await browser.goto(path)
                await page.wait_for_load_state("networkidle")
                await page.screenshot(path=str(HERE / f"{shot}-{name}.png"), full_page=False)
                print(f"wrote {HERE / f'{shot}-{name}.png'}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())

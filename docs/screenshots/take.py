#!/usr/bin/env python3
"""Take the README's screenshots: the dashboard and a charger page, desktop (1366 px) and phone
(390 px), headless Chromium against `manage.py serve` with the site of tests/peers/site.py
(a CSMS and four chargers on loopback, one charging, one offline).

    .venv/bin/python docs/screenshots/take.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tests.peers.browser import chromium  # noqa: E402
from tests.peers.csms import CsmsServer  # noqa: E402
from tests.peers.linkray import LinkRayProcess  # noqa: E402
from tests.peers.site import CHARGERS, CREATE_USERS, PASSWORDS, boot_site  # noqa: E402

SIZES = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


async def main() -> None:
    import os
    import subprocess

    async with AsyncExitStack() as exits:
        csms = await CsmsServer().start()
        exits.push_async_callback(csms.stop)
        data_dir = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="linkray-shots-")))
        env = {"LINKRAY_CSMS_URL": csms.url, "LINKRAY_STATE_FLUSH_INTERVAL_S": "0.2", "LINKRAY_TIME_ZONE": "Europe/Berlin"}
        linkray = LinkRayProcess(env, data_dir).start()
        exits.callback(linkray.stop)
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", CREATE_USERS],
            cwd=HERE.parents[1], env={**os.environ, **env, "LINKRAY_DATA_DIR": str(data_dir)}, check=True, capture_output=True,
        )
        await boot_site(linkray.url, exits)
        browser = await exits.enter_async_context(chromium(linkray.http_url))
        page = browser.page
        await browser.log_in("operator", PASSWORDS["operator"])
        for name, size in SIZES.items():
            await page.set_viewport_size(size)
            for shot, path in (("dashboard", "/"), ("charger", f"/chargers/{CHARGERS[0]}/")):
                await browser.goto(path)
                await page.wait_for_load_state("networkidle")
                await page.screenshot(path=str(HERE / f"{shot}-{name}.png"), full_page=False)
                print(f"wrote {HERE / f'{shot}-{name}.png'}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())

#!/usr/bin/env python3
"""Bytes an open dashboard tab costs per hour: what an operator's phone or a wall screen on an
LTE-connected site pays for leaving the page open.

    .venv/bin/python bench/page_bytes.py                       # this checkout, tab visible and hidden
    .venv/bin/python bench/page_bytes.py --root /path/to/old   # another checkout (the "before")

All on 127.0.0.1: a CSMS (the `ocpp` package), `manage.py serve` (embedded default, data in a
temp dir), the site of tests/peers/site.py (four chargers, one charging and sending MeterValues
every 10 s), headless Chromium logged in on the dashboard. Bytes are what Chromium received
(Network.loadingFinished encodedDataLength: headers + body as sent), counted for --seconds after
the page has loaded, then scaled to an hour. "hidden" makes the page report document.hidden
(the state of a background tab or a locked phone) and fires visibilitychange.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocpp.v16 import call  # noqa: E402
import tests.peers.linkray as linkray_peer  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from tests.peers.browser import CHROMIUM, CHROMIUM_ARGS, Browser  # noqa: E402
from tests.peers.csms import CsmsServer  # noqa: E402
from tests.peers.site import CHARGERS, boot_site  # noqa: E402

PASSWORD = "bench-admin-password-1"
# A revalidated fragment (304, which Chromium reports as its cached 200) is headers only.
HEADERS_ONLY_BYTES = 600
HIDE = """() => {
    Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
    Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
    document.dispatchEvent(new Event('visibilitychange'));
}"""


async def measure(root: Path, seconds: float, hidden: bool) -> dict:
    linkray_peer.ROOT = root
    async with AsyncExitStack() as exits:
        csms = await CsmsServer().start()
        exits.push_async_callback(csms.stop)
        data_dir = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="linkray-bench-")))
        linkray = linkray_peer.LinkRayProcess(
            {"LINKRAY_CSMS_URL": csms.url, "LINKRAY_ADMIN_PASSWORD": PASSWORD, "LINKRAY_STATE_FLUSH_INTERVAL_S": "1"},
            data_dir,
        ).start()
        exits.callback(linkray.stop)
        chargers = await boot_site(linkray.url, exits)
        # Not tests.peers.browser.chromium(): its request routing (loopback only) turns off
        # Chromium's HTTP cache, and the cache is what answers a 304.
        playwright = await exits.enter_async_context(async_playwright())
        chromium_browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        exits.push_async_callback(chromium_browser.close)
        context = await chromium_browser.new_context(viewport={"width": 1366, "height": 900})
        browser = Browser(await context.new_page(), linkray.http_url)
        page = browser.page
        await browser.log_in("admin", PASSWORD)
        await page.wait_for_load_state("networkidle")
        cdp = await page.context.new_cdp_session(page)
        counted = {"bytes": 0, "responses": 0, "headers_only": 0}

        def on_finished(event):
            counted["bytes"] += int(event.get("encodedDataLength", 0))
            if int(event.get("encodedDataLength", 0)) < HEADERS_ONLY_BYTES:
                counted["headers_only"] += 1
            counted["responses"] += 1

        cdp.on("Network.loadingFinished", on_finished)
        await cdp.send("Network.enable")
        if hidden:
            await page.evaluate(HIDE)
        busy = chargers[CHARGERS[0]]
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        energy_wh = 124_350
        while loop.time() < end:
            energy_wh += 20
            await busy.call(
                call.MeterValues(
                    connector_id=1,
                    meter_value=[{
                        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                        "sampled_value": [{"value": str(energy_wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}],
                    }],
                )
            )
            await asyncio.sleep(min(10.0, max(0.0, end - loop.time())))
        per_hour = counted["bytes"] * 3600 / seconds
        return {**counted, "per_hour_bytes": per_hour}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--modes", default="visible,hidden")
    args = parser.parse_args()
    for mode in args.modes.split(","):
        result = asyncio.run(measure(args.root.resolve(), args.seconds, mode == "hidden"))
        print(
            f"root={args.root} mode={mode} seconds={args.seconds:.0f} responses={result['responses']} "
            f"headers_only={result['headers_only']} bytes={result['bytes']} "
            f"per_hour={result['per_hour_bytes'] / 1e6:.2f} MB",
            flush=True,
        )


if __name__ == "__main__":
    main()

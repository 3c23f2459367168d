"""Closed-loop balancing through `manage.py serve`, on both stacks, with the site simulator
(sitesim): a simulated SDM630 reads a base load plus what simulated chargers draw; the chargers
(the `ocpp` package) obey the composite of their profiles after a reaction delay; the sitesim
CSMS sits behind LinkRay.

Waits are bounded by what the issue promises (one control period + one meter poll + the
chargers' delay), plus slack for a shared CI machine; scale-out adds Celery beat's tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request

from gateway.profiles import BALANCING_PROFILE_ID
from sitesim.charger import SimulatedCharger
from sitesim.csms import SimulatedCsms
from sitesim.profiles import CHARGE_POINT_MAX, TX_DEFAULT, schedule_profile
from sitesim.site import Site
from tests.peers.linkray import ROOT
from tests.peers.waiting import wait_for

TOKEN = "balancing-e2e-token"
CONTROL_PERIOD_S = 1.0
METER_POLL_S = 0.5
REACTION_DELAY_S = 0.3
METER_VALUE_INTERVAL_S = 0.3
SLACK_S = 3.0
# Far more than a test charges: the car never tapers, it takes whatever it is offered.
ENERGY_WANTED_WH = 1_000_000.0
ENV = {
    "LINKRAY_API_TOKEN": TOKEN,
    "LINKRAY_METER_CONFIG_RELOAD_S": "0.5",
    "LINKRAY_BALANCING_INCREASE_INTERVAL_S": "0.5",
    "LINKRAY_BALANCING_CALL_TIMEOUT_S": "5",
    # The start-up transient (cars drawing unlimited before their first profile) pauses some; a
    # short resume wait keeps the test quick.
    "LINKRAY_BALANCING_RESUME_AFTER_S": "2",
}


def api(linkray, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{linkray.http_url}/api{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
        return json.loads(raw) if raw else {}


class Celery:
    """Scale-out's worker with embedded beat (meter polling and the control cycle)."""

    def __init__(self, linkray):
        self.log_path = linkray.data_dir / "celery.log"
        env = {**os.environ, **linkray.env, "LINKRAY_DATA_DIR": str(linkray.data_dir)}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "linkray_site", "worker", "-B", "--pool=solo", "-l", "info",
                 "-s", str(linkray.data_dir / "beat-schedule")],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def reaction_s(stack) -> float:
    beat_s = 1.0 if stack.kind == "scaleout" else 0.0
    return CONTROL_PERIOD_S + METER_POLL_S + REACTION_DELAY_S + beat_s + SLACK_S


def simulated_charger(charge_box_id: str, kind: str = "ac3", **kwargs) -> SimulatedCharger:
    return SimulatedCharger(
        charge_box_id, kind=kind, reaction_delay_s=REACTION_DELAY_S, meter_value_interval_s=METER_VALUE_INTERVAL_S, **kwargs
    )


def linkray_limit(charger: SimulatedCharger) -> float | None:
    profile = charger.profiles.find(BALANCING_PROFILE_ID)
    return None if profile is None else profile.periods[0].limit


def linkray_unit(charger: SimulatedCharger) -> str | None:
    profile = charger.profiles.find(BALANCING_PROFILE_ID)
    return None if profile is None else profile.rate_unit


@contextlib.asynccontextmanager
async def closed_loop(stack, site: Site, balancing: dict[str, dict], *, grid_limit_a: float):
    """The site's CSMS and meter, LinkRay (and Celery on scale-out) configured through its API
    with the meter and every charger's balancing, then the chargers connected through LinkRay
    to the CSMS. Everything is stopped on the way out."""
    celery = None
    try:
        await site.start_peers()
        linkray = stack.start_linkray(env=ENV, csms=site.csms)
        celery = Celery(linkray) if stack.kind == "scaleout" else None
        await asyncio.to_thread(
            api, linkray, "POST", "/meters",
            {"name": "grid", "model": "sdm630", "transport": "tcp", "host": "127.0.0.1", "port": site.meter.port,
             "unit_id": 1, "role": "grid", "poll_interval_s": METER_POLL_S, "stale_after_s": 2},
        )
        await asyncio.to_thread(api, linkray, "PUT", "/site", {"grid_limit_a": grid_limit_a, "control_period_s": CONTROL_PERIOD_S})
        for charge_box_id, settings in balancing.items():
            await asyncio.to_thread(api, linkray, "PUT", f"/chargers/{charge_box_id}/balancing", {"enabled": True, **settings})
        site.linkray_url = linkray.url
        await site.connect_chargers(timeout_s=20)
        await wait_for(
            lambda: all(charger.charge_box_id in site.csms.connections for charger in site.chargers),
            timeout=20, what="every charger's upstream leg to the CSMS",
        )
        yield linkray
    finally:
        await site.stop()
        if celery:
            celery.stop()


async def test_the_site_stays_under_its_fuse_shares_fairly_and_ignores_a_csms_outage(stack):
    a = simulated_charger("CP-A", max_current_a=32)
    b = simulated_charger("CP-B", max_current_a=32)
    site = Site(None, [a, b], base_load_a=(10.0, 10.0, 10.0), csms=SimulatedCsms())
    balancing = {"CP-A": {"kind": "ac3", "max_current_a": 32}, "CP-B": {"kind": "ac3", "max_current_a": 32}}
    async with closed_loop(stack, site, balancing, grid_limit_a=32) as linkray:
        for charger in (a, b):
            await charger.plug_in(ENERGY_WANTED_WH, timeout_s=20)
        # Settled: both at an equal share of what the building leaves, the grid under its fuse.
        await wait_for(
            lambda: linkray_limit(a) is not None and linkray_limit(b) is not None and abs(linkray_limit(a) - linkray_limit(b)) <= 1
            and max(site.grid_current_a().values()) <= 32.0 and min(site.charging_current_a().values()) >= 0.9 * (32 - 10),
            timeout=30, what="fair shares using >= 90 % of the free capacity, grid under the fuse",
        )
        assert {"key": ["ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit"]} in a.calls_received("GetConfiguration")
        profile = a.profiles.find(BALANCING_PROFILE_ID)
        assert profile.purpose == CHARGE_POINT_MAX and profile.stack_level == 8
        # LinkRay's own CALLs never reached the CSMS (nor their answers).
        assert not any(str(BALANCING_PROFILE_ID) in raw for _, raw in site.csms.log.get("CP-A", []))
        asked = {m[1] for m in site.csms.messages("CP-A", "out") if m[0] == 2}
        assert {m[1] for m in site.csms.messages("CP-A", "in") if m[0] in (3, 4)} <= asked

        # The back office goes away; the building's load steps up: balancing carries on.
        await site.csms.go_offline()
        site.set_base_load_a((18.0, 18.0, 18.0))
        await wait_for(lambda: max(site.grid_current_a().values()) <= 32.0, timeout=reaction_s(stack), what="grid back under the fuse")
        await wait_for(
            lambda: min(site.charging_current_a().values()) >= 0.9 * (32 - 18) and max(site.grid_current_a().values()) <= 32.0,
            timeout=30, what="shares of the smaller free capacity",
        )
        status = await asyncio.to_thread(api, linkray, "GET", "/site")
        assert status["limit_in_force_a"] == 32 and status["failsafe"] is False and status["meter_health"] == "ok"
        detail = await asyncio.to_thread(api, linkray, "GET", "/chargers/CP-A")
        assert detail["balancing"]["allocation"]["reason"] in ("fair share", "capped by its maximum")


async def test_a_mixed_fleet_keeps_l1_under_the_fuse_obeys_the_csms_and_falls_back_when_the_meter_is_lost(stack):
    one = simulated_charger("CP-1P", kind="ac1", phases=("L1",), max_current_a=32)
    three = simulated_charger("CP-3P", max_current_a=32)
    dc = simulated_charger("CP-DC", kind="dc", max_power_w=22080)
    site = Site(None, [one, three, dc], base_load_a=(6.0, 2.0, 2.0), csms=SimulatedCsms())
    balancing = {
        "CP-1P": {"kind": "ac1", "phases": ["L1"], "max_current_a": 32},
        "CP-3P": {"kind": "ac3", "max_current_a": 32},
        "CP-DC": {"kind": "dc", "max_power_w": 22080, "max_current_a": None},
    }
    async with closed_loop(stack, site, balancing, grid_limit_a=32) as linkray:
        # The CSMS limits CP-3P to 8 A with its own TxDefaultProfile; LinkRay must not lift it.
        tx_default = schedule_profile(1, 8.0, purpose=TX_DEFAULT, stack_level=0, kind="Relative")
        assert await site.csms.set_charging_profile("CP-3P", 0, tx_default) == "Accepted"
        for charger in site.chargers:
            await charger.plug_in(ENERGY_WANTED_WH, timeout_s=20)
        await wait_for(
            lambda: linkray_limit(three) == 8 and linkray_limit(one) not in (None, 6) and max(site.grid_current_a().values()) <= 32.0,
            timeout=30, what="every charger limited from the grid reading, CP-3P held by the CSMS, L1 under the fuse",
        )
        assert three.draw_a <= 8.0
        assert linkray_unit(dc) == "W" and linkray_unit(one) == "A"
        assert site.grid_current_a()["L1"] <= 32.0

        # The meter goes silent: every charger to the failsafe (6 A; 4140 W for DC) within 10 s.
        await site.meter.stop()
        await wait_for(
            lambda: linkray_limit(one) == 6 and linkray_limit(three) == 6 and linkray_limit(dc) == 6 * 3 * 230,
            timeout=10, what="failsafe on every charger",
        )
        status = await asyncio.to_thread(api, linkray, "GET", "/site")
        assert status["failsafe"] is True and status["grid_current_a"] is None, status

"""The site simulator's chargers and CSMS are honest peers of LinkRay: a simulated charger
charges through `serve` to the sitesim CSMS, and obeys the CSMS's profile relayed by LinkRay."""

from __future__ import annotations

from sitesim.charger import SimulatedCharger
from sitesim.csms import SimulatedCsms
from sitesim.profiles import TX_DEFAULT, schedule_profile
from sitesim.site import Site
from tests.peers.waiting import wait_for


async def test_a_simulated_site_charges_through_linkray_and_obeys_the_csms_profile(stack):
    charger = SimulatedCharger("SIM-E2E-1", kind="ac1", phases=("L2",), max_current_a=16, reaction_delay_s=0.2)
    site = Site(None, [charger], base_load_a=(3.0, 3.0, 3.0), csms=SimulatedCsms())
    await site.start_peers()
    try:
        linkray = stack.start_linkray(csms=site.csms)
        site.linkray_url = linkray.url
        await site.connect_chargers(timeout_s=20)
        await wait_for(lambda: "SIM-E2E-1" in site.csms.connections, 20, "LinkRay's upstream leg")
        await charger.plug_in(20_000, timeout_s=20)
        await wait_for(lambda: site.csms.calls_received("SIM-E2E-1", "MeterValues"), 20, "MeterValues relayed")
        assert site.grid_current_a() == {"L1": 3.0, "L2": 19.0, "L3": 3.0}

        profile = schedule_profile(101, 8.0, purpose=TX_DEFAULT, stack_level=1)
        assert await site.csms.set_charging_profile("SIM-E2E-1", 1, profile) == "Accepted"

        await wait_for(lambda: charger.draw_a == 8.0, 10, "the charger at the CSMS's 8 A")
        assert "StartTransaction" in site.csms.actions_received("SIM-E2E-1")
    finally:
        await site.stop()

"""The operator's pages in a real browser against `manage.py serve`: they follow the gateway's
state by themselves (htmx), so an outage of the CSMS shows without a reload."""

from __future__ import annotations

from ocpp.v16 import call
from playwright.async_api import expect

from tests.peers.browser import chromium
from tests.peers.charger import ConnectedCharger
from tests.peers.waiting import wait_for


PASSWORD = "e2e-admin-password-7"
SCREENSHOT = "/tmp/linkray-dashboard.png"
# Bounded waits: the page polls every 2 s and LinkRay flushes state every 0.2 s here.
UPDATE_TIMEOUT_MS = 15_000


async def test_dashboard_shows_a_csms_outage_and_its_queue_by_itself(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray(env={"LINKRAY_ADMIN_PASSWORD": PASSWORD})
    async with ConnectedCharger(linkray.url, "CP-1") as charger, chromium(linkray.http_url) as browser:
        boot = await charger.call(call.BootNotification(charge_point_vendor="Acme", charge_point_model="Wallbox 22"))
        assert boot.status == "Accepted"
        await csms.wait_connected("CP-1")

        await browser.log_in("admin", PASSWORD)
        page = browser.page
        assert page.url == linkray.http_url + "/"
        row = page.locator('#chargers tr[data-charge-box-id="CP-1"]')
        await expect(row.locator("td.charger-leg")).to_have_text("Connected", timeout=UPDATE_TIMEOUT_MS)
        await expect(row.locator("td.csms-leg")).to_have_text("Connected", timeout=UPDATE_TIMEOUT_MS)
        await expect(row.locator("td.queued")).to_have_text("0")
        await expect(row).to_contain_text("Acme Wallbox 22", timeout=UPDATE_TIMEOUT_MS)

        await csms.stop()
        await wait_for(lambda: "csms_disconnected charge_box_id=CP-1" in linkray.log(), 15, "outage seen by LinkRay")
        await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))

        # No reload: the htmx poll brings the outage, its length and the queued message.
        await expect(row.locator("td.csms-leg")).to_contain_text("Down", timeout=UPDATE_TIMEOUT_MS)
        await expect(row.locator("td.csms-leg")).to_contain_text("down for", timeout=UPDATE_TIMEOUT_MS)
        await expect(row.locator("td.queued")).to_have_text("1 queued", timeout=UPDATE_TIMEOUT_MS)
        await expect(row).to_contain_text("Charging", timeout=UPDATE_TIMEOUT_MS)
        await expect(page.locator("#summary-csms-down .value")).to_have_text("1")
        await expect(page.locator("#summary-queued .value")).to_have_text("1")
        await page.screenshot(path=SCREENSHOT, full_page=True)

        await row.get_by_role("link", name="CP-1").click()
        await page.wait_for_url(linkray.http_url + "/chargers/CP-1/")
        queue = page.locator("table.queue")
        await expect(queue).to_contain_text("StatusNotification")
        await expect(queue).to_contain_text('"status":"Charging"')
        await expect(page.locator("#legs")).to_contain_text("1 message waiting for replay")
        await expect(page.locator("#legs")).to_contain_text("down for")
        await page.screenshot(path="/tmp/linkray-charger.png", full_page=True)
        assert browser.blocked_requests == []  # nothing from outside: no CDN

        # The session ends (cookies gone): the next poll takes the whole page to the login form,
        # and logging in again comes back here.
        await page.context.clear_cookies()
        await page.wait_for_url(linkray.http_url + "/accounts/login/?next=/chargers/CP-1/", timeout=UPDATE_TIMEOUT_MS)
        await page.get_by_label("User name").fill("admin")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(linkray.http_url + "/chargers/CP-1/")

        # LinkRay itself goes away: the page must not keep showing the old state as live.
        await expect(page.locator(".live-note")).to_contain_text("live, updated", timeout=UPDATE_TIMEOUT_MS)
        linkray.stop()
        await expect(page.locator(".live-note")).to_contain_text("not updating", timeout=UPDATE_TIMEOUT_MS)

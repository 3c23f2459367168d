"""The pages in headless Chromium against `manage.py serve` with a few real chargers: usable on a
390 px phone without sideways scrolling, and the actions on a charger follow the person's role."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from tests.peers.browser import CHROMIUM, chromium
from tests.peers.site import CHARGERS, CREATE_METER, CREATE_USERS, OFFLINE_CHARGER, PASSWORDS, boot_site
from tests.peers.waiting import wait_for

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium; .ci/run does)"
)
playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

UPDATE_TIMEOUT_MS = 15_000
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 800}
SCROLL_WIDTH = "document.scrollingElement.scrollWidth"
ADMIN_PASSWORD = "e2e-admin-password-8"
BALANCE_THE_SITE = (
    "from balancing.models import SiteSettings\n"
    "from gateway.models import Charger\n"
    "SiteSettings.objects.update_or_create(pk=1, defaults={'grid_limit_a': 63})\n"
    "Charger.objects.exclude(charge_box_id__startswith='DC-').update(balancing_enabled=True)\n"
)


async def assert_fits(page, path: str, width_px: int) -> None:
    width = await page.evaluate(SCROLL_WIDTH)
    assert width <= width_px, f"{path} is {width} px wide on a {width_px} px phone"


async def start_site(stack, exits: AsyncExitStack):
    await stack.start_csms()
    linkray = stack.start_linkray(env={"LINKRAY_METER_CONFIG_RELOAD_S": "0.2", "LINKRAY_ADMIN_PASSWORD": ADMIN_PASSWORD})
    for script in (CREATE_USERS, CREATE_METER):
        result = stack.manage("shell", "-c", script)
        assert result.returncode == 0, result.stderr
    chargers = await boot_site(linkray.url, exits)
    await wait_for(
        lambda: (stack.charger_state(CHARGERS[0]) or {}).get("transactions"), 15, "the running transaction flushed"
    )
    return linkray, chargers


async def test_every_page_fits_a_390_px_phone_without_sideways_scrolling(stack):
    async with AsyncExitStack() as exits:
        linkray, _ = await start_site(stack, exits)
        browser = await exits.enter_async_context(chromium(linkray.http_url))
        page = browser.page
        await page.set_viewport_size(PHONE)
        await browser.goto("/accounts/login/")
        assert await page.evaluate(SCROLL_WIDTH) <= PHONE["width"], "login"
        await browser.log_in("operator", PASSWORDS["operator"])
        if stack.kind == "embedded":  # scale-out polls meters in Celery, which this stack does not run
            await wait_for(lambda: "meter_unavailable" in linkray.log(), 15, "the meter's error")
        # The dashboard's site panel with its table of balanced chargers (held at the failsafe:
        # the grid meter does not answer).
        result = stack.manage("shell", "-c", BALANCE_THE_SITE)
        assert result.returncode == 0, result.stderr
        await browser.goto("/")
        await expect(page.locator("#site-allocations")).to_contain_text(CHARGERS[0], timeout=UPDATE_TIMEOUT_MS)
        await assert_fits(page, "/ with the site panel", PHONE["width"])
        why = await page.locator("#site-allocations tbody tr").first.locator("td").last.bounding_box()
        assert why is not None and why["x"] + why["width"] <= PHONE["width"]
        for path in (
            "/",
            f"/chargers/{CHARGERS[0]}/",
            f"/chargers/{CHARGERS[2]}/",
            f"/chargers/{OFFLINE_CHARGER}/",
            f"/chargers/{CHARGERS[0]}/queue/",
            "/sessions/",
            "/meters/",
            "/meters/1/",
            "/audit/",
            "/accounts/password/",
            "/balancing/site/",
        ):
            await browser.goto(path)
            await page.wait_for_load_state("networkidle")
            await assert_fits(page, path, PHONE["width"])
        # The header keeps every link reachable (it wraps instead of overflowing).
        for name in ("Dashboard", "Sessions", "Meters", "Audit log", "Password"):
            await expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
        # The audit log is one card per entry: its last column is on the screen, not scrolled away.
        await browser.goto("/audit/")
        after = await page.locator("#audit-entries td.after").first.bounding_box()
        assert after is not None and after["x"] + after["width"] <= PHONE["width"]

        # The administrator's own pages too (an operator gets 403 there).
        async with page.expect_navigation():
            await page.get_by_role("button", name="Log out").click()
        await browser.log_in("admin", ADMIN_PASSWORD)
        for path in ("/meters/add/", "/settings/gateway/"):
            response = await browser.goto(path)
            assert response.status == 200, path
            await page.wait_for_load_state("networkidle")
            await assert_fits(page, path, PHONE["width"])
        for name in ("Settings", "API tokens", "Admin"):
            await expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
        await browser.goto("/accounts/tokens/")
        await page.get_by_label("Name").fill("energy-management-system-in-the-basement-plant-room")
        await page.get_by_label("Role").select_option("setpoint")
        async with page.expect_navigation():
            await page.get_by_role("button", name="Create token").click()
        await expect(page.locator("#new-token")).to_be_visible()
        await assert_fits(page, "/accounts/tokens/", PHONE["width"])
        revoke = await page.locator("#tokens").get_by_role("button", name="Revoke").bounding_box()
        assert revoke is not None and revoke["x"] + revoke["width"] <= PHONE["width"]
        assert browser.blocked_requests == []


async def test_the_meters_list_with_a_long_error_fits_a_laptop_screen(stack):
    if stack.kind != "embedded":
        pytest.skip("scale-out polls meters in Celery beat, which the e2e stack does not run")
    async with AsyncExitStack() as exits:
        linkray, _ = await start_site(stack, exits)
        browser = await exits.enter_async_context(chromium(linkray.http_url))
        await browser.page.set_viewport_size(LAPTOP)
        await browser.log_in("viewer", PASSWORDS["viewer"])
        await browser.goto("/meters/")
        await expect(browser.page.locator(".error-text")).to_contain_text("cannot connect", timeout=UPDATE_TIMEOUT_MS)
        assert await browser.page.evaluate(SCROLL_WIDTH) <= LAPTOP["width"]


async def test_the_dashboard_table_fits_a_laptop_screen_with_an_offline_charger(stack):
    async with AsyncExitStack() as exits:
        linkray, _ = await start_site(stack, exits)
        browser = await exits.enter_async_context(chromium(linkray.http_url))
        page = browser.page
        await page.set_viewport_size(LAPTOP)
        await browser.log_in("viewer", PASSWORDS["viewer"])
        offline_row = page.locator(f'#chargers tr[data-charge-box-id="{OFFLINE_CHARGER}"]')
        await expect(offline_row.locator(".csms-leg")).to_contain_text("charger offline", timeout=UPDATE_TIMEOUT_MS)
        # Every column on the screen: the table does not scroll inside its box.
        overflow = await page.evaluate(
            "(() => { const box = document.querySelector('#chargers').parentElement; return box.scrollWidth - box.clientWidth; })()"
        )
        assert overflow <= 0, f"the chargers table is {overflow} px wider than a {LAPTOP['width']} px screen's page"


async def test_a_viewer_sees_no_action_on_a_charger_and_a_forged_action_is_refused(stack):
    async with AsyncExitStack() as exits:
        linkray, chargers = await start_site(stack, exits)
        browser = await exits.enter_async_context(chromium(linkray.http_url))
        page = browser.page
        await browser.log_in("viewer", PASSWORDS["viewer"])
        await browser.goto(f"/chargers/{CHARGERS[0]}/")
        await expect(page.locator("#connectors")).to_contain_text("04A1B2C3D4", timeout=UPDATE_TIMEOUT_MS)
        assert await page.locator('button[name="command"]').count() == 0
        assert await page.locator("#actions").count() == 0
        # The same POST the operator's Unlock button makes, with a valid CSRF token.
        status = await page.evaluate(
            """async (url) => {
                const token = document.cookie.split('; ').find(c => c.startsWith('csrftoken=')).split('=')[1];
                const body = new URLSearchParams({command: 'unlock:1', csrfmiddlewaretoken: token});
                const response = await fetch(url, {method: 'POST', body, headers: {'X-CSRFToken': token}});
                return response.status;
            }""",
            f"/chargers/{CHARGERS[0]}/actions/",
        )
        assert status == 403
        assert ("UnlockConnector", {"connector_id": 1}) not in chargers[CHARGERS[0]].peer.requests


async def test_an_operator_stops_a_session_and_unlocks_a_connector_from_the_phone(stack):
    async with AsyncExitStack() as exits:
        linkray, chargers = await start_site(stack, exits)
        browser = await exits.enter_async_context(chromium(linkray.http_url))
        page = browser.page
        await page.set_viewport_size(PHONE)
        await browser.log_in("operator", PASSWORDS["operator"])
        await browser.goto(f"/chargers/{CHARGERS[0]}/")
        connector = page.locator('#connectors tr[data-connector-id="1"]')
        await expect(connector.locator(".session")).to_contain_text("04A1B2C3D4", timeout=UPDATE_TIMEOUT_MS)
        await expect(connector.locator(".session-energy")).to_have_text("4.350 kWh", timeout=UPDATE_TIMEOUT_MS)

        page.once("dialog", lambda dialog: dialog.accept())
        async with page.expect_navigation():
            await connector.get_by_role("button", name="Stop").click()
        await expect(page.locator(".messages")).to_contain_text("The charger answered stop transaction")
        await expect(page.locator(".messages")).to_contain_text("Accepted")
        peer = chargers[CHARGERS[0]].peer
        assert peer.remote_stops and peer.remote_stops[0] > 0

        async with page.expect_navigation():
            await page.locator('#connectors tr[data-connector-id="2"]').get_by_role("button", name="Unlock").click()
        await expect(page.locator(".messages")).to_contain_text("unlock connector 2: Unlocked")
        assert ("UnlockConnector", {"connector_id": 2}) in peer.requests
        rows = stack.query("SELECT actor, action, target, outcome FROM audit_auditentry WHERE action LIKE 'charger.%%' ORDER BY id")
        assert rows == [
            ("operator", "charger.call.RemoteStopTransaction", CHARGERS[0], "answered Accepted"),
            ("operator", "charger.call.UnlockConnector", CHARGERS[0], "answered Unlocked"),
        ]

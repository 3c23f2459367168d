"""People and the audit log in a real browser against `manage.py serve`: the login throttle as
a person meets it, and an operator's change showing up in the audit log with before and after."""

from __future__ import annotations

import pytest
from ocpp.v16 import call

from tests.peers.browser import CHROMIUM, chromium
from tests.peers.charger import ConnectedCharger
from tests.peers.waiting import wait_for

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium; .ci/run does)"
)
playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

ADMIN_PASSWORD = "e2e-admin-password-7"
PAGE_TIMEOUT_MS = 15_000


def add_user(stack, username: str, role: str) -> str:
    """`manage.py adduser` as an installer runs it; returns the generated password."""
    result = stack.manage("adduser", username, "--role", role)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("Password (shown once): ")[1].strip()


async def test_five_wrong_passwords_are_slowed(stack):
    linkray = stack.start_linkray(env={"LINKRAY_ADMIN_PASSWORD": ADMIN_PASSWORD})
    async with chromium(linkray.http_url) as browser:
        page = browser.page
        for attempt in range(5):
            await browser.log_in("admin", f"wrong-{attempt}")
            await expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")

        # The sixth attempt, even with the right password, is held off and says for how long.
        await page.get_by_label("User name").fill("admin")
        await page.get_by_label("Password").fill(ADMIN_PASSWORD)
        async with page.expect_response(lambda response: response.request.method == "POST") as answer:
            await page.get_by_role("button", name="Log in").click()
        response = await answer.value
        assert response.status == 429
        assert int(response.headers["retry-after"]) >= 1
        await expect(page.locator("#login-throttled")).to_contain_text("Too many failed logins")
        assert page.url.startswith(linkray.http_url + "/accounts/login/")
        await wait_for(lambda: "login_throttled address=127.0.0.1" in linkray.log(), 10, "throttle logged")
        rows = stack.query("SELECT count(*) FROM audit_auditentry WHERE action=%s AND target=%s", ("login.failed", "user:admin"))
        assert rows[0][0] == 5


async def test_an_operator_toggles_balancing_and_sees_the_audit_entry(stack):
    await stack.start_csms()
    linkray = stack.start_linkray(env={"LINKRAY_ADMIN_PASSWORD": ADMIN_PASSWORD})
    password = add_user(stack, "olga", "operator")
    async with ConnectedCharger(linkray.url, "CP-1") as charger, chromium(linkray.http_url) as browser:
        boot = await charger.call(call.BootNotification(charge_point_vendor="Acme", charge_point_model="Wallbox 22"))
        assert boot.status == "Accepted"
        await browser.log_in("olga", password)
        page = browser.page
        await browser.goto("/chargers/CP-1/")
        checkbox = page.get_by_label("Load balancing")
        was_on = await checkbox.is_checked()
        await checkbox.set_checked(not was_on)
        async with page.expect_navigation():
            await page.get_by_role("button", name="Save settings").click()
        await expect(page.get_by_text("Settings of CP-1 saved.")).to_be_visible()
        # The CSMS URL needs the administrator role: shown, but not editable for an operator.
        assert await page.get_by_label("CSMS URL").is_disabled()

        await page.get_by_role("link", name="Audit log").click()
        await page.wait_for_url(linkray.http_url + "/audit/")
        row = page.locator('#audit-entries tr[data-action="charger.settings.update"]')
        await expect(row).to_have_count(1, timeout=PAGE_TIMEOUT_MS)
        await expect(row).to_contain_text("olga")
        await expect(row).to_contain_text("CP-1")
        await expect(row.locator("td.before")).to_have_text(f"balancing_enabled: {was_on}")
        await expect(row.locator("td.after")).to_have_text(f"balancing_enabled: {not was_on}")
        assert browser.blocked_requests == []

"""Headless Chromium for end-to-end tests of the pages, driven by Playwright's async API.

The machine's own Chromium (Debian package), never a downloaded browser build. Every request
the page makes is checked: anything not to loopback is aborted and recorded, so a test can
assert the pages need nothing from the internet (no CDN)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Browser:
    """One page of a fresh browser profile, plus the requests it was not allowed to make."""

    def __init__(self, page, base_url: str):
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.blocked_requests: list[str] = []

    async def goto(self, path: str):
        return await self.page.goto(self.base_url + path)

    async def log_in(self, username: str, password: str) -> None:
        """Through the login form, as an operator does; ends on the page the form leads to."""
        await self.goto("/accounts/login/")
        await self.page.get_by_label("User name").fill(username)
        await self.page.get_by_label("Password").fill(password)
        async with self.page.expect_navigation():
            await self.page.get_by_role("button", name="Log in").click()


@asynccontextmanager
async def chromium(base_url: str) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    if not CHROMIUM.exists():
        # Fail, never skip: the browser tests are part of `make test` (which installs Chromium
        # when run as root, as CI does).
        raise RuntimeError(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (or run `make test` as root)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            wrapper = Browser(page, base_url)

            async def only_loopback(route):
                url = route.request.url
                if urlsplit(url).hostname in _LOOPBACK or url.startswith(("data:", "about:")):
                    await route.continue_()
                else:
                    wrapper.blocked_requests.append(url)
                    await route.abort()

            await context.route("**/*", only_loopback)
            yield wrapper
        finally:
            await browser.close()

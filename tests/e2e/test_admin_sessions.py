"""The signed-in sessions screen in Debian's chromium: an admin signed in from two browsers sees both (the one in
use marked), signs the other out from their own account page, and that browser is sent to sign-in while this one
stays; the admin users list shows the sessions too; "Sign out everywhere" ends the last one."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from payment.config import Settings
from payment.runtime import Services
from tests.e2e.test_operations_billing import run
from tests.support import factories
from tests.support.app import ThreadServer, serve_service
from tests.support.db import own_database, settings_for

PASSWORD = "correct-horse-battery"
LINUX_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
WINDOWS_EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36 Edg/131.0.0.0"
)


@pytest.fixture(scope="module")
def settings(pg_server_url: str) -> Iterator[Settings]:
    with own_database(pg_server_url, f"e2e_admin_sessions_{os.getpid()}") as url:
        yield settings_for(url)


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[ThreadServer]:
    server = serve_service(settings).start()
    try:
        yield server
    finally:
        server.stop()


def new_admin(settings: Settings) -> str:
    async def work(services: Services) -> str:
        async with services.db.transaction() as session:
            return (await factories.create_admin(session, password=PASSWORD)).email

    return run(settings, work)


def signed_in(browser: Browser, server: ThreadServer, email: str, user_agent: str) -> tuple[BrowserContext, Page]:
    context = browser.new_context(user_agent=user_agent)
    page = context.new_page()
    page.goto(f"{server.url}/admin/login")
    page.locator("#username").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-out-form")).to_be_visible()
    return context, page


def test_sign_out_another_browser_from_the_sessions_screen(
    browser: Browser, server: ThreadServer, settings: Settings
) -> None:
    email = new_admin(settings)
    desk_context, desk = signed_in(browser, server, email, LINUX_FIREFOX)
    laptop_context, laptop = signed_in(browser, server, email, WINDOWS_EDGE)
    try:
        desk.locator("#own-sessions").click()
        rows = desk.locator("#sessions tbody tr")
        expect(rows).to_have_count(2)
        expect(desk.locator("#sessions tr[data-this-session]")).to_contain_text("Firefox on Linux")
        expect(desk.locator("#sessions tr[data-this-session]")).to_contain_text("this session")
        other = desk.locator("#sessions tbody tr:not([data-this-session])")
        expect(other).to_contain_text("Edge on Windows")
        expect(other).to_contain_text("127.0.0.1")
        other.get_by_role("button", name="Sign out this session").click()
        expect(desk.get_by_text("That session (Edge on Windows) is signed out.")).to_be_visible()
        expect(rows).to_have_count(1)

        laptop.goto(f"{server.url}/admin/app/list")
        expect(laptop.locator("#username")).to_be_visible()  # sent to sign-in

        desk.goto(f"{server.url}/admin/admin-user/list")
        mine = desk.locator(f'[data-sessions-of="{email}"] li')
        expect(mine).to_have_count(1)
        expect(mine).to_contain_text("this session")

        desk.locator("#own-sessions").click()
        desk.locator("#sign-out-everywhere").click()
        expect(desk.locator("#username")).to_be_visible()
    finally:
        desk_context.close()
        laptop_context.close()

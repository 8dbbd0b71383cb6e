"""The rate-limited sign-in page in a real browser: it says why and keeps the email typed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.support import factories
from tests.support.app import ThreadServer, running_services, serve_service
from tests.support.db import in_thread, own_database, settings_for


async def _admin(url: str) -> str:
    async with running_services(settings_for(url)) as services, services.db.transaction() as session:
        return (await factories.create_admin(session, password="right-password-1")).email


@pytest.fixture(scope="module")
def limited(pg_server_url: str) -> Iterator[tuple[ThreadServer, str]]:
    with own_database(pg_server_url, f"e2e_sign_in_limit_{os.getpid()}") as url:
        email = in_thread(asyncio.run, _admin(url))
        server = serve_service(settings_for(url, login_rate_limit=2)).start()
        try:
            yield server, email
        finally:
            server.stop()


def test_the_rate_limited_sign_in_page_keeps_the_email(limited: tuple[ThreadServer, str], page: Page) -> None:
    server, email = limited
    page.goto(f"{server.url}/admin/login")
    for _ in range(3):
        page.locator("#username").fill(email)
        page.locator("#password").fill("wrong-password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#username")).to_be_visible()
    expect(page.locator("body")).to_contain_text("Too many sign-in attempts")
    expect(page.locator("#username")).to_have_value(email)
    os.makedirs("/tmp/shots-21", exist_ok=True)
    page.screenshot(path="/tmp/shots-21/sign-in-rate-limited.png", full_page=True)

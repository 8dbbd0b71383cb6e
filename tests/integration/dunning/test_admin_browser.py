"""The dunning panel in a real browser: an admin sees the open case and its notice, extends the grace period
through the confirm step, and reads the queued email rendered in the Outbox."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.integration.dunning import world
from tests.support import factories
from tests.support.app import ThreadServer, running_services, serve_service
from tests.support.db import in_thread, own_database, settings_for

PASSWORD = "dunning-admin-pw"


async def _seed(url: str) -> tuple[str, int]:
    async with running_services(settings_for(url)) as services:
        _app, _key, _plan, customer, _sub, invoice = await world.renewal(
            services, email="mali@example.com", locale="th"
        )
        await world.fail(services, invoice.id, 1)
        await world.fail(services, invoice.id, 2)
        async with services.db.transaction() as session:
            admin = await factories.create_admin(session, password=PASSWORD)
        return admin.email, customer.id


@pytest.fixture(scope="module")
def seeded(pg_server_url: str) -> Iterator[tuple[str, str, int]]:
    """A migrated database of its own with a failed renewal and an admin: (url, admin email, customer id)."""
    with own_database(pg_server_url, f"e2e_dunning_{os.getpid()}") as url:
        email, customer_id = in_thread(asyncio.run, _seed(url))
        yield url, email, customer_id


@pytest.fixture(scope="module")
def server(seeded: tuple[str, str, int]) -> Iterator[ThreadServer]:
    server = serve_service(settings_for(seeded[0]))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_an_admin_extends_grace_and_reads_the_email_in_the_outbox(
    server: ThreadServer, seeded: tuple[str, str, int], page: Page, tmp_path: Path
) -> None:
    _url, email, customer_id = seeded
    page.goto(f"{server.url}/admin/login")
    page.locator("#username").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/admin/")

    page.goto(f"{server.url}/admin/customer/details/{customer_id}")
    panel = page.locator("#customer-dunning")
    expect(panel).to_be_visible()
    expect(panel.locator(".case-attempts")).to_have_text("2")
    expect(panel.locator(".notice-status")).to_have_text("pending")
    before = panel.locator(".case-grace-end").inner_text()
    page.screenshot(path=str(tmp_path / "customer-dunning.png"), full_page=True)

    panel.locator('input[name="days"]').fill("5")
    panel.get_by_role("button", name="Extend grace").click()
    page.locator("#operation-confirm-button").click()
    page.wait_for_url(re.compile(rf".*/admin/customer/details/{customer_id}$"))
    expect(page.get_by_text(re.compile(r"Grace period of case #\d+ extended to"))).to_be_visible()
    expect(page.locator("#customer-dunning .case-grace-end")).not_to_have_text(before)

    page.locator("#customer-dunning tr[data-notice-id] a").first.click()
    expect(page.locator("#email-subject")).to_have_text(re.compile("การชำระเงินสำหรับ Vega Pro ไม่สำเร็จ"))
    frame = page.frame_locator("#email-html")
    expect(frame.get_by_role("link", name="อัปเดตบัตรของคุณ")).to_be_visible()
    page.screenshot(path=str(tmp_path / "outbox-email.png"), full_page=True)

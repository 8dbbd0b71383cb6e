"""The admin landing page in a real browser: sign in, see the four cards with formulas and the monthly charts."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import TypeVar

import pytest
from playwright.sync_api import Page, expect
from starlette.applications import Starlette

from tests.integration.dashboard import dataset
from tests.integration.dashboard.conftest import ADMIN_PASSWORD, dashboard_state
from tests.support import factories
from tests.support.app import ThreadServer, running_services, serve_service
from tests.support.db import in_thread, own_database, settings_for

T = TypeVar("T")


async def _seed(url: str) -> str:
    async with running_services(settings_for(url)) as services, services.db.transaction() as session:
        await dataset.build(session)
        admin = await factories.create_admin(session, password=ADMIN_PASSWORD)
        return admin.email


@pytest.fixture(scope="module")
def seeded_database(pg_server_url: str) -> Iterator[tuple[str, str]]:
    """A migrated database of its own with the hand-computed data set and an admin: (url, admin email)."""
    name = f"e2e_dashboard_{os.getpid()}"
    with own_database(pg_server_url, name) as url:
        yield url, in_thread(asyncio.run, _seed(url))


@pytest.fixture(scope="module")
def server(seeded_database: tuple[str, str]) -> Iterator[ThreadServer]:
    server = serve_service(settings_for(seeded_database[0]))
    app = server.server.config.app
    assert isinstance(app, Starlette)
    dashboard_state(app).now = dataset.NOW
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_admin_signs_in_and_sees_cards_and_charts(
    server: ThreadServer, seeded_database: tuple[str, str], page: Page
) -> None:
    page.goto(f"{server.url}/admin/")
    page.wait_for_url("**/admin/login")
    page.locator("#username").fill(seeded_database[1])
    page.locator("#password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/admin/")

    mrr = page.locator('[data-card="mrr"]')
    expect(mrr).to_contain_text("THB 1,146.18")
    expect(mrr).to_contain_text("USD 69.82")
    expect(mrr.locator("[data-help]")).to_have_text("What the paying subscriptions bring in each month, per currency.")
    expect(mrr.locator("[data-formula]")).to_be_hidden()  # the exact formula waits behind its toggle
    mrr.get_by_text("How is this computed?").click()
    expect(mrr.locator("[data-formula]")).to_contain_text("yearly ÷ 12")
    expect(mrr).to_contain_text("4 THB subscriptions, 5 USD subscriptions")
    expect(page.locator('[data-card="active"]')).to_contain_text("11")
    expect(page.locator('[data-card="churn"]')).to_contain_text("18.18%")
    expect(page.locator('[data-card="revenue"]')).to_contain_text("THB 3,189.10")
    for card in page.locator("[data-card]").all():
        expect(card.locator("[data-help]")).to_be_visible()
        if card.get_attribute("data-card") != "mrr":  # the MRR card's toggle is open already
            card.get_by_text("How is this computed?").click()
        expect(card.locator("[data-formula]")).to_be_visible()
    os.makedirs("/tmp/shots-21", exist_ok=True)
    page.screenshot(path="/tmp/shots-21/dashboard.png", full_page=True)

    charts = page.get_by_role("img")
    expect(page.locator("svg.dashboard-chart")).to_have_count(4)
    expect(charts.filter(has_text="MRR per month, THB")).to_be_visible()
    expect(charts.filter(has_text="Revenue per month, USD")).to_be_visible()
    box = page.locator('svg.dashboard-chart[data-metric="MRR"][data-currency="thb"]').bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    # each chart names its months on the axis and its series in a legend
    expect(page.locator('svg[data-metric="Revenue"][data-currency="thb"] .legend')).to_contain_text("Revenue in THB")
    expect(page.locator('svg[data-metric="MRR"][data-currency="usd"]')).to_contain_text("Nov")

"""The admin landing page and its JSON twin, signed in, over the whole app (ASGI)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from payment.bootstrap import create_app
from payment.runtime import Services
from tests.integration.dashboard import dataset
from tests.integration.dashboard.conftest import dashboard_state, sign_in
from tests.support.app import asgi_client


@pytest.fixture
async def app(services: Services, known_data: dict[str, Any]) -> Starlette:
    app = create_app(services=services)
    dashboard_state(app).now = dataset.NOW
    return app


@pytest.fixture
async def admin_client(app: Starlette, known_data: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as client:
        await sign_in(client, known_data["admin_email"])
        yield client


def card_text(html: str, key: str) -> str:
    """The visible text of one card (tags stripped, whitespace collapsed)."""
    match = re.search(
        rf'<div class="card dashboard-card[^"]*" data-card="{key}".*?</div>\s*</div>\s*</div>', html, re.S
    )
    assert match, f"card {key} not on the page"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(0)).split())


async def test_landing_page_shows_each_card_with_its_formula(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.get("/admin/")

    assert response.status_code == 200
    html = response.text
    assert "THB 1,146.18" in card_text(html, "mrr") and "USD 69.82" in card_text(html, "mrr")
    assert "yearly ÷ 12" in card_text(html, "mrr")
    active = card_text(html, "active")
    assert "11 Total" in active and "8 Stripe" in active and "2 Manual" in active and "1 Granted" in active
    churn = card_text(html, "churn")
    assert "18.18%" in churn and "2 ended of 11 active" in churn and "active at 00:00 UTC 30 days ago" in churn
    revenue = card_text(html, "revenue")
    assert "THB 3,189.10" in revenue and "USD 50.00" in revenue and "refunds succeeded by refund date" in revenue
    assert "--" not in html.split('data-card="mrr"')[1].split("data-chart")[0]


async def test_landing_page_draws_both_charts_per_currency_as_inline_svg(admin_client: httpx.AsyncClient) -> None:
    html = (await admin_client.get("/admin/")).text

    svgs = re.findall(r'<svg [^>]*data-metric="([^"]+)" data-currency="([^"]+)"', html)
    assert sorted(svgs) == [("MRR", "thb"), ("MRR", "usd"), ("Revenue", "thb"), ("Revenue", "usd")]
    assert "Nov 2026: THB 1,146.18" in html  # the MRR chart's description lists every month's value
    assert "Oct 2026: THB 3,139.10" in html
    assert "<script" not in html.split('data-chart="mrr-chart"')[1].split("</section>")[0]
    assert "cdn" not in html.lower()


async def test_dashboard_json_gives_the_same_figures(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.get("/admin/dashboard.json")

    assert response.status_code == 200
    body = response.json()
    assert body["mrr"]["amounts"] == dataset.MRR
    assert body["revenue"]["amounts"] == dataset.REVENUE
    assert body["churn"]["rate_percent"] == dataset.CHURN_PERCENT
    assert body["mrr_by_month"]["values"] == dataset.MRR_BY_MONTH
    assert response.headers["cache-control"] == "no-store"


async def test_dashboard_menu_entry_shows_the_same_page(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.get("/admin/dashboard")

    assert response.status_code == 200
    assert 'data-card="mrr"' in response.text


async def test_signed_out_admin_is_sent_to_login_and_json_is_refused(app: Starlette) -> None:
    async with asgi_client(app) as client:
        page = await client.get("/admin/")
        data = await client.get("/admin/dashboard.json")

    assert page.status_code == 302 and page.headers["location"].endswith("/admin/login")
    assert data.status_code == 401 and "MRR" not in data.text and "amounts" not in data.text


def test_counts_are_singular_or_plural() -> None:
    from admin_views.dashboard import count

    assert count(1, "USD subscription") == "1 USD subscription"
    assert count(0, "USD subscription") == "0 USD subscriptions"
    assert count(1234, "THB subscription") == "1,234 THB subscriptions"

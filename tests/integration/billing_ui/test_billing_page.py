"""The hosted billing page: what a signed-in user sees about their plan, the plans on offer and their invoices."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from payment.billing.customers import get_by_external_id
from payment.models import BillingSession, Customer, utcnow
from payment.runtime import Services
from tests.integration.billing_ui.helpers import Scene, build_scene, open_billing, text_of
from tests.support import factories
from tests.support.app import ThreadServer
from tests.support.stripe import reset_sandbox


@pytest.fixture(scope="module")
async def scene(services: Services, sandbox_server: ThreadServer) -> AsyncIterator[Scene]:
    reset_sandbox(sandbox_server.url)
    yield await build_scene(services)


async def customer(services: Services, user: str) -> Customer:
    async with services.db.session() as session:
        found = await get_by_external_id(session, user)
    assert found is not None
    return found


async def test_new_user_sees_free_plan_and_the_apps_plans_with_prices(client: httpx.AsyncClient, scene: Scene) -> None:
    path, _ = await open_billing(client, scene)
    response = await client.get(path)
    assert response.status_code == 200
    html = response.text
    page = text_of(html)
    assert 'data-testid="current-plan" data-plan="free" data-status="free"' in html
    assert re.findall(r'data-testid="plan-([a-z0-9-]+)"', html) == ["free", "pro", "vega-team"]
    assert "THB\u00a0299.00 per month" in page
    assert "$19.99 per year" in page
    assert "Unlimited projects" in page
    assert html.count(">Subscribe</button>") == 2
    assert "Orion Max" not in page and "Retired Plan" not in page
    assert "Update card" not in page
    assert "No invoices yet." in page
    assert '<a class="back" href="https://vega.example.com/settings"' in html
    assert "Back to Vega" in page


async def test_page_is_not_cached_framed_or_pointing_at_a_cdn(client: httpx.AsyncClient, scene: Scene) -> None:
    path, _ = await open_billing(client, scene)
    response = await client.get(path)
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assets = re.findall(r'(?:href|src)="([^"]+\.(?:css|js))"', response.text)
    assert assets == ["/billing/static/billing.css", "/api/client-errors.js", "/billing/static/billing.js"]
    for asset in assets:
        served = await client.get(asset)
        assert served.status_code == 200 and len(served.content) > 200


async def test_thai_from_the_session_locale_with_a_switch_to_english(client: httpx.AsyncClient, scene: Scene) -> None:
    path, _ = await open_billing(client, scene, locale="th-TH")
    html = (await client.get(path)).text
    page = text_of(html)
    assert '<html lang="th">' in html
    assert "แพ็กเกจของคุณ" in page and "สมัครสมาชิก" in page
    assert "฿299.00 ต่อเดือน" in page
    assert "US$19.99 ต่อปี" in page
    assert "กลับไปที่ Vega" in page
    switch = re.search(r'<a href="([^"]+)" lang="en"', html)
    assert switch
    english = text_of((await client.get(switch.group(1).replace("&amp;", "&"))).text)
    assert "Your plan" in english and "THB\u00a0299.00" in english


async def test_language_from_accept_language_when_the_app_sent_none(client: httpx.AsyncClient, scene: Scene) -> None:
    path, _ = await open_billing(client, scene)
    thai = await client.get(path, headers={"Accept-Language": "fr;q=0.9, th;q=0.8, en;q=0.1"})
    assert '<html lang="th">' in thai.text
    english = await client.get(path, headers={"Accept-Language": "de, en;q=0.5"})
    assert '<html lang="en">' in english.text


async def test_active_stripe_subscription_shows_renewal_portal_and_invoices(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, user = await open_billing(client, scene)
    async with services.db.transaction() as session:
        cust = await session.get(Customer, (await customer(services, user)).id)
        assert cust is not None
        cust.stripe_customer_id = f"cus_page{cust.id}"
        sub = await factories.create_subscription(session, cust, scene.pro)
        await factories.create_invoice(session, cust, subscription=sub, amount_cents=29900)
        sub.current_period_end = utcnow().replace(year=2031, month=3, day=14, hour=12)
    html = (await client.get(path)).text
    page = text_of(html)
    assert 'data-plan="pro" data-status="active"' in html
    assert "Aquoris PRO Active" in page
    assert "Renews on March 14, 2031." in page
    assert "Update card" in page  # the portal is for the card; plans change on this page
    assert 'data-testid="plan-pro"' in html and "Current plan" in page
    assert ">Subscribe</button>" not in html
    assert "Next charge: THB\u00a0299.00 on March 14, 2031." in page
    assert 'data-testid="cancel-form"' in html
    assert re.search(r"THB\u00a0299\.00 Paid", page)


async def test_cancel_at_period_end_shows_the_end_date(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, user = await open_billing(client, scene)
    async with services.db.transaction() as session:
        cust = await session.get(Customer, (await customer(services, user)).id)
        assert cust is not None
        sub = await factories.create_subscription(session, cust, scene.pro, cancel_at_period_end=True)
        sub.current_period_end = utcnow().replace(year=2031, month=1, day=5, hour=12)
    page = text_of((await client.get(path)).text)
    assert "Cancels on January 5, 2031" in page
    assert "Your plan stays active until January 5, 2031, then ends." in page


async def test_past_due_says_what_to_do(client: httpx.AsyncClient, scene: Scene, services: Services) -> None:
    path, user = await open_billing(client, scene)
    async with services.db.transaction() as session:
        cust = await session.get(Customer, (await customer(services, user)).id)
        assert cust is not None
        cust.stripe_customer_id = f"cus_due{cust.id}"
        await factories.create_subscription(session, cust, scene.pro, status="past_due")
    html = (await client.get(path + "?lang=th")).text
    page = text_of(html)
    assert 'data-status="past_due"' in html
    assert "ค้างชำระ" in page and "โปรดกด “อัปเดตบัตร” ด้านล่าง" in page and ">อัปเดตบัตร</button>" in html
    html = (await client.get(path)).text
    english = text_of(html)
    assert "Payment past due" in english
    assert "Use Update card below to keep Aquoris PRO" in english
    # the portal is for the card and invoices only: nothing on the page promises more
    assert ">Update card</button>" in html and "Manage billing" not in english
    assert "Change your card or download past invoices in Stripe's secure portal." in english


async def test_manual_subscription_shows_active_until_without_portal(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, user = await open_billing(client, scene)
    async with services.db.transaction() as session:
        cust = await session.get(Customer, (await customer(services, user)).id)
        assert cust is not None
        sub = await factories.create_subscription(session, cust, scene.yearly_usd, source="manual")
        sub.current_period_end = utcnow().replace(year=2030, month=6, day=1, hour=12)
    page = text_of((await client.get(path)).text)
    assert "Vega Team Active" in page and "Active until June 1, 2030." in page
    assert "Update card" not in page


async def test_expired_link_is_a_friendly_page_with_the_way_back(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, user = await open_billing(client, scene)
    cust = await customer(services, user)
    async with services.db.transaction() as session:
        await session.execute(
            update(BillingSession)
            .where(BillingSession.customer_id == cust.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = await client.get(path)
    assert response.status_code == 410
    page = text_of(response.text)
    assert "This billing link has expired" in page
    assert "Go back to Vega and open Billing again." in page
    assert 'href="https://vega.example.com/settings"' in response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize("token", ["nope", "A" * 43, "x" * 500, "%00", "..%2F..%2Fetc"])
async def test_unknown_link_is_a_friendly_page(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get(f"/billing/{token}")
    assert response.status_code == 404
    assert "This billing link is not valid" in text_of(response.text)
    assert "data-back" in response.text
    assert response.headers["content-type"].startswith("text/html")


async def test_checkout_canceled_notice_keeps_the_user_on_free(client: httpx.AsyncClient, scene: Scene) -> None:
    path, _ = await open_billing(client, scene)
    page = text_of((await client.get(path + "?checkout=canceled")).text)
    assert "Checkout was canceled and nothing was charged. You are still on Aquoris Free." in page


async def test_unknown_notice_codes_show_nothing(client: httpx.AsyncClient, scene: Scene) -> None:
    path, _ = await open_billing(client, scene)
    html = (await client.get(path + "?error=%3Cscript%3E&notice=x")).text
    assert "msg-error" not in html and "<script>" not in html


async def test_dates_are_bangkok_dates_in_both_languages_and_say_so(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, user = await open_billing(client, scene)
    async with services.db.transaction() as session:
        cust = await session.get(Customer, (await customer(services, user)).id)
        assert cust is not None
        sub = await factories.create_subscription(session, cust, scene.pro)
        # 20:00 UTC on the 5th is 03:00 on the 6th in Bangkok
        sub.current_period_end = utcnow().replace(year=2031, month=1, day=5, hour=20, minute=0)
    html = (await client.get(path)).text
    english = text_of(html)
    assert "Renews on January 6, 2031." in english and "Dates are in Bangkok time (UTC+7)." in english
    switch = re.search(r'<a href="([^"]+)" lang="th"', html)
    assert switch
    thai = text_of((await client.get(switch.group(1).replace("&amp;", "&"))).text)
    assert "6 มกราคม ค.ศ. 2031" in thai and "เวลากรุงเทพฯ (UTC+7)" in thai


def test_one_currency_format_per_locale_as_stripe_checkout_shows_it() -> None:
    from billing_ui.formatting import money

    assert [money(29900, c, "en") for c in ("thb", "usd")] == ["THB\u00a0299.00", "$299.00"]
    assert [money(29900, c, "th") for c in ("thb", "usd")] == ["฿299.00", "US$299.00"]


async def test_a_trial_can_be_cancelled_here_but_not_changed(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    """Stripe's portal offers no cancel (card and invoices only): this page is where a trial is ended."""
    path, user = await open_billing(client, scene)
    async with services.db.transaction() as session:
        cust = await session.get(Customer, (await customer(services, user)).id)
        assert cust is not None
        cust.stripe_customer_id = f"cus_trial{cust.id}"
        sub = await factories.create_subscription(session, cust, scene.pro, status="trialing")
        sub.current_period_end = utcnow().replace(year=2031, month=2, day=3, hour=12)
    html = (await client.get(path)).text
    page = text_of(html)
    assert 'data-status="trialing"' in html
    assert 'data-testid="cancel-form"' in html
    assert "Your plan stays active until February 3, 2031; you are not charged again." in page
    assert 'data-testid="change-' not in html and "Plan changes open here once" in page
    assert ">Update card</button>" in html

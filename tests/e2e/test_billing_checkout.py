"""The admin guide's "Test the Flow" in a real browser against the Stripe sandbox, webhooks and a worker included.

A client app opens a billing session over HTTP, the user sees the plans, subscribes to `pro` on the sandbox's
hosted Checkout page with 4242..., comes back, and sees the plan active once the webhook has been applied by a
`payment worker` process; the entitlement endpoint then answers `pro`. A declined card leaves the user on free.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from payment.config import Settings
from tests.support import factories
from tests.support.app import ThreadServer, run_sync, running_services, serve_service
from tests.support.db import own_database, settings_for
from tests.support.stripe import AUTH as SANDBOX_AUTH
from tests.support.stripe import register_webhook, reset_sandbox, stripe_price

ROOT = Path(__file__).resolve().parents[2]
GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"


@dataclass(frozen=True)
class Deployment:
    server: ThreadServer
    settings: Settings
    api_key: str
    worker: subprocess.Popen[bytes]


async def _seed(settings: Settings) -> str:
    async with running_services(settings) as services:
        price = await stripe_price(services.stripe, name="Aquoris PRO", amount=29900)
        async with services.db.transaction() as session:
            _, key = await factories.create_app(
                session, slug="vega", name="Vega", return_url="https://vega.example.com/settings"
            )
            await factories.create_plan(
                session, slug="free", name="Aquoris Free", price_cents=0, features=["Core features"]
            )
            await factories.create_plan(
                session,
                slug="pro",
                name="Aquoris PRO",
                price_cents=29900,
                stripe_price_id=price,
                sort_order=10,
                features=["Everything in Free", "Unlimited projects"],
            )
        return key


@pytest.fixture(scope="module")
def database(pg_server_url: str) -> Iterator[str]:
    name = f"e2e_billing_{os.getpid()}"
    with own_database(pg_server_url, name) as url:
        yield url


@pytest.fixture(scope="module")
def deployment(database: str, sandbox_server: ThreadServer) -> Iterator[Deployment]:
    """The service on loopback, the sandbox delivering signed webhooks to it, and a `payment worker` process."""
    reset_sandbox(sandbox_server.url)
    # seed first: procrastinate binds blueprint tasks to the job app built last, which must be the server's
    key = run_sync(_seed(settings_for(database, stripe_api_base=sandbox_server.url)))
    server = serve_service(settings_for(database, stripe_api_base=sandbox_server.url))
    settings = settings_for(database, stripe_api_base=sandbox_server.url, base_url=server.url)
    server.start()
    register_webhook(sandbox_server.url, f"{server.url}/api/v1/webhooks/stripe", secret=settings.stripe_webhook_secret)
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": database,
        "STRIPE_API_BASE": sandbox_server.url,
        "STRIPE_WEBHOOK_SECRET": settings.stripe_webhook_secret,
        "LOG_LEVEL": "WARNING",
    }
    worker = subprocess.Popen([sys.executable, "-m", "payment.cli", "worker", "--concurrency", "2"], cwd=ROOT, env=env)
    try:
        yield Deployment(server, settings, key, worker)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        server.stop()


def open_session(deployment: Deployment, user: str) -> str:
    """What the client app does (the admin guide's curl): POST /api/v1/sessions with its API key."""
    response = httpx.post(
        f"{deployment.server.url}/api/v1/sessions",
        json={"externalUserId": user, "appSlug": "vega"},
        headers={"Authorization": f"Bearer {deployment.api_key}"},
    )
    assert response.status_code == 201, response.text
    url: str = response.json()["url"]
    return url


def entitlement(deployment: Deployment, user: str) -> dict[str, Any]:
    response = httpx.get(
        f"{deployment.server.url}/api/v1/customers/{user}/subscription",
        headers={"Authorization": f"Bearer {deployment.api_key}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def pay_on_checkout(page: Page, card: str, email: str) -> None:
    expect(page.get_by_role("heading", name="Subscribe to Aquoris PRO")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Card number").fill(card)
    page.get_by_label("Expiration (MM / YY)").fill("12 / 34")
    page.get_by_label("CVC").fill("123")
    page.get_by_label("Cardholder name").fill("Test User")
    page.get_by_role("button", name="Pay").click()


def test_user_subscribes_to_pro_with_a_test_card_and_the_app_sees_pro(deployment: Deployment, page: Page) -> None:
    url = open_session(deployment, "e2e-paying-user")
    page.goto(url)
    current = page.get_by_test_id("current-plan")
    expect(current).to_contain_text("Aquoris Free")
    expect(page.get_by_test_id("plan-free")).to_contain_text("Current plan")
    pro = page.get_by_test_id("plan-pro")
    expect(pro).to_contain_text("THB\u00a0299.00")
    expect(pro).to_contain_text("Unlimited projects")

    pro.get_by_role("button", name="Subscribe to Aquoris PRO").click()
    page.wait_for_url(f"{deployment.settings.stripe_api_base}/c/pay/**")
    pay_on_checkout(page, GOOD_CARD, "paying@example.com")

    # back on our return page: "processing" until the worker has applied checkout.session.completed
    page.wait_for_url(f"{url}?*notice=subscribed*", timeout=30_000)
    expect(page.get_by_test_id("message-ok")).to_contain_text("You are subscribed to Aquoris PRO.")
    expect(current).to_have_attribute("data-status", "active")
    expect(current).to_contain_text("Renews on")
    expect(page.get_by_role("button", name="Update card")).to_be_visible()
    # invoice.paid may be applied a moment after the subscription: the user reloads to see the receipt
    reload_until(page, '[data-testid="invoices"]')
    expect(page.get_by_test_id("invoices")).to_contain_text("THB\u00a0299.00")
    expect(page.get_by_test_id("invoices")).to_contain_text("Paid")

    body = entitlement(deployment, "e2e-paying-user")
    assert (body["plan"]["slug"], body["status"], body["source"], body["paid"]) == ("pro", "active", "stripe", True)

    # a second Subscribe is impossible from the page, and refused if forced
    expect(page.get_by_role("button", name="Subscribe to Aquoris PRO")).to_have_count(0)


def test_return_page_waits_while_the_webhook_is_pending_then_shows_the_plan(deployment: Deployment, page: Page) -> None:
    url = open_session(deployment, "e2e-waiting-user")
    page.goto(url)
    page.get_by_test_id("plan-pro").get_by_role("button", name="Subscribe to Aquoris PRO").click()
    page.wait_for_url(f"{deployment.settings.stripe_api_base}/c/pay/**")
    deployment.worker.send_signal(signal.SIGSTOP)  # Stripe's webhook arrives, but nobody applies it yet
    try:
        pay_on_checkout(page, GOOD_CARD, "waiting@example.com")
        page.wait_for_url(f"{url}/return?*")
        expect(page.get_by_role("heading", name="Processing your payment…")).to_be_visible()
        page.wait_for_timeout(2000)
        expect(page.get_by_role("heading", name="Processing your payment…")).to_be_visible()
        assert entitlement(deployment, "e2e-waiting-user")["status"] == "free"
    finally:
        deployment.worker.send_signal(signal.SIGCONT)
    # the page polls the status endpoint and moves on by itself once the worker has applied the event
    page.wait_for_url(f"{url}?*notice=subscribed*", timeout=30_000)
    expect(page.get_by_test_id("current-plan")).to_have_attribute("data-status", "active")
    assert entitlement(deployment, "e2e-waiting-user")["plan"]["slug"] == "pro"


def reload_until(page: Page, selector: str, timeout: float = 30.0) -> None:
    """Reload the billing page until `selector` matches (a webhook applied in the background)."""
    deadline = time.monotonic() + timeout
    while page.locator(selector).count() == 0 and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator(selector)).to_have_count(1)


def _subscribe_pro(deployment: Deployment, page: Page, user: str, email: str) -> str:
    url = open_session(deployment, user)
    page.goto(url)
    page.get_by_test_id("plan-pro").get_by_role("button", name="Subscribe to Aquoris PRO").click()
    page.wait_for_url(f"{deployment.settings.stripe_api_base}/c/pay/**")
    pay_on_checkout(page, GOOD_CARD, email)
    page.wait_for_url(f"{url}?*notice=subscribed*", timeout=30_000)
    return url


def _stripe(deployment: Deployment, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """The sandbox's API (or its Dashboard controls), as Stripe's Dashboard would be used beside the service."""
    response = httpx.request(
        method, f"{deployment.settings.stripe_api_base}{path}", headers=SANDBOX_AUTH, timeout=30, **kwargs
    )
    assert response.status_code < 300, response.text
    body: dict[str, Any] = response.json()
    return body


def test_update_card_opens_stripes_portal_for_the_card_and_invoices_only(deployment: Deployment, page: Page) -> None:
    url = _subscribe_pro(deployment, page, "e2e-portal-user", "portal@example.com")
    reload_until(page, '[data-testid="invoices"]')

    page.get_by_role("button", name="Update card").click()
    page.wait_for_url(f"{deployment.settings.stripe_api_base}/p/session/**")
    # what the portal offers: the card and the invoices; no cancel, no renew, no plan switch
    expect(page.get_by_text("Visa •••• 4242")).to_be_visible()
    history = page.get_by_role("region", name="Invoice history")
    expect(history.get_by_role("row")).to_have_count(2)
    expect(history.get_by_role("row").nth(1)).to_contain_text("฿299.00")
    expect(history.get_by_role("row").nth(1)).to_contain_text("paid")
    expect(page.get_by_role("button")).to_have_count(1)  # the card form's own: nothing else can be done here
    expect(page.get_by_role("button", name="Cancel at period end")).to_have_count(0)
    # the session was made on our configuration, whose features say the same
    listed = _stripe(deployment, "GET", "/v1/billing_portal/configurations", params={"limit": 100})
    [ours] = [c for c in listed["data"] if c["metadata"].get("aquoris_portal") == "card_and_invoices_v1"]
    features = {name: feature["enabled"] for name, feature in ours["features"].items()}
    assert features == {
        "payment_method_update": True,
        "invoice_history": True,
        "subscription_cancel": False,
        "subscription_update": False,
        "customer_update": False,
    }
    # a hand-made cancel is refused by the portal too, and the plan keeps renewing
    [sub] = _stripe(
        deployment, "GET", "/v1/subscriptions", params={"customer": _customer_of(deployment, "portal@example.com")}
    )["data"]
    refused = page.request.post(f"{page.url}/subscriptions/{sub['id']}/cancel", max_redirects=0)
    assert refused.status == 404

    page.get_by_label("Card number").fill("5555 5555 5555 4444")
    page.get_by_label("Expiration (MM / YY)").fill("12 / 34")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name="Update card").click()
    expect(page.get_by_role("status")).to_have_text("Your payment method has been updated.")
    expect(page.get_by_text("Mastercard •••• 4444")).to_be_visible()
    page.get_by_role("link", name="Return to").click()
    page.wait_for_url(f"{url}?*")
    expect(page.get_by_test_id("current-plan")).to_have_attribute("data-status", "active")
    body = entitlement(deployment, "e2e-portal-user")
    assert (body["plan"]["slug"], body["status"], body["cancelAtPeriodEnd"]) == ("pro", "active", False)


def _customer_of(deployment: Deployment, email: str) -> str:
    [customer] = _stripe(deployment, "GET", "/v1/customers", params={"email": email})["data"]
    return str(customer["id"])


def test_a_cancel_made_at_stripe_shows_cancels_on_date(deployment: Deployment, page: Page) -> None:
    url = _subscribe_pro(deployment, page, "e2e-canceling-user", "canceling@example.com")
    [sub] = _stripe(
        deployment, "GET", "/v1/subscriptions", params={"customer": _customer_of(deployment, "canceling@example.com")}
    )["data"]
    # the portal offers no cancel (the billing page does, with its rules): an admin cancels in Stripe's Dashboard
    _stripe(
        deployment,
        "POST",
        f"/_sandbox/subscriptions/{sub['id']}/dashboard_cancel",
        data={"at_period_end": "true", "drop_webhooks": "false"},
    )
    page.goto(url)
    reload_until(page, '[data-testid="current-plan"][data-status="canceling"]')
    expect(page.get_by_test_id("status")).to_contain_text("Cancels on")
    body = entitlement(deployment, "e2e-canceling-user")
    assert (body["plan"]["slug"], body["status"], body["cancelAtPeriodEnd"]) == ("pro", "active", True)


def test_declined_card_leaves_the_user_on_free_with_a_clear_message(deployment: Deployment, page: Page) -> None:
    url = open_session(deployment, "e2e-declined-user")
    page.goto(url)
    page.get_by_test_id("plan-pro").get_by_role("button", name="Subscribe to Aquoris PRO").click()
    page.wait_for_url(f"{deployment.settings.stripe_api_base}/c/pay/**")
    pay_on_checkout(page, DECLINED_CARD, "declined@example.com")
    expect(page.get_by_role("alert")).to_have_text("Your card was declined.")

    page.get_by_role("link", name="Back").click()
    page.wait_for_url(f"{url}?checkout=canceled")
    expect(page.get_by_role("status")).to_contain_text(
        "Checkout was canceled and nothing was charged. You are still on Aquoris Free."
    )
    expect(page.get_by_test_id("current-plan")).to_have_attribute("data-status", "free")
    body = entitlement(deployment, "e2e-declined-user")
    assert (body["plan"]["slug"], body["status"], body["paid"]) == ("free", "free", False)


def test_the_page_reads_in_thai_and_fits_a_phone(deployment: Deployment, page: Page) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(open_session(deployment, "e2e-thai-user") + "?lang=th")
    expect(page.locator("html")).to_have_attribute("lang", "th")
    expect(page.get_by_test_id("plan-pro")).to_contain_text("฿299.00")
    expect(page.get_by_role("button", name="สมัครสมาชิก Aquoris PRO")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("link", name="Back to Vega")).to_have_attribute("href", "https://vega.example.com/settings")


def test_an_unknown_link_is_a_friendly_page(deployment: Deployment, page: Page) -> None:
    response = page.goto(f"{deployment.server.url}/billing/not-a-real-token")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="This billing link is not valid")).to_be_visible()


LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" rx="12" '
    'fill="#2563eb"/><text x="32" y="42" font-size="30" text-anchor="middle" fill="#fff">V</text></svg>'
)


def test_the_apps_logo_heads_its_billing_page_and_dates_say_their_zone(deployment: Deployment, page: Page) -> None:
    async def set_logo(url: str | None) -> None:
        from sqlalchemy import text

        async with running_services(deployment.settings) as services, services.db.transaction() as session:
            await session.execute(text("UPDATE apps SET logo_url = :u WHERE slug = 'vega'"), {"u": url})

    run_sync(set_logo("https://cdn.vega.example.com/logo.svg"))
    try:
        page.route(
            "https://cdn.vega.example.com/**",
            lambda route: route.fulfill(status=200, content_type="image/svg+xml", body=LOGO_SVG),
        )
        page.goto(open_session(deployment, "e2e-logo-user"))
        logo = page.get_by_test_id("app-logo")
        expect(logo).to_have_attribute("src", "https://cdn.vega.example.com/logo.svg")
        expect(logo).to_have_attribute("alt", "Vega")
        page.wait_for_function("document.querySelector('[data-testid=app-logo]').naturalWidth > 0")
        expect(page.get_by_test_id("time-zone")).to_have_text("Dates are in Bangkok time (UTC+7).")
        os.makedirs("/tmp/shots-21", exist_ok=True)
        page.screenshot(path="/tmp/shots-21/billing-logo-en.png", full_page=True)
        page.get_by_role("link", name="ไทย").click()
        expect(page.get_by_test_id("time-zone")).to_contain_text("เวลากรุงเทพฯ (UTC+7)")
        page.screenshot(path="/tmp/shots-21/billing-logo-th.png", full_page=True)
    finally:
        run_sync(set_logo(None))


async def _seller(settings: Settings) -> None:
    from tests.integration.documents.helpers import suite_seller

    async with running_services(settings) as services:
        await suite_seller(services.db)


def test_a_stripe_payment_gets_a_tax_invoice_with_the_users_company_that_they_download(
    deployment: Deployment, page: Page, tmp_path: Path
) -> None:
    from tests.integration.documents.helpers import BUYER_TAX_ID
    from tests.support.pdf import comparable, pdf_text

    run_sync(_seller(deployment.settings))
    url = open_session(deployment, "e2e-tax-invoice-user")
    page.goto(url)
    page.get_by_test_id("plan-pro").get_by_role("button", name="Subscribe to Aquoris PRO").click()
    page.wait_for_url(f"{deployment.settings.stripe_api_base}/c/pay/**")
    pay_on_checkout(page, GOOD_CARD, "tax@example.com")
    page.wait_for_url(f"{url}?*notice=subscribed*", timeout=30_000)

    # company details after paying; saving them asks the worker to issue what is due at once
    page.get_by_label("Company name").fill("บริษัท ลูกค้าดี จำกัด")
    page.get_by_label("Address").fill("1 ถนนพระราม 4 กรุงเทพมหานคร 10500")
    page.get_by_label("Tax id (13 digits)").fill(BUYER_TAX_ID)
    page.get_by_role("button", name="Save details").click()
    expect(page.get_by_test_id("message-ok")).to_contain_text("Your tax invoices will show these details")
    reload_until(page, '[data-testid="document-link"]', timeout=60.0)
    link = page.get_by_test_id("document-link")
    expect(link).to_contain_text("Tax invoice TI")
    page.screenshot(
        path=str(Path(os.environ.get("DOCUMENT_SHOTS", "/tmp/aquoris-document-shots")) / "billing_page.png"),
        full_page=True,
    )
    with page.expect_download() as download:
        link.click()
    pdf = Path(download.value.path()).read_bytes()
    words = comparable(pdf_text(pdf))
    for required in ("ใบกำกับภาษี/ใบเสร็จรับเงิน", "บริษัท ลูกค้าดี จำกัด", BUYER_TAX_ID, "Total 299.00 THB"):
        assert comparable(required) in words

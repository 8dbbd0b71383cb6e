"""The hosted Checkout and portal pages in a real browser (Debian chromium via pytest-playwright)."""

from __future__ import annotations

import re

import pytest
import stripe
from playwright.sync_api import Page, Route, expect
from stripe.params.billing_portal import ConfigurationCreateParamsFeatures

from payment.billing.portal import CARD_AND_INVOICES
from tests.support.narrow import expanded, id_of, present

from .conftest import Sandbox


def _app_pages(page: Page) -> None:
    """Answer the service's (fake) success/cancel/return pages inside the browser."""

    def fulfill(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>App</title><h1>App page</h1>")

    page.route("http://app.test/**", fulfill)


def _open_session(sbx: Sandbox) -> tuple[str, str]:
    price = sbx.price(amount=19900, currency="thb")
    customer = sbx.client.v1.customers.create(params={"email": "browser@example.com"})
    session = sbx.client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "http://app.test/billing/success?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://app.test/billing/cancel",
        }
    )
    return session.id, present(session.url)


def _fill_card(page: Page, number: str) -> None:
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiration (MM / YY)").fill("12 / 34")
    page.get_by_label("CVC").fill("123")


def test_checkout_page_pays_and_redirects(sbx: Sandbox, page: Page) -> None:
    _app_pages(page)
    session_id, url = _open_session(sbx)
    page.goto(url)
    expect(page.get_by_role("heading", name="Subscribe to Aquoris Pro")).to_be_visible()
    expect(page.get_by_text("฿199.00").first).to_be_visible()
    expect(page.get_by_label("Email")).to_have_value("browser@example.com")
    _fill_card(page, "4242 4242 4242 4242")
    page.get_by_role("button", name=re.compile("^Pay")).click()
    page.wait_for_url(f"http://app.test/billing/success?session_id={session_id}")
    session = sbx.client.v1.checkout.sessions.retrieve(session_id, params={"expand": ["subscription"]})
    assert session.status == "complete" and session.payment_status == "paid"
    assert expanded(session.subscription).status == "active"


def test_checkout_page_declined_card_stays(sbx: Sandbox, page: Page) -> None:
    _app_pages(page)
    session_id, url = _open_session(sbx)
    page.goto(url)
    _fill_card(page, "4000 0000 0000 0002")
    page.get_by_role("button", name=re.compile("^Pay")).click()
    expect(page.get_by_role("alert")).to_have_text("Your card was declined.")
    assert page.url == url
    assert sbx.client.v1.checkout.sessions.retrieve(session_id).status == "open"
    page.get_by_role("link", name="Back").click()
    page.wait_for_url("http://app.test/billing/cancel")


def test_portal_cancel_resume_and_update_card(sbx: Sandbox, page: Page) -> None:
    _app_pages(page)
    _, sub = sbx.subscribe()
    portal = sbx.client.v1.billing_portal.sessions.create(
        params={"customer": id_of(sub.customer), "return_url": "http://app.test/account"}
    )
    page.goto(portal.url)
    expect(page.get_by_text("Visa •••• 4242")).to_be_visible()
    page.get_by_role("button", name="Cancel at period end").click()
    expect(page.get_by_role("status")).to_have_text("Your plan has been canceled.")
    assert sbx.client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is True
    page.get_by_role("button", name="Resume subscription").click()
    expect(page.get_by_role("status")).to_have_text("Your plan has been renewed.")
    assert sbx.client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is False
    _fill_card(page, "4000 0000 0000 0002")
    page.get_by_role("button", name="Update card").click()
    expect(page.get_by_text("Visa •••• 0002")).to_be_visible()
    end = sub["items"].data[0].current_period_end
    sbx.advance(end - sbx.now() + 10)
    assert sbx.client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    page.get_by_role("link", name=re.compile("Return to")).click()
    page.wait_for_url("http://app.test/account")


def test_portal_offers_only_what_its_configuration_enables(sbx: Sandbox, page: Page) -> None:
    _app_pages(page)
    _, sub = sbx.subscribe()
    invoice = sbx.client.v1.invoices.retrieve(str(sub.latest_invoice))
    conf = sbx.client.v1.billing_portal.configurations.create(params={"features": CARD_AND_INVOICES["features"]})
    portal = sbx.client.v1.billing_portal.sessions.create(
        params={"customer": id_of(sub.customer), "return_url": "http://app.test/account", "configuration": conf.id}
    )
    assert portal.configuration == conf.id
    page.goto(portal.url)
    history = page.get_by_role("region", name="Invoice history")
    expect(history.get_by_role("row").nth(1)).to_contain_text(present(invoice.number))
    expect(history.get_by_role("row").nth(1)).to_contain_text("paid")
    expect(page.get_by_role("button", name="Update card")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel at period end")).to_have_count(0)
    expect(page.get_by_role("button", name="Resume subscription")).to_have_count(0)
    # the page's forms are not the only way in: a hand-made cancel is refused as well
    refused = page.request.post(f"{portal.url}/subscriptions/{sub.id}/cancel", max_redirects=0)
    assert refused.status == 404
    assert sbx.client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is False
    _fill_card(page, "4000 0000 0000 0002")
    page.get_by_role("button", name="Update card").click()
    expect(page.get_by_text("Visa •••• 0002")).to_be_visible()


def test_portal_refuses_a_configuration_that_is_not_active(sbx: Sandbox) -> None:
    _, sub = sbx.subscribe()
    invoices_only: ConfigurationCreateParamsFeatures = {"invoice_history": {"enabled": True}}
    conf = sbx.client.v1.billing_portal.configurations.create(params={"features": invoices_only})
    sbx.client.v1.billing_portal.configurations.update(conf.id, params={"active": False})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        sbx.client.v1.billing_portal.sessions.create(params={"customer": id_of(sub.customer), "configuration": conf.id})
    assert refused.value.param == "configuration"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        sbx.client.v1.billing_portal.sessions.create(params={"customer": id_of(sub.customer), "configuration": "bpc_x"})
    assert unknown.value.code == "resource_missing"

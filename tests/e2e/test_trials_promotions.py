"""Trials and promotion codes in a real browser, with the sandbox's hosted Checkout, its clock, signed webhooks and
a `payment worker` process (which also runs the job that ends refused trials).

A promotion code typed on the Checkout page discounts what is charged; a trial converts to a paid plan when the
clock passes its end; a card-less trial ends and the user is back on free; a second trial is refused to the same
customer (the pricing page says why) and to the same card on another account (ended at once, the page says why).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from payment.promotions import service as promotions
from tests.e2e.test_billing_checkout import ROOT, Deployment, entitlement, open_session
from tests.support import factories
from tests.support.app import ThreadServer, run_sync, running_services, serve_service
from tests.support.db import own_database, settings_for
from tests.support.stripe import SANDBOX_KEY, register_webhook, stripe_price

GOOD_CARD = "4242 4242 4242 4242"
OTHER_CARD = "5555 5555 5555 4444"
# a card no other test of this module (one deployment) has used for a trial: the one-trial-per-card rule is per app
FRESH_CARD = "4000 0566 5566 5556"
DAY = 86400


async def _seed(settings: Any) -> str:
    async with running_services(settings) as services:
        price = await stripe_price(services.stripe, name="Aquoris PRO", amount=29900)
        team_price = await stripe_price(services.stripe, name="Vega Team", amount=49900)
        async with services.db.transaction() as session:
            _, key = await factories.create_app(
                session, slug="vega", name="Vega", return_url="https://vega.example.com/settings"
            )
            await factories.create_plan(session, slug="free", name="Aquoris Free", price_cents=0)
            await factories.create_plan(
                session,
                slug="pro",
                name="Aquoris PRO",
                price_cents=29900,
                stripe_price_id=price,
                sort_order=10,
                trial_days=14,
            )
            await factories.create_plan(
                session,
                slug="team",
                name="Vega Team",
                price_cents=49900,
                stripe_price_id=team_price,
                sort_order=20,
                trial_days=7,
                trial_requires_card=False,
                trial_end_behavior="cancel",
            )
        await promotions.create_coupon(
            services.db,
            services.stripe,
            promotions.CouponInput(name="Spring", percent_off=Decimal("25"), duration="forever", code="SPRING25"),
            request_key="e2e-spring",
            actor="test",
        )
        return key


@pytest.fixture(scope="module")
def database(pg_server_url: str) -> Iterator[str]:
    with own_database(pg_server_url, f"e2e_trials_{os.getpid()}") as url:
        yield url


@pytest.fixture(scope="module")
def deployment(database: str, sandbox_server: ThreadServer) -> Iterator[Deployment]:
    httpx.post(
        f"{sandbox_server.url}/_sandbox/reset", headers={"Authorization": f"Bearer {SANDBOX_KEY}"}
    ).raise_for_status()
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


def _advance(deployment: Deployment, days: float) -> None:
    httpx.post(
        f"{deployment.settings.stripe_api_base}/_sandbox/clock/advance",
        data={"seconds": str(int(days * DAY))},
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
    ).raise_for_status()


def _until(
    deployment: Deployment, user: str, done: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    """The entitlement once `done` holds for it (the worker applies webhooks in the background)."""
    deadline = time.monotonic() + timeout
    body = entitlement(deployment, user)
    while not done(body) and time.monotonic() < deadline:
        time.sleep(0.3)
        body = entitlement(deployment, user)
    assert done(body), body
    return body


def _checkout(page: Page, deployment: Deployment, url: str, plan: str, name: str) -> None:
    page.goto(url)
    page.get_by_test_id(f"plan-{plan}").get_by_role("button", name=f"Subscribe to {name}").click()
    page.wait_for_url(f"{deployment.settings.stripe_api_base}/c/pay/**")
    expect(page.get_by_role("heading", name=f"Subscribe to {name}")).to_be_visible()


def _card(page: Page, email: str, card: str | None) -> None:
    page.get_by_label("Email").fill(email)
    if card is not None:
        page.get_by_label("Card number").fill(card)
        page.get_by_label("Expiration (MM / YY)").fill("12 / 34")
        page.get_by_label("CVC").fill("123")


def test_a_promotion_code_at_checkout_discounts_the_charge(deployment: Deployment, page: Page) -> None:
    url = open_session(deployment, "e2e-promo")
    page.goto(url)
    # the code is typed on our pricing page and checked there: a bad one comes back with the reason, kept typed
    page.get_by_label("Promotion code (optional)").fill("NOPE")
    page.get_by_test_id("plan-pro").get_by_role("button", name="Subscribe to Aquoris PRO").click()
    expect(page.get_by_test_id("promo-error")).to_have_text(
        "We do not know the code NOPE. Check the spelling and try again."
    )
    expect(page.get_by_label("Promotion code (optional)")).to_have_value("NOPE")
    expect(page.get_by_test_id("plan-pro")).to_have_attribute("data-selected", "true")
    page.get_by_label("Promotion code (optional)").fill("spring25")
    page.get_by_test_id("plan-pro").get_by_role("button", name="Subscribe to Aquoris PRO").click()
    page.wait_for_url(f"{deployment.settings.stripe_api_base}/c/pay/**")
    # a customer who had no trial gets one on pro: nothing is due today, the code still applies to what follows
    expect(page.get_by_test_id("discount")).to_contain_text("SPRING25: 25% off every payment")
    expect(page.get_by_label("Promotion code")).to_have_count(0)  # Checkout offers no second code field
    _card(page, "promo@example.com", GOOD_CARD)
    page.get_by_role("button", name="Start trial").click()
    page.wait_for_url(f"{url}?*notice=subscribed*", timeout=30_000)
    body = _until(deployment, "e2e-promo", lambda b: b["status"] == "trialing")
    assert body["trialEndsAt"] is not None
    # the trial converts when the clock passes its end: the card pays 299.00 less 25% = 224.25
    _advance(deployment, 14.1)
    _until(deployment, "e2e-promo", lambda b: b["status"] == "active" and b["trialEndsAt"] is None)
    page.goto(url)
    deadline = time.monotonic() + 30
    while "224.25" not in page.get_by_test_id("invoices").inner_text() and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        page.reload()
    expect(page.get_by_test_id("invoices")).to_contain_text("THB\u00a0224.25")
    breakdown = page.get_by_test_id("invoice-breakdown").first
    expect(breakdown.get_by_test_id("invoice-subtotal")).to_have_text("SubtotalTHB\u00a0299.00")
    expect(breakdown.get_by_test_id("invoice-discount")).to_have_text("Discount−THB\u00a074.75")
    expect(breakdown.get_by_test_id("invoice-total")).to_have_text("TotalTHB\u00a0224.25")


def test_a_second_trial_is_refused_to_the_customer_and_to_the_card(deployment: Deployment, page: Page) -> None:
    url = open_session(deployment, "e2e-trial-ann")
    page.goto(url)
    expect(page.get_by_test_id("trial-pro")).to_have_text("14-day free trial")
    _checkout(page, deployment, url, "pro", "Aquoris PRO")
    _card(page, "ann@example.com", FRESH_CARD)
    page.get_by_role("button", name="Start trial").click()
    page.wait_for_url(f"{url}?*notice=subscribed*", timeout=30_000)
    _until(deployment, "e2e-trial-ann", lambda b: b["status"] == "trialing")

    # the same card on another account: Checkout grants the trial, then it is ended and charged, and the page says why
    other = open_session(deployment, "e2e-trial-bob")
    _checkout(page, deployment, other, "pro", "Aquoris PRO")
    _card(page, "bob@example.com", FRESH_CARD)
    page.get_by_role("button", name="Start trial").click()
    page.wait_for_url(f"{other}?*", timeout=30_000)
    _until(deployment, "e2e-trial-bob", lambda b: b["status"] == "active")
    page.goto(other)
    expect(page.get_by_text("this card has already had a free trial in Vega")).to_be_visible()


def test_a_trial_without_a_card_ends_and_the_user_is_back_on_free(deployment: Deployment, page: Page) -> None:
    url = open_session(deployment, "e2e-cardless")
    page.goto(url)
    expect(page.get_by_test_id("trial-team")).to_have_text("7-day free trial, no card needed")
    _checkout(page, deployment, url, "team", "Vega Team")
    _card(page, "cardless@example.com", None)
    page.get_by_role("button", name="Start trial").click()
    page.wait_for_url(f"{url}?*notice=subscribed*", timeout=30_000)
    _until(deployment, "e2e-cardless", lambda b: b["status"] == "trialing" and b["plan"]["slug"] == "team")
    _advance(deployment, 7.1)
    body = _until(deployment, "e2e-cardless", lambda b: b["status"] == "free")
    assert body["paid"] is False
    page.goto(url)
    expect(page.get_by_test_id("current-plan")).to_contain_text("Aquoris Free")
    # the same customer has had their trial in Vega: none is offered again, and the page says why
    expect(page.get_by_test_id("trial-team")).to_have_text("No free trial: you have already had one in Vega.")
    expect(page.get_by_test_id("trial-pro")).to_have_text("No free trial: you have already had one in Vega.")


def test_a_trial_is_cancelled_and_resumed_on_the_billing_page(deployment: Deployment, page: Page) -> None:
    """Stripe's portal is for the card and invoices only: the billing page is where a trial ends (and comes back)."""
    url = open_session(deployment, "e2e-trial-cancel")
    _checkout(page, deployment, url, "team", "Vega Team")
    _card(page, "trial-cancel@example.com", None)
    page.get_by_role("button", name="Start trial").click()
    page.wait_for_url(f"{url}?*notice=subscribed*", timeout=30_000)
    _until(deployment, "e2e-trial-cancel", lambda b: b["status"] == "trialing")
    page.goto(url)
    form = page.get_by_test_id("cancel-form")
    form.get_by_test_id("cancel-reason").fill("Only needed it for a week")
    form.get_by_role("button", name="Cancel at period end").click()
    expect(page.get_by_test_id("message-ok")).to_contain_text("Your plan will end at the end of this period.")
    body = _until(deployment, "e2e-trial-cancel", lambda b: b["cancelAtPeriodEnd"] is True)
    assert (body["status"], body["plan"]["slug"]) == ("trialing", "team")
    page.get_by_test_id("resume").click()
    expect(page.get_by_test_id("message-ok")).to_contain_text("Your plan renews again.")
    _until(deployment, "e2e-trial-cancel", lambda b: b["cancelAtPeriodEnd"] is False and b["status"] == "trialing")

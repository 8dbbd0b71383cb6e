"""The self-service billing page in a real browser, against the Stripe sandbox, its webhooks and a `payment worker`.

An upgrade charges the previewed amount at once and the app sees the new plan at once; a downgrade is scheduled,
shown, cancelled, scheduled again and applied at renewal when the sandbox clock passes the period end; a
cancellation with a reason is shown (and kept for admins) and resumed; a past-due plan is cancelled now, in Thai.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from payment.config import Settings
from tests.e2e.test_billing_checkout import (
    GOOD_CARD,
    ROOT,
    Deployment,
    entitlement,
    open_session,
    pay_on_checkout,
    reload_until,
)
from tests.e2e.test_operations_billing import sql
from tests.support import factories
from tests.support.app import ThreadServer, run_sync, running_services, serve_service
from tests.support.db import own_database, settings_for
from tests.support.stripe import SANDBOX_KEY, register_webhook, stripe_price

DAY = 86400


async def _seed(settings: Settings) -> str:
    async with running_services(settings) as services:
        prices = {
            slug: await stripe_price(services.stripe, name=name, amount=amount)
            for slug, name, amount in (("pro", "Aquoris PRO", 29900), ("max", "Aquoris MAX", 49900))
        }
        lite = await stripe_price(services.stripe, name="Aquoris LITE", amount=9900)
        async with services.db.transaction() as session:
            _, key = await factories.create_app(
                session, slug="vega", name="Vega", return_url="https://vega.example.com/settings"
            )
            await factories.create_plan(session, slug="free", name="Aquoris Free", price_cents=0)
            await factories.create_plan(
                session, slug="lite", name="Aquoris LITE", price_cents=9900, stripe_price_id=lite, sort_order=5
            )
            await factories.create_plan(
                session, slug="pro", name="Aquoris PRO", price_cents=29900, stripe_price_id=prices["pro"], sort_order=10
            )
            await factories.create_plan(
                session, slug="max", name="Aquoris MAX", price_cents=49900, stripe_price_id=prices["max"], sort_order=20
            )
        return key


@pytest.fixture(scope="module")
def database(pg_server_url: str) -> Iterator[str]:
    with own_database(pg_server_url, f"e2e_self_service_{os.getpid()}") as url:
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


def _sandbox(deployment: Deployment, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = httpx.request(
        method,
        f"{deployment.settings.stripe_api_base}/_sandbox/{path}",
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        timeout=30,
        **kwargs,
    )
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def _subscribe_to_pro(deployment: Deployment, page: Page, user: str) -> str:
    url = open_session(deployment, user)
    page.goto(url)
    page.get_by_test_id("plan-pro").get_by_role("button", name="Subscribe to Aquoris PRO").click()
    page.wait_for_url(f"{deployment.settings.stripe_api_base}/c/pay/**")
    pay_on_checkout(page, GOOD_CARD, f"{user}@example.com")
    page.wait_for_url(f"{url}?*notice=subscribed*", timeout=30_000)
    return url


def _stripe_subscription(deployment: Deployment, user: str) -> dict[str, Any]:
    rows = sql(
        deployment.settings,
        "SELECT s.stripe_subscription_id FROM subscriptions s JOIN customers c ON c.id = s.customer_id "
        "WHERE c.external_user_id = :user ORDER BY s.id DESC LIMIT 1",
        user=user,
    )
    response = httpx.get(
        f"{deployment.settings.stripe_api_base}/v1/subscriptions/{rows[0]['stripe_subscription_id']}",
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
    )
    body: dict[str, Any] = response.json()
    return body


def test_an_upgrade_charges_the_previewed_amount_and_the_app_sees_the_new_plan_at_once(
    deployment: Deployment, page: Page
) -> None:
    url = _subscribe_to_pro(deployment, page, "upgrader")
    _sandbox(deployment, "POST", "clock/advance", data={"seconds": str(11 * DAY + 777)})

    page.goto(url)
    page.get_by_test_id("change-max").click()
    preview = page.get_by_test_id("change-preview")
    expect(preview).to_have_attribute("data-kind", "upgrade")
    due_now = page.get_by_test_id("due-now").inner_text()
    assert due_now.startswith("THB") and due_now != "THB\u00a00.00"
    expect(page.get_by_test_id("preview-next-charge")).to_contain_text("THB\u00a0499.00")
    page.get_by_test_id("confirm-change").click()

    page.wait_for_url(f"{url}?*notice=upgraded*")
    expect(page.get_by_test_id("message-ok")).to_contain_text("Your plan is now Aquoris MAX.")
    expect(page.get_by_test_id("current-plan")).to_have_attribute("data-plan", "max")
    assert entitlement(deployment, "upgrader")["plan"]["slug"] == "max"  # at once, not after a webhook
    sub = _stripe_subscription(deployment, "upgrader")
    invoice = httpx.get(
        f"{deployment.settings.stripe_api_base}/v1/invoices/{sub['latest_invoice']}",
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
    ).json()
    shown = due_now.replace("THB\u00a0", "").replace(",", "")
    assert invoice["billing_reason"] == "subscription_update" and invoice["status"] == "paid"
    assert f"{invoice['amount_paid'] / 100:.2f}" == shown
    # the invoice reaches the page through invoice.paid, applied by the worker
    reload_until(page, f'[data-testid="invoices"] td:has-text("{due_now}")')


def test_a_downgrade_is_scheduled_shown_cancelled_scheduled_again_and_applied_at_renewal(
    deployment: Deployment, page: Page
) -> None:
    url = _subscribe_to_pro(deployment, page, "downgrader")

    page.get_by_test_id("change-lite").click()
    expect(page.get_by_test_id("change-preview")).to_have_attribute("data-kind", "downgrade")
    expect(page.get_by_test_id("due-now")).to_have_text("THB\u00a00.00")
    expect(page.get_by_test_id("preview-next-charge")).to_contain_text("THB\u00a099.00")
    page.get_by_test_id("confirm-change").click()
    page.wait_for_url(f"{url}?*notice=downgrade_scheduled*")
    expect(page.get_by_test_id("pending-change")).to_contain_text("Your plan changes to Aquoris LITE on")
    expect(page.get_by_test_id("current-plan")).to_have_attribute("data-plan", "pro")
    expect(page.get_by_test_id("next-charge")).to_contain_text("THB\u00a099.00")
    assert entitlement(deployment, "downgrader")["pendingChange"]["plan"]["slug"] == "lite"

    page.get_by_test_id("keep-plan").click()
    page.wait_for_url(f"{url}?*notice=pending_canceled*")
    expect(page.get_by_test_id("pending-change")).to_have_count(0)
    assert entitlement(deployment, "downgrader")["pendingChange"] is None

    page.get_by_test_id("change-lite").click()
    page.get_by_test_id("confirm-change").click()
    page.wait_for_url(f"{url}?*notice=downgrade_scheduled*")
    expect(page.get_by_test_id("pending-change")).to_be_visible()

    period_end = int(_stripe_subscription(deployment, "downgrader")["items"]["data"][0]["current_period_end"])
    now = int(_sandbox(deployment, "GET", "clock")["now"])
    _sandbox(deployment, "POST", "clock/advance", data={"seconds": str(period_end - now + 120)})
    reload_until(page, '[data-testid="current-plan"][data-plan="lite"]')
    expect(page.get_by_test_id("pending-change")).to_have_count(0)
    body = entitlement(deployment, "downgrader")
    assert (body["plan"]["slug"], body["pendingChange"]) == ("lite", None)


def test_cancel_with_a_reason_then_resume(deployment: Deployment, page: Page) -> None:
    url = _subscribe_to_pro(deployment, page, "leaver")

    page.get_by_test_id("cancel-reason").fill("Too expensive for now")
    page.get_by_test_id("cancel-submit").click()
    page.wait_for_url(f"{url}?*notice=cancel_scheduled*")
    expect(page.get_by_test_id("current-plan")).to_have_attribute("data-status", "canceling")
    body = entitlement(deployment, "leaver")
    assert body["cancelAtPeriodEnd"] is True and body["cancelAt"] is not None
    reasons = sql(
        deployment.settings,
        "SELECT s.cancel_reason FROM subscriptions s JOIN customers c ON c.id = s.customer_id "
        "WHERE c.external_user_id = 'leaver'",
    )
    assert reasons == [{"cancel_reason": "Too expensive for now"}]

    page.get_by_test_id("resume").click()
    page.wait_for_url(f"{url}?*notice=resumed*")
    expect(page.get_by_test_id("current-plan")).to_have_attribute("data-status", "active")
    assert entitlement(deployment, "leaver")["cancelAt"] is None


def test_the_preview_reads_in_thai(deployment: Deployment, page: Page) -> None:
    url = _subscribe_to_pro(deployment, page, "thai-changer")
    page.goto(url + "&lang=th" if "?" in url else url + "?lang=th")
    page.get_by_test_id("change-max").click()
    expect(page.get_by_test_id("change-preview")).to_contain_text("ชำระตอนนี้")
    expect(page.get_by_test_id("confirm-change")).to_have_text("ยืนยันการเปลี่ยน")


def test_a_past_due_plan_is_cancelled_now_after_a_thai_confirmation(deployment: Deployment, page: Page) -> None:
    """Last in the module: it moves the sandbox clock past a renewal. The renewal is declined; the page (in Thai)
    offers cancel-now instead of cancel-at-period-end, says on its confirmation that the unpaid invoice is not
    charged again, and ends the plan at once with the reason kept; the unpaid invoice is void at Stripe."""
    url = _subscribe_to_pro(deployment, page, "overdue")
    stripe_sub = _stripe_subscription(deployment, "overdue")
    _sandbox(deployment, "POST", f"customers/{stripe_sub['customer']}/card", data={"card": "4000000000000341"})
    period_end = int(stripe_sub["items"]["data"][0]["current_period_end"])
    now = int(_sandbox(deployment, "GET", "clock")["now"])
    _sandbox(deployment, "POST", "clock/advance", data={"seconds": str(period_end - now + 120)})
    thai = url + ("&" if "?" in url else "?") + "lang=th"
    page.goto(thai)
    reload_until(page, '[data-testid="current-plan"][data-status="past_due"]')
    expect(page.get_by_test_id("cancel-form")).to_have_count(0)
    page.get_by_test_id("cancel-now-review").click()

    expect(page.get_by_test_id("cancel-now-text")).to_contain_text("ใบแจ้งหนี้ที่ค้างชำระจะถูกยกเลิกและไม่ถูกเรียกเก็บเงินอีก")
    page.get_by_test_id("cancel-now-reason").fill("ตกงาน")
    page.get_by_test_id("cancel-now-submit").click()
    page.wait_for_url("**notice=canceled_now**")
    expect(page.get_by_test_id("message-ok")).to_contain_text("ใบแจ้งหนี้ที่ค้างชำระถูกยกเลิก")
    expect(page.get_by_test_id("current-plan")).to_have_attribute("data-status", "free")

    assert entitlement(deployment, "overdue")["paid"] is False
    rows = sql(
        deployment.settings,
        "SELECT s.status, s.cancel_reason FROM subscriptions s JOIN customers c ON c.id = s.customer_id "
        "WHERE c.external_user_id = 'overdue'",
    )
    assert rows == [{"status": "canceled", "cancel_reason": "ตกงาน"}]
    owed = _stripe_subscription(deployment, "overdue")["latest_invoice"]
    invoice = httpx.get(
        f"{deployment.settings.stripe_api_base}/v1/invoices/{owed}", headers={"Authorization": f"Bearer {SANDBOX_KEY}"}
    ).json()
    assert (invoice["billing_reason"], invoice["status"], invoice["amount_paid"]) == ("subscription_cycle", "void", 0)

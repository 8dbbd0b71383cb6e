"""Admin billing actions in Debian's chromium, from the customer page, against the Stripe sandbox: each test checks
what the page says, the rows in the database, the audit log and, for Stripe subscriptions, Stripe's own state."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select, text

from payment.bootstrap import build_services
from payment.config import Settings
from payment.jobs.worker import run_worker
from payment.models import StripeEvent
from payment.runtime import Services
from stripe_sandbox import sign
from tests.support import factories
from tests.support.app import ThreadServer, running_services, serve_service
from tests.support.db import in_thread, own_database, settings_for
from tests.support.stripe import StripeSetup, inject_fault, paid_stripe_subscription, sandbox_control

T = TypeVar("T")
PASSWORD = "correct-horse-battery"


DOUBLE_SUBMIT = """async () => {
  const form = document.querySelector('#operation-confirm form');
  const send = () => fetch(form.action, {method: 'POST', body: new URLSearchParams(new FormData(form))});
  const answers = await Promise.all([send(), send()]);
  return Promise.all(answers.map(async a => ({status: a.status, url: a.url, text: await a.text()})));
}"""


@pytest.fixture(scope="module")
def settings(pg_server_url: str, sandbox_server: ThreadServer) -> Iterator[Settings]:
    name = f"e2e_operations_{os.getpid()}"
    with own_database(pg_server_url, name) as url:
        in_thread(sandbox_control, sandbox_server.url, "POST", "reset")
        yield settings_for(url, stripe_api_base=sandbox_server.url)


def run(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    async def main() -> T:
        async with running_services(settings) as services:
            return await work(services)

    return in_thread(asyncio.run, main())


def sql(settings: Settings, query: str, **params: Any) -> list[dict[str, Any]]:
    async def work(services: Services) -> list[dict[str, Any]]:
        async with services.db.session() as session:
            return [dict(r._mapping) for r in await session.execute(text(query), params)]

    return run(settings, work)


@pytest.fixture(scope="module")
def admin_email(settings: Settings) -> str:
    async def work(services: Services) -> str:
        async with services.db.transaction() as session:
            return (await factories.create_admin(session, password=PASSWORD)).email

    return run(settings, work)


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[ThreadServer]:
    server = serve_service(settings).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def admin_page(page: Page, server: ThreadServer, admin_email: str) -> Page:
    page.goto(f"{server.url}/admin/login")
    page.locator("#username").fill(admin_email)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/admin/")
    return page


def stripe_customer(settings: Settings) -> StripeSetup:
    async def work(services: Services) -> StripeSetup:
        async with services.db.transaction() as session:
            return await paid_stripe_subscription(session, services.stripe, settings.stripe_api_base or "")

    return run(settings, work)


def act(page: Page, opener: str, fields: dict[str, str | bool] | None = None) -> None:
    """Open an action from the current page, fill its form, continue, confirm."""
    page.locator(opener).first.click()
    expect(page.locator("#operation-form")).to_be_visible()
    for name, value in (fields or {}).items():
        box = page.locator(f"#field-{name}")
        if isinstance(value, bool):
            box.set_checked(value)
        elif box.evaluate("e => e.tagName") == "SELECT":
            box.select_option(value)
        else:
            box.fill(value)
    page.locator("#operation-submit").click()
    expect(page.locator("#operation-summary")).to_be_visible()
    page.locator("#operation-confirm-button").click()
    expect(page.locator(".flash-messages")).to_be_visible()


def customer_page(page: Page, server: ThreadServer, customer_id: int) -> None:
    page.goto(f"{server.url}/admin/customer/details/{customer_id}")
    expect(page.locator("#customer-actions")).to_be_visible()


def audit_actions(settings: Settings, entity_type: str, entity_id: int) -> list[str]:
    rows = sql(
        settings,
        "SELECT action, actor FROM audit_log WHERE entity_type = :t AND entity_id = :i ORDER BY id",
        t=entity_type,
        i=str(entity_id),
    )
    assert all(r["actor"].startswith("admin:") for r in rows)
    return [r["action"] for r in rows]


def test_cancel_resume_and_extend_a_stripe_subscription(
    admin_page: Page, server: ThreadServer, settings: Settings
) -> None:
    setup = stripe_customer(settings)
    sub_id, stripe_id = setup.subscription.id, setup.subscription.stripe_subscription_id or ""
    customer_page(admin_page, server, setup.customer.id)
    act(admin_page, "#action-cancel", {"reason": "Customer asked by email"})
    expect(admin_page.locator(".flash-messages")).to_contain_text(f"Subscription #{sub_id} will cancel at period end")
    row = sql(settings, "SELECT cancel_at_period_end, current_period_end FROM subscriptions WHERE id = :i", i=sub_id)[0]
    assert row["cancel_at_period_end"] is True
    expect(admin_page.locator(f'tr[data-subscription-id="{sub_id}"]')).to_contain_text(
        f"cancels on {row['current_period_end']:%Y-%m-%d}"
    )
    assert run(settings, lambda s: s.stripe.retrieve_subscription(stripe_id))["cancel_at_period_end"] is True

    act(admin_page, "#action-resume")
    expect(admin_page.locator(".flash-messages")).to_contain_text("resumed; it renews again")
    assert run(settings, lambda s: s.stripe.retrieve_subscription(stripe_id))["cancel_at_period_end"] is False

    before = sql(settings, "SELECT current_period_end FROM subscriptions WHERE id = :i", i=sub_id)[0]
    act(admin_page, "#action-extend", {"days": "30", "reason": "Outage compensation"})
    expect(admin_page.locator(".flash-messages")).to_contain_text("extended by 30 days")
    after = sql(settings, "SELECT current_period_end FROM subscriptions WHERE id = :i", i=sub_id)[0]
    assert (after["current_period_end"] - before["current_period_end"]).days == 30
    adjustments = sql(
        settings,
        "SELECT kind, days, reason FROM subscription_adjustments WHERE subscription_id = :i ORDER BY id",
        i=sub_id,
    )
    assert [(a["kind"], a["days"]) for a in adjustments] == [("cancel", None), ("resume", None), ("extend", 30)]
    assert adjustments[2]["reason"] == "Outage compensation"
    assert audit_actions(settings, "subscription", sub_id) == [
        "subscription.cancel_at_period_end",
        "subscription.resumed",
        "subscription.extended",
    ]
    expect(admin_page.locator("#customer-audit")).to_contain_text("subscription.extended")
    # a paying subscription stays active (Stripe calls it trialing), and admins see the extension
    listed = admin_page.locator(f'tr[data-subscription-id="{sub_id}"]')
    expect(listed.locator(".status-badge")).to_have_text("Active")
    expect(listed.locator(".subscription-extended")).to_have_text("extended +30 days")
    assert sql(settings, "SELECT status FROM subscriptions WHERE id = :i", i=sub_id)[0]["status"] == "active"
    assert run(settings, lambda s: s.stripe.retrieve_subscription(stripe_id))["status"] == "trialing"
    os.makedirs("/tmp/shots-21", exist_ok=True)
    admin_page.screenshot(path="/tmp/shots-21/customer-extended-active.png", full_page=True)


def test_grant_and_record_a_thb_bank_transfer(admin_page: Page, server: ThreadServer, settings: Settings) -> None:
    async def work(services: Services) -> tuple[int, int, int, int]:
        async with services.db.transaction() as session:
            a, b = await factories.create_customer(session), await factories.create_customer(session)
            plan = await factories.create_plan(session, name="Vega Pro")
            return a.id, b.id, plan.id, 0

    granted_to, payer, plan_id, _ = run(settings, work)
    customer_page(admin_page, server, granted_to)
    act(
        admin_page,
        "#action-grant",
        {"plan_id": str(plan_id), "duration": "3", "unit": "months", "reason": "Conference partner"},
    )
    expect(admin_page.locator(".flash-messages")).to_contain_text("Granted Vega Pro as subscription")
    expect(admin_page.locator("#customer-subscriptions")).to_contain_text("grant")
    rows = sql(settings, "SELECT id, source, status FROM subscriptions WHERE customer_id = :c", c=granted_to)
    assert [(r["source"], r["status"]) for r in rows] == [("grant", "active")]
    assert sql(settings, "SELECT count(*) AS n FROM invoices WHERE customer_id = :c", c=granted_to)[0]["n"] == 0
    assert audit_actions(settings, "subscription", rows[0]["id"]) == ["subscription.granted"]

    customer_page(admin_page, server, payer)
    act(
        admin_page,
        "#action-payment",
        {
            "amount": "299.00",
            "currency": "thb",
            "payment_method": "bank_transfer",
            "reference_number": "KBANK-77-001",
            "plan_id": str(plan_id),
            "duration": "1",
            "unit": "months",
        },
    )
    expect(admin_page.locator(".flash-messages")).to_contain_text("Recorded THB 299.00 (KBANK-77-001)")
    expect(admin_page.locator("#customer-invoices")).to_contain_text("KBANK-77-001")
    invoice = sql(
        settings,
        "SELECT id, source, amount_cents, currency, payment_method, status, subscription_id "
        "FROM invoices WHERE customer_id = :c",
        c=payer,
    )[0]
    assert (
        invoice["source"],
        invoice["amount_cents"],
        invoice["currency"],
        invoice["payment_method"],
        invoice["status"],
    ) == ("manual", 29900, "thb", "bank_transfer", "paid")
    sub = sql(
        settings,
        "SELECT source, status, paid_amount_cents FROM subscriptions WHERE id = :i",
        i=invoice["subscription_id"],
    )[0]
    assert (sub["source"], sub["status"], sub["paid_amount_cents"]) == ("manual", "active", 29900)
    assert audit_actions(settings, "invoice", invoice["id"]) == ["payment.recorded_manual"]

    # the same reference number again is refused on the form, before any confirmation page, nothing written
    admin_page.locator("#action-payment").click()
    for name, value in {"amount": "299.00", "reference_number": "kbank-77-001", "duration": "1"}.items():
        admin_page.locator(f"#field-{name}").fill(value)
    admin_page.locator("#field-plan_id").select_option(str(plan_id))
    admin_page.locator("#operation-submit").click()
    expect(admin_page.locator('[data-error-for="reference_number"]')).to_contain_text("already recorded")
    expect(admin_page.locator("#operation-summary")).to_have_count(0)
    # a currency other than the plan's (THB) is refused on the form too
    admin_page.locator("#field-reference_number").fill("WIRE-USD-1")
    admin_page.locator("#field-currency").select_option("usd")
    admin_page.locator("#field-amount").fill("3000.00")
    admin_page.locator("#operation-submit").click()
    expect(admin_page.locator('[data-error-for="currency"]')).to_contain_text("Vega Pro is sold in THB")
    expect(admin_page.locator("#operation-summary")).to_have_count(0)
    os.makedirs("/tmp/shots-21", exist_ok=True)
    admin_page.screenshot(path="/tmp/shots-21/record-payment-currency-refused.png", full_page=True)
    assert sql(settings, "SELECT count(*) AS n FROM invoices WHERE customer_id = :c", c=payer)[0]["n"] == 1

    # a second grant over the live one asks to replace it on the form, before the confirmation page
    customer_page(admin_page, server, granted_to)
    admin_page.locator("#action-grant").click()
    admin_page.locator("#field-plan_id").select_option(str(plan_id))
    admin_page.locator("#field-reason").fill("Again")
    admin_page.locator("#operation-submit").click()
    expect(admin_page.locator("#operation-form")).to_contain_text("already has a live subscription")
    expect(admin_page.locator("#operation-summary")).to_have_count(0)
    expect(admin_page.locator('input[name="replace"]')).to_be_visible()
    admin_page.screenshot(path="/tmp/shots-21/grant-conflict-before-confirm.png", full_page=True)


def deliver_refund_events(settings: Settings, server: ThreadServer) -> None:
    """What Stripe does after a refund: send `charge.refunded` to our webhook; then the job body applies it."""
    events = run(settings, lambda s: s.stripe.list_events({"type": "charge.refunded", "limit": 100}))["data"]
    for event in reversed(events):
        payload = json.dumps(event).encode()
        answer = httpx.post(
            f"{server.url}/api/v1/webhooks/stripe",
            content=payload,
            headers={
                "Stripe-Signature": sign(payload, settings.stripe_webhook_secret),
                "Content-Type": "application/json",
            },
        )
        assert answer.status_code == 200, answer.text

    async def work_off() -> None:
        """A real Procrastinate worker applies the enqueued events; stop it once they are handled."""
        services = build_services(settings)
        worker = asyncio.create_task(run_worker(services, concurrency=2))
        try:
            deadline = time.monotonic() + 30
            while True:
                async with services.db.session() as session:
                    statuses = list(
                        await session.scalars(select(StripeEvent.status).where(StripeEvent.type == "charge.refunded"))
                    )
                if statuses and all(status == "handled" for status in statuses):
                    return
                assert time.monotonic() < deadline, f"events not applied: {statuses}"
                await asyncio.sleep(0.2)
        finally:
            worker.cancel()
            await asyncio.wait([worker], timeout=30)
            await services.db.dispose()

    in_thread(asyncio.run, work_off())


def test_partial_then_full_refund_of_a_stripe_invoice(
    admin_page: Page, server: ThreadServer, settings: Settings
) -> None:
    setup = stripe_customer(settings)
    invoice_id = setup.invoice.id
    customer_page(admin_page, server, setup.customer.id)
    act(admin_page, f'[data-refund-invoice="{invoice_id}"]', {"amount": "100.00", "reason": "Late delivery"})
    expect(admin_page.locator(".flash-messages")).to_contain_text("of THB 100.00 pending until Stripe confirms it")
    act(admin_page, f'[data-refund-invoice="{invoice_id}"]', {"reason": "Customer left"})  # default: the rest
    expect(admin_page.locator(".flash-messages")).to_contain_text("of THB 199.00 pending")
    # the audit history reads as sentences with links, by the admin's email; the raw JSON behind a toggle
    refund_row = admin_page.locator('#customer-audit tr[data-action="refund.issued"]').last
    expect(refund_row.locator(".audit-sentence")).to_contain_text(
        re.compile(rf"Refund #\d+ of THB 100\.00 on invoice #{invoice_id}, pending — “Late delivery”")
    )
    expect(refund_row.locator(f'.audit-sentence a[href$="/admin/invoice/details/{invoice_id}"]')).to_be_visible()
    expect(refund_row.locator(".audit-actor")).to_have_text(re.compile(r".+@.+"))
    expect(refund_row.locator(".audit-raw code")).to_be_hidden()
    refund_row.locator(".audit-raw summary").click()
    expect(refund_row.locator(".audit-raw code")).to_contain_text('"amount_cents": 10000')
    expect(admin_page.locator("#customer-refunds")).not_to_contain_text("admin:")
    os.makedirs("/tmp/shots-21", exist_ok=True)
    admin_page.screenshot(path="/tmp/shots-21/customer-audit-sentences.png", full_page=True)
    statuses = admin_page.locator("#customer-refunds .refund-status")
    expect(statuses).to_have_text(["Pending", "Pending"])
    expect(admin_page.locator(f'[data-refund-invoice="{invoice_id}"]')).to_have_count(0)  # nothing left to refund
    rows = sql(
        settings,
        "SELECT amount_cents, status, stripe_refund_id FROM refunds WHERE invoice_id = :i ORDER BY id",
        i=invoice_id,
    )
    assert [(r["amount_cents"], r["status"]) for r in rows] == [(10000, "pending"), (19900, "pending")]
    charge = run(settings, lambda s: s.stripe.retrieve_charge(setup.invoice.stripe_charge_id or ""))
    assert charge["amount_refunded"] == 29900

    deliver_refund_events(settings, server)
    customer_page(admin_page, server, setup.customer.id)
    expect(statuses).to_have_text(["Succeeded", "Succeeded"])
    expect(admin_page.locator(f'tr[data-invoice-id="{invoice_id}"]')).to_contain_text("Refunded")
    invoice = sql(settings, "SELECT status, amount_refunded_cents FROM invoices WHERE id = :i", i=invoice_id)[0]
    assert (invoice["status"], invoice["amount_refunded_cents"]) == ("refunded", 29900)
    issued = sql(
        settings,
        "SELECT count(*) AS n FROM audit_log WHERE action = 'refund.issued' AND details->>'invoice_id' = :i",
        i=str(invoice_id),
    )
    assert issued[0]["n"] == 2


def test_refund_of_a_manual_invoice_acts_once_on_a_second_click(
    admin_page: Page, server: ThreadServer, settings: Settings
) -> None:
    async def work(services: Services) -> tuple[int, int]:
        async with services.db.transaction() as session:
            customer = await factories.create_customer(session)
            invoice = await factories.create_invoice(session, customer, source="manual", amount_cents=29900)
            return customer.id, invoice.id

    customer_id, invoice_id = run(settings, work)
    customer_page(admin_page, server, customer_id)
    admin_page.locator(f'[data-refund-invoice="{invoice_id}"]').click()
    admin_page.locator("#field-amount").fill("50.00")
    admin_page.locator("#field-reason").fill("Goodwill")
    admin_page.locator("#operation-submit").click()
    expect(admin_page.locator("#operation-summary")).to_contain_text("THB 50.00")
    # two clicks on Confirm at the same moment: the same form (and one-time nonce) posted twice concurrently
    pages = admin_page.evaluate(DOUBLE_SUBMIT)
    assert all(p["status"] == 200 and p["url"].endswith(f"/admin/customer/details/{customer_id}") for p in pages)
    # Both answers share one session cookie, so which of them carries which message depends on timing; what is
    # certain is that the repeat was recognised and said so, and (below) that one refund was recorded.
    assert any("Already done" in p["text"] for p in pages)
    assert all("of THB 50.00 recorded" in p["text"] for p in pages)
    customer_page(admin_page, server, customer_id)
    expect(admin_page.locator("#customer-refunds .refund-status")).to_have_text(["Succeeded"])
    rows = sql(settings, "SELECT amount_cents, status FROM refunds WHERE invoice_id = :i", i=invoice_id)
    assert [(r["amount_cents"], r["status"]) for r in rows] == [(5000, "succeeded")]
    invoice = sql(settings, "SELECT status, amount_refunded_cents FROM invoices WHERE id = :i", i=invoice_id)[0]
    assert (invoice["status"], invoice["amount_refunded_cents"]) == ("partially_refunded", 5000)
    refund_id = sql(settings, "SELECT id FROM refunds WHERE invoice_id = :i", i=invoice_id)[0]["id"]
    assert audit_actions(settings, "refund", refund_id) == ["refund.issued"]

    # over-refund: refused on the form, nothing written
    admin_page.locator(f'[data-refund-invoice="{invoice_id}"]').click()
    admin_page.locator("#field-amount").fill("249.01")
    admin_page.locator("#field-reason").fill("Too much")
    admin_page.locator("#operation-submit").click()
    expect(admin_page.locator('[data-error-for="amount"]')).to_contain_text("cannot be more than THB 249.00")
    assert len(sql(settings, "SELECT id FROM refunds WHERE invoice_id = :i", i=invoice_id)) == 1


def test_refund_with_immediate_cancellation(admin_page: Page, server: ThreadServer, settings: Settings) -> None:
    setup = stripe_customer(settings)
    customer_page(admin_page, server, setup.customer.id)
    act(admin_page, f'[data-refund-invoice="{setup.invoice.id}"]', {"reason": "Leaving", "also_cancel": True})
    expect(admin_page.locator(".flash-messages")).to_contain_text("The subscription was canceled immediately.")
    sub = sql(settings, "SELECT status, ended_at FROM subscriptions WHERE id = :i", i=setup.subscription.id)[0]
    assert sub["status"] == "canceled" and sub["ended_at"] is not None
    stripe_sub = run(
        settings, lambda s: s.stripe.retrieve_subscription(setup.subscription.stripe_subscription_id or "")
    )
    assert stripe_sub["status"] == "canceled"
    refund = sql(settings, "SELECT id, status, cancel_outcome FROM refunds WHERE invoice_id = :i", i=setup.invoice.id)[
        0
    ]
    assert (refund["status"], refund["cancel_outcome"]) == ("pending", "succeeded")
    assert audit_actions(settings, "refund", refund["id"]) == ["refund.issued", "refund.sent", "refund.cancellation"]


def test_failed_cancellation_keeps_the_refund_and_can_be_retried(
    admin_page: Page, server: ThreadServer, settings: Settings
) -> None:
    setup = stripe_customer(settings)
    sandbox = settings.stripe_api_base or ""
    in_thread(lambda: inject_fault(sandbox, method="DELETE", path_prefix="/v1/subscriptions", status=503, times=5))
    try:
        customer_page(admin_page, server, setup.customer.id)
        act(admin_page, f'[data-refund-invoice="{setup.invoice.id}"]', {"reason": "Leaving", "also_cancel": True})
    finally:
        in_thread(sandbox_control, sandbox, "DELETE", "faults")
    flash = admin_page.locator(".flash-messages .alert-warning")
    expect(flash).to_contain_text("The refund is recorded, but cancelling the subscription failed")
    expect(flash).to_contain_text("Stripe had an internal error")
    refund = sql(
        settings,
        "SELECT id, status, cancel_outcome, cancel_error FROM refunds WHERE invoice_id = :i",
        i=setup.invoice.id,
    )[0]
    assert (refund["status"], refund["cancel_outcome"]) == ("pending", "failed")
    assert (
        sql(settings, "SELECT status FROM subscriptions WHERE id = :i", i=setup.subscription.id)[0]["status"]
        == "active"
    )

    customer_page(admin_page, server, setup.customer.id)
    admin_page.locator(f'[data-retry-refund="{refund["id"]}"]').click()
    expect(admin_page.locator(".flash-messages")).to_contain_text("The subscription was canceled immediately.")
    assert (
        sql(settings, "SELECT cancel_outcome FROM refunds WHERE id = :i", i=refund["id"])[0]["cancel_outcome"]
        == "succeeded"
    )
    assert (
        sql(settings, "SELECT status FROM subscriptions WHERE id = :i", i=setup.subscription.id)[0]["status"]
        == "canceled"
    )
    assert audit_actions(settings, "refund", refund["id"]) == [
        "refund.issued",
        "refund.sent",
        "refund.cancellation",
        "refund.cancellation_retried",
    ]


def test_the_customer_pages_audit_history_is_paged(admin_page: Page, server: ThreadServer, settings: Settings) -> None:
    from payment.audit import service as audit

    async def work(services: Services) -> int:
        async with services.db.transaction() as session:
            customer = await factories.create_customer(session)
            for n in range(25):
                await audit.record(
                    session,
                    actor="stripe",
                    action="customer.updated",
                    entity_type="customer",
                    entity_id=customer.id,
                    details={"n": n},
                )
            return customer.id

    customer_id = run(settings, work)
    customer_page(admin_page, server, customer_id)
    rows = admin_page.locator("#customer-audit tbody tr")
    expect(rows).to_have_count(20)
    expect(admin_page.locator("#customer-audit-pages")).to_contain_text("Page 1 of 2")
    expect(rows.first.locator(".audit-actor")).to_have_text("Stripe")
    admin_page.locator("#customer-audit-pages a[rel=next]").click()
    expect(rows).to_have_count(5)
    expect(admin_page.locator("#customer-audit-pages")).to_contain_text("Page 2 of 2")
    expect(rows.last.locator(".audit-raw code")).to_contain_text('"n": 0')

"""End to end with the Stripe sandbox and its test clock: Stripe's next retry is stored and shown; a new card saved
in the portal retries the failed invoice at once (a good card closes the case and a receipt follows, a declined one
keeps it open with the new decline and no second payment-failed notice), and replayed webhooks retry nothing twice."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update

from payment.billing import portal as billing_portal
from payment.dunning import card_retry, channel
from payment.models import AuditLog, Customer, Invoice, Plan
from payment.runtime import Services
from tests.integration.dunning import world as dw
from tests.integration.dunning.mailbox import SmtpServer, parts
from tests.support import factories
from tests.support.stripe import FAILING_CARD, GOOD_CARD, World

pytestmark = pytest.mark.slow

INSUFFICIENT_FUNDS_CARD = "4000000000009995"


@pytest.fixture
def world(services: Services, sandbox: str) -> World:
    return World(services, sandbox)


async def _apply_new(world: World, seen: int) -> tuple[int, list[dict[str, Any]]]:
    events = await world.events(after=seen)
    await world.apply_all(events)
    return seen + len(events), events


async def _failed_renewal(world: World, services: Services) -> tuple[str, Customer, Invoice, int]:
    """A subscriber whose renewal was declined; returns the app key, the customer, the renewal and events seen."""
    async with services.db.transaction() as session:
        app, key = await factories.create_app(session, name="Vega")
    plan = await world.plan(amount=29900)
    async with services.db.transaction() as session:
        await session.execute(update(Plan).where(Plan.id == plan.id).values(app_id=app.id, name="Vega Pro"))
    customer = await world.customer()
    checkout = await world.subscribe(customer, plan)
    await world.set_card(checkout["customer"], FAILING_CARD)
    await world.advance(31)
    seen, _ = await _apply_new(world, 0)
    async with services.db.session() as session:
        customer = await session.get_one(Customer, customer.id)
    renewal = (await world.invoices(customer))[-1]
    assert renewal.status == "payment_failed"
    return key, customer, renewal, seen


async def _update_card_in_portal(world: World, services: Services, customer: Customer, card: str) -> None:
    """What the end user does: open Stripe's portal and save a new card on its page."""
    assert customer.stripe_customer_id is not None
    portal = await billing_portal.create_session(
        services.stripe, customer=customer.stripe_customer_id, return_url="http://127.0.0.1/billing"
    )
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{portal['url']}/payment_method", data={"cardnumber": card, "exp": "12 / 34", "cvc": "123"}
        )
    assert response.status_code == 303, response.text


async def _stripe_invoice(world: World, stripe_invoice_id: str) -> dict[str, Any]:
    return await world.services.stripe.retrieve_invoice(stripe_invoice_id)


async def _audits(services: Services, action: str, customer: Customer) -> list[AuditLog]:
    async with services.db.session() as session:
        return list(
            (
                await session.scalars(
                    select(AuditLog).where(AuditLog.action == action, AuditLog.entity_id == str(customer.id))
                )
            ).all()
        )


async def test_stripes_next_retry_is_stored_shown_and_told_in_the_email(
    world: World, services: Services, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    _key, customer, renewal, _seen = await _failed_renewal(world, services)
    assert renewal.stripe_invoice_id is not None
    stripe_invoice = await _stripe_invoice(world, renewal.stripe_invoice_id)
    assert stripe_invoice["next_payment_attempt"] is not None
    expected = datetime.fromtimestamp(stripe_invoice["next_payment_attempt"], UTC)
    assert renewal.next_payment_attempt_at == expected

    await channel.deliver(services.db, services.settings)
    failed_mail = smtp_server.mailbox.to(str(customer.email))[-1]
    text, html = parts(failed_mail)
    day = f"{expected:%B} {expected.day}, {expected.year}"
    assert f"Otherwise we will try your card again on {day}." in text
    assert "try your card again" in html

    # the billing page the email's button opens says it too, in Bangkok time like its other dates
    link = re.search(r'href="([^"]+/billing/[^"]+)"', html)
    assert link is not None
    page = await client.get(link.group(1).removeprefix(services.settings.base_url))
    local = expected.astimezone(ZoneInfo("Asia/Bangkok"))
    assert page.status_code == 200
    assert f"Stripe will try your card again on {local:%B} {local.day}, {local.year}." in page.text

    # retries exhausted: Stripe schedules none, and neither do we show one
    await world.advance(20)
    await _apply_new(world, _seen)
    [invoice] = [i for i in await world.invoices(customer) if i.id == renewal.id]
    assert invoice.next_payment_attempt_at is None


async def test_a_good_new_card_in_the_portal_pays_at_once_closes_the_case_and_a_receipt_follows(
    world: World, services: Services, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    key, customer, renewal, seen = await _failed_renewal(world, services)
    await channel.deliver(services.db, services.settings)
    assert (await dw.entitlement(client, key, customer))["accessState"] == "grace"

    await _update_card_in_portal(world, services, customer, GOOD_CARD)
    seen, events = await _apply_new(world, seen)
    assert "customer.updated" in [e["type"] for e in events]
    [queued] = await _audits(services, "dunning.card_updated", customer)
    assert (queued.actor, queued.details["invoice_id"]) == ("stripe", renewal.id)

    # no clock advance: the retry is ours, made now, not Stripe's scheduled one
    assert await card_retry.retry_now(services.db, services.stripe) == 1
    case = await dw.case(services, renewal.id)
    assert case.close_reason == "paid"
    body = await dw.entitlement(client, key, customer)
    assert (body["status"], body["accessState"]) == ("active", "full")
    [retried] = await _audits(services, "dunning.card_retried", customer)
    assert (retried.actor, retried.details["answer"]) == ("system", "paid")
    await channel.deliver(services.db, services.settings)
    assert [str(m["Subject"]) for m in smtp_server.mailbox.to(str(customer.email))] == [
        "Receipt for your payment of THB\u00a0299.00",
        "Your payment for Vega Pro did not go through",
        "Receipt for your payment of THB\u00a0299.00",
    ]

    # the webhooks of the payment, and every event again: no second retry, no second notice
    seen, events = await _apply_new(world, seen)
    for event in events:
        await world.apply({**event, "id": event["id"] + "_again"})
    assert await card_retry.retry_now(services.db, services.stripe) == 0
    await channel.deliver(services.db, services.settings)
    assert len(smtp_server.mailbox.to(str(customer.email))) == 3
    assert renewal.stripe_invoice_id is not None
    assert (await _stripe_invoice(world, renewal.stripe_invoice_id))["attempt_count"] == 2


async def test_a_declined_new_card_keeps_the_case_open_with_the_new_decline_and_no_second_notice(
    world: World, services: Services, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    key, customer, renewal, seen = await _failed_renewal(world, services)
    await channel.deliver(services.db, services.settings)

    await _update_card_in_portal(world, services, customer, INSUFFICIENT_FUNDS_CARD)
    seen, _ = await _apply_new(world, seen)
    assert await card_retry.retry_now(services.db, services.stripe) == 1
    case = await dw.case(services, renewal.id)
    assert (case.is_open, case.attempts, case.last_error) == (True, 2, "Your card has insufficient funds.")
    [retried] = await _audits(services, "dunning.card_retried", customer)
    assert retried.details["answer"] == "The card was declined."
    seen, _ = await _apply_new(world, seen)  # Stripe's invoice.payment_failed of our retry changes nothing more
    assert (await dw.case(services, renewal.id)).attempts == 2
    await channel.deliver(services.db, services.settings)
    subjects = [str(m["Subject"]) for m in smtp_server.mailbox.to(str(customer.email))]
    assert subjects.count("Your payment for Vega Pro did not go through") == 1
    assert (await dw.entitlement(client, key, customer))["accessState"] == "grace"

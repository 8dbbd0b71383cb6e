"""End to end with the Stripe sandbox and its test clock: a renewal fails, the user is emailed a working link, the
entitlement is `grace` then `blocked`, the card is fixed, Stripe's retry pays, a receipt arrives and access is
`full`; replayed and reordered webhooks and a worker that died after claiming a mail send nothing twice."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from payment.billing import entitlements
from payment.dunning import cases, channel
from payment.models import App, AuditLog, Customer, Plan, utcnow
from payment.outbox import delivery
from payment.runtime import Services
from tests.integration.billing_ui.helpers import csrf_of
from tests.integration.dunning import world as dw
from tests.integration.dunning.mailbox import SmtpServer, parts
from tests.support import factories
from tests.support.stripe import FAILING_CARD, GOOD_CARD, World

pytestmark = pytest.mark.slow


async def _apply_new(world: World, seen: int) -> tuple[int, list[dict[str, Any]]]:
    events = await world.events(after=seen)
    await world.apply_all(events)
    return seen + len(events), events


def _subjects(smtp_server: SmtpServer, address: str) -> list[str]:
    return [str(m["Subject"]) for m in smtp_server.mailbox.to(address)]


async def test_a_failed_renewal_from_email_to_recovery(
    world: World, services: Services, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    async with services.db.transaction() as session:
        app, key = await factories.create_app(session, name="Vega")
        app.grace_days = 3
    plan = await world.plan(amount=29900)
    async with services.db.transaction() as session:
        await session.execute(update(Plan).where(Plan.id == plan.id).values(app_id=app.id, name="Vega Pro"))
    customer = await world.customer()
    address = str(customer.email)
    all_events: list[dict[str, Any]] = []

    checkout = await world.subscribe(customer, plan)
    seen, events = await _apply_new(world, 0)
    all_events += events
    await channel.deliver(services.db, services.settings)
    assert _subjects(smtp_server, address) == ["Receipt for your payment of THB\u00a0299.00"]

    await world.set_card(checkout["customer"], FAILING_CARD)
    await world.advance(31)  # the renewal fails
    seen, events = await _apply_new(world, seen)
    all_events += events
    renewal = (await world.invoices(customer))[-1]
    case = await dw.case(services, renewal.id)
    body = await dw.entitlement(client, key, customer)
    assert (body["status"], body["accessState"]) == ("past_due", "grace")
    assert body["graceEndsAt"] == case.grace_ends_at.isoformat().replace("+00:00", "Z")
    assert timedelta(days=3) - timedelta(minutes=5) < case.grace_ends_at - utcnow() <= timedelta(days=3)

    await channel.deliver(services.db, services.settings)
    failed_mail = smtp_server.mailbox.to(address)[-1]
    assert failed_mail["Subject"] == "Your payment for Vega Pro did not go through"
    link = re.search(r'href="([^"]+/billing/[^"]+)"', parts(failed_mail)[1])
    assert link is not None
    billing_page = await client.get(link.group(1).removeprefix(services.settings.base_url))
    assert billing_page.status_code == 200 and ">Update card</button>" in billing_page.text

    # the grace period, measured on this service's clock: grace until its end, blocked from then on
    async with services.db.session() as session:
        db_customer, db_app = await session.get_one(Customer, customer.id), await session.get_one(App, app.id)
        before = await entitlements.current(session, db_customer, db_app, now=case.grace_ends_at - timedelta(seconds=1))
        after = await entitlements.current(session, db_customer, db_app, now=case.grace_ends_at)
    assert (before.access_state, after.access_state) == ("grace", "blocked")
    async with services.db.transaction() as session:
        assert await cases.send_due_notices(session, now=case.grace_ends_at) == 1

    # a worker claims the blocked notice and dies before handing it to the server: sent once when its lease ends
    email_channel = channel.email_channel(services.db, services.settings)
    async with services.db.transaction() as session:
        [claimed] = await delivery.claim(session, email_channel, now=utcnow())
    assert claimed.event_type == "access_blocked"
    assert await channel.deliver(services.db, services.settings) == 0  # leased: nobody else sends it
    later = utcnow() + email_channel.lease + timedelta(seconds=1)
    assert await delivery.deliver_due(services.db, email_channel, clock=lambda: later) == 1
    assert smtp_server.mailbox.to(address)[-1]["Subject"] == "Your access to Vega Pro is paused"

    await world.set_card(checkout["customer"], GOOD_CARD)  # the user updates the card in the portal
    await world.advance(4)  # Stripe's retry succeeds
    seen, events = await _apply_new(world, seen)
    all_events += events
    assert (await dw.case(services, renewal.id)).close_reason == "paid"
    body = await dw.entitlement(client, key, customer)
    assert (body["status"], body["accessState"], body["graceEndsAt"]) == ("active", "full", None)
    await channel.deliver(services.db, services.settings)

    # every webhook again, as new deliveries and in reverse order: nothing new is queued or sent
    for event in reversed(all_events):
        await world.apply({**event, "id": event["id"] + "_again"})
    async with services.db.transaction() as session:
        await cases.send_due_notices(session, now=case.grace_ends_at + timedelta(days=1))
    await channel.deliver(services.db, services.settings)
    assert _subjects(smtp_server, address) == [
        "Receipt for your payment of THB\u00a0299.00",
        "Your payment for Vega Pro did not go through",
        "Your access to Vega Pro is paused",
        "Receipt for your payment of THB\u00a0299.00",
    ]
    assert [m.status for m in await dw.emails(services, customer)] == ["delivered"] * 4
    assert (await dw.entitlement(client, key, customer))["accessState"] == "full"


async def test_a_past_due_plan_cancelled_now_on_the_page_is_never_charged_again(
    world: World, services: Services, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    """The user of a past-due plan follows the payment-failed mail's link, reviews and confirms "cancel now" with a
    reason: the subscription ends now at Stripe and here, the failed invoice is voided (Stripe's test clock and a new
    card charge it no more), the dunning case closes, no further dunning mail goes out; the reason and the end user
    are on the audit row and the entitlement is canceled."""
    async with services.db.transaction() as session:
        app, key = await factories.create_app(session, name="Lyra")
        app.grace_days = 3
    plan = await world.plan(amount=19900)
    async with services.db.transaction() as session:
        await session.execute(update(Plan).where(Plan.id == plan.id).values(app_id=app.id, name="Lyra Pro"))
    customer = await world.customer()
    address = str(customer.email)
    checkout = await world.subscribe(customer, plan)
    await world.set_card(checkout["customer"], FAILING_CARD)
    await world.advance(31)  # the renewal fails: Stripe retries in 3 days
    seen, _ = await _apply_new(world, 0)
    renewal = (await world.invoices(customer))[-1]
    case = await dw.case(services, renewal.id)
    await channel.deliver(services.db, services.settings)
    failed_mail = smtp_server.mailbox.to(address)[-1]
    link = re.search(r'href="([^"]+/billing/[^"]+)"', parts(failed_mail)[1])
    assert link is not None
    page_path = httpx.URL(link.group(1)).path

    page = await client.get(page_path)
    assert page.status_code == 200 and 'data-testid="cancel-now-help"' in page.text
    assert 'data-testid="cancel-form"' not in page.text  # not "at period end": Stripe would go on retrying
    review = await client.get(f"{page_path}/cancel-now")
    assert review.status_code == 200
    assert "ends now" in review.text and "not charged again" in review.text
    answer = await client.post(
        f"{page_path}/cancel-now", data={"csrf": csrf_of(review.text), "reason": "  Lost my job  "}
    )
    assert answer.status_code == 303 and "notice=canceled_now" in answer.headers["location"]

    sub = await world.subscription(str(checkout["subscription"]))
    assert sub is not None and sub.status == "canceled" and sub.ended_at is not None
    assert sub.cancel_reason == "Lost my job"
    owed = await services.stripe.retrieve_invoice(str(renewal.stripe_invoice_id))
    assert owed["status"] == "void" and owed["next_payment_attempt"] is None
    seen, _ = await _apply_new(world, seen)
    assert (await dw.case(services, renewal.id)).closed_at is not None
    body = await dw.entitlement(client, key, customer)
    # the entitlement API has no "canceled": a customer whose paid plan ended is on the app's free plan at once
    assert (body["status"], body["paid"], body["plan"], body["graceEndsAt"]) == (
        "free",
        False,
        {"slug": "free", "name": "Free"},
        None,
    ), body

    # Stripe's retry date passes, the user saves a good card, the grace end passes: nothing is charged or mailed
    await world.set_card(checkout["customer"], GOOD_CARD)
    await world.advance(10)
    seen, events = await _apply_new(world, seen)
    assert not [e for e in events if e["type"] in ("invoice.paid", "invoice.payment_failed", "charge.succeeded")]
    owed = await services.stripe.retrieve_invoice(str(renewal.stripe_invoice_id))
    assert owed["status"] == "void" and owed["attempt_count"] == 1 and owed["amount_paid"] == 0
    async with services.db.transaction() as session:
        assert await cases.send_due_notices(session, now=case.grace_ends_at + timedelta(days=1)) == 0
    await channel.deliver(services.db, services.settings)
    assert _subjects(smtp_server, address) == [
        "Receipt for your payment of THB\u00a0199.00",
        "Your payment for Lyra Pro did not go through",
        "Your Lyra Pro subscription has ended",
    ]

    async with services.db.session() as session:
        [row] = (
            await session.scalars(
                select(AuditLog).where(
                    AuditLog.action == "subscription.canceled_now", AuditLog.entity_id == str(sub.id)
                )
            )
        ).all()
    assert row.actor == f"customer:{customer.id}"
    assert row.details["customer_reason"] == "Lost my job"
    assert row.details["voided_invoices"] == [renewal.stripe_invoice_id]

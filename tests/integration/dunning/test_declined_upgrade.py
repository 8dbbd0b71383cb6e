"""A declined upgrade is not a failed renewal: Stripe keeps the subscription active (the change waits in
`pending_update`) while the proration invoice's payment fails, so no dunning case opens and no "payment failed" mail
goes out. A renewal that fails still opens its case, whichever of `invoice.payment_failed` and the subscription's
move to past due is applied first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from payment.config import Settings
from payment.dunning import channel
from payment.embedded_pg import free_port
from payment.models import App, DunningCase, Invoice, Plan, StripeEvent, Subscription, utcnow
from payment.runtime import Services
from payment.subscriptions import changes
from tests.integration.dunning import world as dw
from tests.integration.dunning.mailbox import SmtpServer
from tests.integration.jobs.conftest import eventually, running_worker
from tests.support import factories
from tests.support.app import ThreadServer, serve_service
from tests.support.stripe import FAILING_CARD, World, register_webhook

pytestmark = pytest.mark.slow

FAILED_SUBJECT = "Your payment for Vega Pro did not go through"


@pytest.fixture
async def delivering(settings: Settings, world: World) -> AsyncIterator[ThreadServer]:
    """The app served on a port the sandbox delivers its webhooks to, and a worker applying them."""
    port = free_port()
    secret = register_webhook(world.sandbox_url, f"http://127.0.0.1:{port}/api/v1/webhooks/stripe")
    server = serve_service(settings.replace(stripe_webhook_secret=secret), port).start()
    try:
        async with running_worker(settings):
            yield server
    finally:
        server.stop()


async def _settled(world: World) -> None:
    """Every event the sandbox emitted so far delivered, stored and applied."""
    await world.control("POST", "webhooks/flush", json={"timeout": 30})

    async def nothing_pending() -> bool:
        async with world.services.db.session() as session:
            return not await session.scalar(
                select(func.count()).select_from(StripeEvent).where(StripeEvent.status.in_(("pending", "failed")))
            )

    await eventually(nothing_pending, timeout=60)


async def _mail_sent(services: Services, customer: Any) -> None:
    """Every mail queued for the customer handed to the SMTP server, by this delivery run or by the worker's
    periodic one (which may have claimed a mail first and still be sending it while this run finds nothing due)."""
    await channel.deliver(services.db, services.settings)

    async def all_delivered() -> bool:
        return all(m.status == "delivered" for m in await dw.emails(services, customer))

    await eventually(all_delivered, timeout=30)


async def _vega(services: Services, world: World) -> tuple[App, str, Plan, Plan]:
    async with services.db.transaction() as session:
        app, key = await factories.create_app(session, name="Vega")
    pro, team = await world.plan(amount=29900), await world.plan(amount=99000)
    async with services.db.transaction() as session:
        await session.execute(update(Plan).where(Plan.id == pro.id).values(app_id=app.id, name="Vega Pro"))
        await session.execute(update(Plan).where(Plan.id == team.id).values(app_id=app.id, name="Vega Team"))
        pro, team = await session.get_one(Plan, pro.id), await session.get_one(Plan, team.id)
    return app, key, pro, team


async def _cases(services: Services, subscription_id: int) -> list[DunningCase]:
    async with services.db.session() as session:
        return list(
            (await session.scalars(select(DunningCase).where(DunningCase.subscription_id == subscription_id))).all()
        )


def _subjects(smtp_server: SmtpServer, address: str) -> list[str]:
    return [str(m["Subject"]) for m in smtp_server.mailbox.to(address)]


async def test_a_declined_upgrade_opens_no_case_and_sends_no_mail(
    world: World,
    services: Services,
    client: httpx.AsyncClient,
    smtp_server: SmtpServer,
    delivering: ThreadServer,
) -> None:
    _, key, pro, team = await _vega(services, world)
    customer = await world.customer()
    address = str(customer.email)
    checkout = await world.subscribe(customer, pro)
    await _settled(world)
    await _mail_sent(services, customer)
    assert _subjects(smtp_server, address) == ["Receipt for your payment of THB\u00a0299.00"]
    before = await dw.entitlement(client, key, customer)
    assert (before["status"], before["accessState"]) == ("active", "full")
    assert isinstance(before["plan"], dict) and before["plan"]["slug"] == pro.slug

    await world.set_card(checkout["customer"], FAILING_CARD)
    # The upgrade as our plan change asks it of Stripe; Stripe sends the decline's events at once, so they are
    # applied here before the change's own void of the invoice lands, as a webhook racing it would be.
    stripe_sub = await services.stripe.retrieve_subscription(checkout["subscription"])
    declined = await services.stripe.update_subscription(
        checkout["subscription"],
        {
            "items": [{"id": stripe_sub["items"]["data"][0]["id"], "price": team.stripe_price_id}],
            "proration_behavior": "always_invoice",
            "payment_behavior": "pending_if_incomplete",
        },
    )
    assert declined["status"] == "active" and declined["pending_update"] is not None
    await _settled(world)

    [upgrade_invoice] = [i for i in await world.invoices(customer) if i.stripe_invoice_id == declined["latest_invoice"]]
    assert upgrade_invoice.status == "payment_failed"  # the failure itself is on record
    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.status == "active"
    assert await _cases(services, sub.id) == []
    assert await dw.entitlement(client, key, customer) == before

    invoice_id = str(declined["latest_invoice"])
    await services.stripe.void_invoice(invoice_id, idempotency_key=f"aquoris-void-{invoice_id}")  # as the change does
    await _settled(world)
    await _mail_sent(services, customer)
    assert await _cases(services, sub.id) == []
    assert [m.event_type for m in await dw.emails(services, customer)] == ["receipt"]
    assert _subjects(smtp_server, address) == ["Receipt for your payment of THB\u00a0299.00"]
    assert await dw.entitlement(client, key, customer) == before


async def test_a_declined_upgrade_through_the_plan_change_leaves_access_as_it_was(
    world: World,
    services: Services,
    client: httpx.AsyncClient,
    smtp_server: SmtpServer,
    delivering: ThreadServer,
) -> None:
    app, key, pro, team = await _vega(services, world)
    customer = await world.customer()
    checkout = await world.subscribe(customer, pro)
    await _settled(world)
    before = await dw.entitlement(client, key, customer)
    await world.set_card(checkout["customer"], FAILING_CARD)
    sub = await world.subscription(checkout["subscription"])
    assert sub is not None

    async with services.db.transaction() as session:
        app_row = await session.get_one(App, app.id)
    outcome = await changes.change_plan(
        services.db,
        services.stripe,
        sub.id,
        app=app_row,
        plan_slug=team.slug,
        proration_date=None,
        actor=f"customer:{customer.id}",
    )
    await _settled(world)
    await _mail_sent(services, customer)

    assert outcome.declined
    # the declined upgrade's invoice was voided under a key of its own (a retry replays, it does not void twice)
    [voided] = [e for e in await world.events() if e["type"] == "invoice.voided"]
    assert voided["request"]["idempotency_key"] == f"aquoris-void-{voided['data']['object']['id']}"
    assert await _cases(services, sub.id) == []
    assert FAILED_SUBJECT not in _subjects(smtp_server, str(customer.email))
    assert await dw.entitlement(client, key, customer) == before


async def _renewal_fails(world: World, services: Services) -> tuple[Any, list[dict[str, Any]]]:
    """A Vega Pro subscriber whose card declines at renewal: the customer, and the renewal's events."""
    _, _, pro, _ = await _vega(services, world)
    customer = await world.customer()
    checkout = await world.subscribe(customer, pro)
    await world.apply_all(await world.events())
    seen = len(await world.events())
    await world.set_card(checkout["customer"], FAILING_CARD)
    await world.advance(31)
    return customer, await world.events(after=seen)


@pytest.mark.parametrize("first", ["invoice.payment_failed", "customer.subscription.updated"])
async def test_a_failed_renewal_opens_its_case_whichever_event_comes_first(
    world: World, services: Services, smtp_server: SmtpServer, first: str
) -> None:
    customer, events = await _renewal_fails(world, services)
    assert {"invoice.payment_failed", "customer.subscription.updated"} <= {e["type"] for e in events}
    events.sort(key=lambda e: e["type"] != first)  # stable: the rest keep Stripe's order

    await world.apply_all(events)
    await channel.deliver(services.db, services.settings)

    renewal = (await world.invoices(customer))[-1]
    case = await dw.case(services, renewal.id)
    assert case.is_open and renewal.status == "payment_failed"
    smtp_server.mailbox.wait_for(lambda _: FAILED_SUBJECT in _subjects(smtp_server, str(customer.email)))
    assert _subjects(smtp_server, str(customer.email)).count(FAILED_SUBJECT) == 1


async def test_a_failure_applied_while_in_good_standing_is_dunned_once_the_subscription_is_past_due(
    services: Services, smtp_server: SmtpServer
) -> None:
    _, _, _, customer, sub, invoice = await dw.renewal(services, email="late-past-due@example.com")

    await dw.fail(services, invoice.id, 1, past_due=False)  # invoice.payment_failed applied first
    assert await _cases(services, sub.id) == []
    assert await dw.emails(services, customer) == []

    async with services.db.transaction() as session:  # then customer.subscription.updated: past_due
        (await session.get_one(Subscription, sub.id)).status = "past_due"
    [case] = await _cases(services, sub.id)
    assert (case.invoice_id, case.attempts, case.is_open) == (invoice.id, 1, True)
    assert [m.event_type for m in await dw.emails(services, customer)] == ["payment_failed"]

    await dw.fail(services, invoice.id, 2)  # Stripe's retry fails too: counted, not announced again
    [case] = await _cases(services, sub.id)
    assert case.attempts == 2
    await channel.deliver(services.db, services.settings)
    assert _subjects(smtp_server, "late-past-due@example.com") == [FAILED_SUBJECT]


async def test_a_paid_invoice_is_not_dunned_when_the_subscription_later_goes_past_due(services: Services) -> None:
    _, _, _, customer, sub, invoice = await dw.renewal(services, email="paid-then-past-due@example.com")
    async with services.db.transaction() as session:
        paid = await session.get_one(Invoice, invoice.id)
        paid.status, paid.paid_at = "paid", utcnow()
    async with services.db.transaction() as session:
        (await session.get_one(Subscription, sub.id)).status = "past_due"
    assert await _cases(services, sub.id) == []
    assert [m.event_type for m in await dw.emails(services, customer)] == ["receipt"]

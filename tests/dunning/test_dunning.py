"""A failed renewal: one case, grace then blocked, one notice by a real SMTP server, closed by the payment."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import quote

import httpx
from sqlalchemy import select, update

from payment.dunning import cases, channel
from payment.models import App, Customer, DunningCase, Invoice, OutboxMessage, Plan, Subscription, utcnow
from payment.runtime import Services
from tests.dunning.mailbox import SmtpServer, parts
from tests.support import factories


async def _world(services: Services, *, email: str, locale: str | None = None, grace_days: int = 7
                 ) -> tuple[App, str, Plan, Customer, Subscription, Invoice]:
    async with services.db.transaction() as session:
        app, key = await factories.create_app(session)
        app.grace_days = grace_days
        plan = await factories.create_plan(session, app_id=app.id, name="Vega Pro")
        customer = await factories.create_customer(session, email=email)
        customer.locale = locale
        sub = await factories.create_subscription(session, customer, plan)
        invoice = await factories.create_invoice(session, customer, subscription=sub, status="open")
    return app, key, plan, customer, sub, invoice


async def _fail(services: Services, invoice_id: int, attempt: int, *, past_due: bool = True) -> None:
    """What the Stripe sync writes for `invoice.payment_failed` (and the subscription going past due)."""
    async with services.db.transaction() as session:
        invoice = await session.get_one(Invoice, invoice_id)
        invoice.status, invoice.attempt_count = "payment_failed", attempt
        invoice.last_payment_error = "Your card has insufficient funds."
        if past_due:
            (await session.get_one(Subscription, invoice.subscription_id)).status = "past_due"


async def _pay(services: Services, invoice_id: int) -> None:
    async with services.db.transaction() as session:
        invoice = await session.get_one(Invoice, invoice_id)
        invoice.status, invoice.paid_at = "paid", utcnow()
        (await session.get_one(Subscription, invoice.subscription_id)).status = "active"


async def _entitlement(client: httpx.AsyncClient, key: str, customer: Customer) -> dict[str, object]:
    response = await client.get(f"/api/v1/customers/{quote(customer.external_user_id, safe='')}/subscription",
                                headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def _emails(services: Services, customer: Customer) -> list[OutboxMessage]:
    async with services.db.session() as session:
        return list((await session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "email", OutboxMessage.target == str(customer.id))
            .order_by(OutboxMessage.position))).all())


async def _case(services: Services, invoice_id: int) -> DunningCase:
    async with services.db.session() as session:
        return (await session.scalars(select(DunningCase).where(DunningCase.invoice_id == invoice_id))).one()


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def test_a_failed_renewal_gives_grace_one_notice_with_a_working_link_then_blocked_then_a_receipt(
        services: Services, client: httpx.AsyncClient, smtp_server: SmtpServer) -> None:
    _app, key, _plan, customer, _sub, invoice = await _world(services, email="dana@example.com", grace_days=5)
    before = utcnow()
    await _fail(services, invoice.id, 1)
    case = await _case(services, invoice.id)
    assert case.grace_ends_at - before >= timedelta(days=5) > case.grace_ends_at - utcnow() - timedelta(seconds=5)
    body = await _entitlement(client, key, customer)
    assert (body["status"], body["accessState"], body["graceEndsAt"]) == ("past_due", "grace",
                                                                          _iso(case.grace_ends_at))

    # Stripe retries twice (and one webhook comes twice): the grace end stays, the notice is not queued again
    for attempt in (2, 2, 3):
        await _fail(services, invoice.id, attempt)
    again = await _case(services, invoice.id)
    assert (again.attempts, again.grace_ends_at, again.closed_at) == (3, case.grace_ends_at, None)
    assert [m.event_type for m in await _emails(services, customer)] == ["payment_failed"]

    assert await channel.deliver(services.db, services.settings) == 1
    [mail] = smtp_server.mailbox.to("dana@example.com")
    assert mail["Subject"] == "Your payment for Vega Pro did not go through"
    text, html = parts(mail)
    assert "THB\u00a0299.00" in text and "Update your card: http" in text
    link = re.search(r'href="([^"]+/billing/[^"]+)"', html)
    assert link is not None
    page = await client.get(link.group(1).removeprefix(services.settings.base_url))
    assert page.status_code == 200 and "Vega Pro" in page.text  # the button opens this customer's billing page
    assert await channel.deliver(services.db, services.settings) == 0  # delivered: never sent again

    # the grace period runs out: blocked, and the user is told once
    async with services.db.transaction() as session:
        await session.execute(update(DunningCase).where(DunningCase.id == case.id)
                              .values(grace_ends_at=utcnow() - timedelta(minutes=1)))
    body = await _entitlement(client, key, customer)
    assert (body["status"], body["accessState"], body["paid"]) == ("past_due", "blocked", True)
    for _ in range(2):
        await channel.queue_time_notices(services.db)
    await channel.deliver(services.db, services.settings)
    assert [m["Subject"] for m in smtp_server.mailbox.to("dana@example.com")][1:] == [
        "Your access to Vega Pro is paused"]

    # the card is updated and the retry succeeds: closed, full access, a receipt
    await _pay(services, invoice.id)
    await _pay(services, invoice.id)  # the same webhook again
    closed = await _case(services, invoice.id)
    assert closed.close_reason == "paid"
    body = await _entitlement(client, key, customer)
    assert (body["status"], body["accessState"], body["graceEndsAt"]) == ("active", "full", None)
    await channel.deliver(services.db, services.settings)
    subjects = [m["Subject"] for m in smtp_server.mailbox.to("dana@example.com")]
    assert subjects == ["Your payment for Vega Pro did not go through", "Your access to Vega Pro is paused",
                        "Receipt for your payment of THB\u00a0299.00"]
    assert [m.status for m in await _emails(services, customer)] == ["delivered"] * 3


async def test_an_app_whose_policy_is_free_falls_back_to_the_free_plan_after_grace(
        services: Services, client: httpx.AsyncClient) -> None:
    app, key, _plan, customer, _sub, invoice = await _world(services, email="eli@example.com", grace_days=0)
    async with services.db.transaction() as session:
        (await session.get_one(App, app.id)).after_grace = "free"
    await _fail(services, invoice.id, 1)
    body = await _entitlement(client, key, customer)
    assert (body["status"], body["accessState"], body["paid"]) == ("free", "full", False)


async def test_a_cancelled_subscription_closes_its_case_and_says_goodbye_once(services: Services) -> None:
    _app, _key, _plan, customer, sub, invoice = await _world(services, email="fay@example.com", locale="th")
    await _fail(services, invoice.id, 1)
    for _ in range(2):
        async with services.db.transaction() as session:
            row = await session.get_one(Subscription, sub.id)
            row.status, row.ended_at = "canceled", row.ended_at or utcnow()
    assert (await _case(services, invoice.id)).close_reason == "ended"
    assert [m.event_type for m in await _emails(services, customer)] == ["payment_failed", "subscription_canceled"]


async def test_an_admin_extends_grace_and_it_is_audited(services: Services, client: httpx.AsyncClient) -> None:
    _app, key, _plan, customer, _sub, invoice = await _world(services, email="gus@example.com", grace_days=0)
    await _fail(services, invoice.id, 1)
    assert (await _entitlement(client, key, customer))["accessState"] == "blocked"
    case = await _case(services, invoice.id)
    async with services.db.transaction() as session:
        extended = await cases.extend_grace(session, case.id, days=3, actor="admin:1")
    assert extended.grace_ends_at - utcnow() > timedelta(days=2, hours=23)
    assert (await _entitlement(client, key, customer))["accessState"] == "grace"

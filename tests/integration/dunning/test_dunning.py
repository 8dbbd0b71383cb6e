"""A failed renewal: one case, grace then blocked, one notice by a real SMTP server, closed by the payment."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx
from sqlalchemy import update

from payment.admins.permissions import AdminActor
from payment.dunning import cases, channel
from payment.models import App, DunningCase, Subscription, utcnow
from payment.runtime import Services
from tests.integration.app_webhooks.conftest import client_app, messages
from tests.integration.dunning import world
from tests.integration.dunning.mailbox import SmtpServer, parts
from tests.support import factories


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def test_a_failed_renewal_gives_grace_one_notice_with_a_working_link_then_blocked_then_a_receipt(
    services: Services, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    _app, key, _plan, customer, _sub, invoice = await world.renewal(services, email="dana@example.com", grace_days=5)
    before = utcnow()
    await world.fail(services, invoice.id, 1)
    case = await world.case(services, invoice.id)
    assert case.grace_ends_at - before >= timedelta(days=5) > case.grace_ends_at - utcnow() - timedelta(seconds=5)
    body = await world.entitlement(client, key, customer)
    assert (body["status"], body["accessState"], body["graceEndsAt"]) == ("past_due", "grace", _iso(case.grace_ends_at))

    # Stripe retries twice (and one webhook comes twice): the grace end stays, the notice is not queued again
    for attempt in (2, 2, 3):
        await world.fail(services, invoice.id, attempt)
    again = await world.case(services, invoice.id)
    assert (again.attempts, again.grace_ends_at, again.closed_at) == (3, case.grace_ends_at, None)
    assert [m.event_type for m in await world.emails(services, customer)] == ["payment_failed"]

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
        await session.execute(
            update(DunningCase).where(DunningCase.id == case.id).values(grace_ends_at=utcnow() - timedelta(minutes=1))
        )
    body = await world.entitlement(client, key, customer)
    assert (body["status"], body["accessState"], body["paid"]) == ("past_due", "blocked", True)
    for _ in range(2):
        await channel.queue_time_notices(services.db)
    await channel.deliver(services.db, services.settings)
    assert [m["Subject"] for m in smtp_server.mailbox.to("dana@example.com")][1:] == [
        "Your access to Vega Pro is paused"
    ]

    # the card is updated and the retry succeeds: closed, full access, a receipt
    await world.pay(services, invoice.id)
    await world.pay(services, invoice.id)  # the same webhook again
    closed = await world.case(services, invoice.id)
    assert closed.close_reason == "paid"
    body = await world.entitlement(client, key, customer)
    assert (body["status"], body["accessState"], body["graceEndsAt"]) == ("active", "full", None)
    await channel.deliver(services.db, services.settings)
    subjects = [m["Subject"] for m in smtp_server.mailbox.to("dana@example.com")]
    assert subjects == [
        "Your payment for Vega Pro did not go through",
        "Your access to Vega Pro is paused",
        "Receipt for your payment of THB\u00a0299.00",
    ]
    assert [m.status for m in await world.emails(services, customer)] == ["delivered"] * 3


async def test_an_app_whose_policy_is_free_falls_back_to_the_free_plan_after_grace(
    services: Services, client: httpx.AsyncClient
) -> None:
    app, key, _plan, customer, _sub, invoice = await world.renewal(services, email="eli@example.com", grace_days=0)
    async with services.db.transaction() as session:
        (await session.get_one(App, app.id)).after_grace = "free"
    await world.fail(services, invoice.id, 1)
    body = await world.entitlement(client, key, customer)
    assert (body["status"], body["accessState"], body["paid"]) == ("free", "full", False)


async def test_a_cancelled_subscription_closes_its_case_and_says_goodbye_once(services: Services) -> None:
    _app, _key, _plan, customer, sub, invoice = await world.renewal(services, email="fay@example.com", locale="th")
    await world.fail(services, invoice.id, 1)
    for _ in range(2):
        async with services.db.transaction() as session:
            row = await session.get_one(Subscription, sub.id)
            row.status, row.ended_at = "canceled", row.ended_at or utcnow()
    assert (await world.case(services, invoice.id)).close_reason == "ended"
    assert [m.event_type for m in await world.emails(services, customer)] == ["payment_failed", "subscription_canceled"]


async def test_an_admin_extends_grace_and_it_is_audited(services: Services, client: httpx.AsyncClient) -> None:
    _app, key, _plan, customer, _sub, invoice = await world.renewal(services, email="gus@example.com", grace_days=0)
    await world.fail(services, invoice.id, 1)
    assert (await world.entitlement(client, key, customer))["accessState"] == "blocked"
    case = await world.case(services, invoice.id)
    async with services.db.transaction() as session:
        extended = await cases.extend_grace(session, case.id, days=3, actor=AdminActor(1, "owner"))
    assert extended.grace_ends_at - utcnow() > timedelta(days=2, hours=23)
    assert (await world.entitlement(client, key, customer))["accessState"] == "grace"


async def test_history_recorded_late_sends_nothing_but_a_manual_payment_gets_its_receipt(services: Services) -> None:
    async with services.db.transaction() as session:
        customer = await factories.create_customer(session, email="ivy@example.com")
        plan = await factories.create_plan(session)
        # first seen already ended, and a payment from months ago: an import or a catch-up, not news
        await factories.create_subscription(session, customer, plan, status="canceled", ended_at=utcnow())
        old = await factories.create_invoice(session, customer, status="paid")
        old.paid_at = utcnow() - timedelta(days=90)
    async with services.db.transaction() as session:
        await factories.create_invoice(session, customer, source="manual", status="paid")
    assert [m.event_type for m in await world.emails(services, customer)] == ["receipt"]


async def test_a_trial_about_to_be_charged_is_announced_once(services: Services) -> None:
    async with services.db.transaction() as session:
        customer = await factories.create_customer(session, email="jo@example.com")
        plan = await factories.create_plan(session, name="Vega Pro")
        await factories.create_subscription(
            session, customer, plan, status="trialing", trial_end=utcnow() + timedelta(days=2)
        )
        await factories.create_subscription(
            session,
            customer,
            plan,
            status="trialing",  # ends later: not yet
            trial_end=utcnow() + timedelta(days=10),
        )
    for _ in range(2):
        async with services.db.transaction() as session:
            await cases.send_due_notices(session)
    [notice] = await world.emails(services, customer)
    assert (notice.event_type, notice.payload["data"]["amountCents"]) == ("trial_ending", 29900)


async def test_client_apps_hear_when_grace_runs_out_and_when_an_admin_extends_it(services: Services) -> None:
    vega = await client_app(services, "http://127.0.0.1:9/hooks", event_types=("entitlement.changed",))
    async with services.db.transaction() as session:
        plan = await factories.create_plan(session, app_id=vega.app.id, name="Vega Pro")
        customer = await factories.create_customer(session, email="kim@example.com")
        sub = await factories.create_subscription(session, customer, plan)
        invoice = await factories.create_invoice(session, customer, subscription=sub, status="open")
    await world.fail(services, invoice.id, 1)
    case = await world.case(services, invoice.id)
    async with services.db.transaction() as session:
        await session.execute(
            update(DunningCase).where(DunningCase.id == case.id).values(grace_ends_at=utcnow() - timedelta(seconds=1))
        )
    for _ in range(2):  # every tick looks; only a change is announced
        await channel.queue_time_notices(services.db)
    async with services.db.transaction() as session:
        await cases.extend_grace(session, case.id, days=2, actor=AdminActor(1, "owner"))
    states = [
        (m.payload["data"]["status"], m.payload["data"]["accessState"])
        for m in await messages(services, vega.endpoint.id)
    ]
    assert states == [("active", "full"), ("past_due", "grace"), ("past_due", "blocked"), ("past_due", "grace")]

"""The trial-ending mail through the Stripe sandbox, its clock and a real SMTP server: with a card it says what is
charged; without one it says what Stripe does at the end (cancel or pause, as the plan set it at Checkout) and
invites the user to add a card on the billing page, in English and Thai."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from payment.dunning import cases, channel
from payment.models import Customer, Plan
from payment.runtime import Services
from payment.subscriptions import trials
from tests.integration.dunning.mailbox import SmtpServer, parts
from tests.support import factories
from tests.support.stripe import GOOD_CARD, World

TRIAL_DAYS = 7


async def _trial(world: World, *, locale: str, requires_card: bool, end_behavior: str) -> tuple[Customer, str]:
    """A customer in a 7-day trial of "Vega Pro" (THB 299.00 a month), started through Checkout as the billing page
    opens it, with a card or (when the plan allows it) without; the Stripe subscription's id."""
    services = world.services
    plan = await world.plan(amount=29900)
    async with services.db.transaction() as session:
        app, _ = await factories.create_app(session, name="Vega")
        await session.execute(
            update(Plan)
            .where(Plan.id == plan.id)
            .values(
                app_id=app.id,
                name="Vega Pro",
                trial_days=TRIAL_DAYS,
                trial_requires_card=requires_card,
                trial_end_behavior=end_behavior,
            )
        )
        customer = await factories.create_customer(session)
        customer.locale = locale
    params = trials.checkout_params(trials.TrialOffer(TRIAL_DAYS, requires_card, end_behavior))
    assert params is not None
    checkout = await services.stripe.create_checkout_session(
        {
            "mode": "subscription",
            "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
            "client_reference_id": str(customer.id),
            "metadata": {"customer_id": str(customer.id), "plan_id": str(plan.id)},
            "customer_email": customer.email,
            "success_url": "http://127.0.0.1/billing/done",
            "cancel_url": "http://127.0.0.1/billing",
            "subscription_data": params.subscription_data,
            **params.session,
        }
    )
    paid = await world.control(
        "POST", f"checkout_sessions/{checkout['id']}/pay", data={"card": GOOD_CARD if requires_card else "none"}
    )
    await world.apply_all(await world.events())
    await channel.deliver(services.db, services.settings)  # the receipt of the trial's first (free) invoice
    return customer, str(paid["subscription"]["id"])


async def _trial_will_end(world: World) -> list[dict[str, Any]]:
    """Move Stripe's clock to three days before the trial ends and apply what it emitted."""
    seen = len(await world.events())
    await world.advance(TRIAL_DAYS - 3 + 0.01)
    events = await world.events(after=seen)
    assert [e["type"] for e in events] == ["customer.subscription.trial_will_end"]
    await world.apply_all(events)
    return events


async def _the_mail(services: Services, smtp_server: SmtpServer, client: httpx.AsyncClient, address: str) -> Any:
    before = len(smtp_server.mailbox.to(address))
    assert await channel.deliver(services.db, services.settings) == 1
    [mail] = smtp_server.mailbox.to(address)[before:]
    text, html = parts(mail)
    link = re.search(r'href="([^"]+/billing/[^"]+)"', html)
    assert link is not None
    page = await client.get(link.group(1).removeprefix(services.settings.base_url))
    assert page.status_code == 200 and "Vega Pro" in page.text  # the button opens this customer's billing page
    return mail, " ".join(text.split())


async def test_with_a_card_the_mail_says_what_is_charged(
    world: World, services: Services, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    customer, _ = await _trial(world, locale="en", requires_card=True, end_behavior="cancel")
    await _trial_will_end(world)
    mail, text = await _the_mail(services, smtp_server, client, str(customer.email))
    assert mail["Subject"].startswith("Your Vega Pro trial ends on ")
    assert "Then THB 299.00 is charged to your card on file." in text
    assert "Manage billing: http" in text and "Add a card" not in text


@pytest.mark.parametrize(
    ("locale", "end_behavior", "says", "button"),
    [
        (
            "en",
            "cancel",
            "You have not added a card, so your subscription will be cancelled when the trial ends. "
            "To keep Vega Pro for THB 299.00, add a card on your billing page before",
            "Add a card: http",
        ),
        (
            "en",
            "pause",
            "You have not added a card, so your subscription will be paused when the trial ends, until you add one.",
            "Add a card: http",
        ),
        (
            "th",
            "cancel",
            "คุณยังไม่ได้เพิ่มบัตร การสมัครสมาชิกของคุณจึงจะถูกยกเลิกเมื่อสิ้นสุดช่วงทดลองใช้",
            "เพิ่มบัตร: http",
        ),
        (
            "th",
            "pause",
            "คุณยังไม่ได้เพิ่มบัตร การสมัครสมาชิกของคุณจึงจะถูกพักไว้เมื่อสิ้นสุดช่วงทดลองใช้ จนกว่าคุณจะเพิ่มบัตร",
            "เพิ่มบัตร: http",
        ),
    ],
)
async def test_without_a_card_the_mail_says_what_happens_at_the_end_and_asks_for_a_card(
    world: World,
    services: Services,
    client: httpx.AsyncClient,
    smtp_server: SmtpServer,
    locale: str,
    end_behavior: str,
    says: str,
    button: str,
) -> None:
    customer, _ = await _trial(world, locale=locale, requires_card=False, end_behavior=end_behavior)
    await _trial_will_end(world)
    mail, text = await _the_mail(services, smtp_server, client, str(customer.email))
    subject = {"en": "Your Vega Pro trial ends on ", "th": "ช่วงทดลองใช้ Vega Pro ของคุณจะสิ้นสุดในวันที่ "}[locale]
    assert mail["Subject"].startswith(subject)
    assert says in text
    assert button in text
    assert "charged to your card" not in text and "จากบัตรที่บันทึกไว้" not in text


async def test_without_stripes_event_the_periodic_check_says_the_same_a_day_later(
    world: World, services: Services, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    customer, stripe_id = await _trial(world, locale="en", requires_card=False, end_behavior="pause")
    sub = await world.subscription(stripe_id)
    assert sub is not None and sub.trial_end is not None
    async with services.db.transaction() as session:
        # three days before the end Stripe's event is due (it knows of a card added in the portal): left to it
        assert await cases.send_due_notices(session, now=sub.trial_end - timedelta(days=3)) == 0
        # it has not come a day later: our own tick tells the user, from what the trial's grant knows
        assert await cases.send_due_notices(session, now=sub.trial_end - timedelta(days=2)) == 1
    await _trial_will_end(world)  # Stripe's event, late, queues nothing more
    _, text = await _the_mail(services, smtp_server, client, str(customer.email))
    assert "your subscription will be paused when the trial ends" in text and "Add a card: http" in text

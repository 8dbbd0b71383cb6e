"""End to end over HTTP: the sandbox delivers every event of a whole subscription life to the served app (signed,
in order, with its own retries) and a real worker applies them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from payment.config import Settings
from payment.embedded_pg import free_port
from payment.models import StripeEvent
from tests.integration.jobs.conftest import eventually, running_worker
from tests.support.app import ThreadServer, serve_service
from tests.support.stripe import FAILING_CARD, GOOD_CARD, World, register_webhook

pytestmark = pytest.mark.slow


@pytest.fixture
async def delivering(settings: Settings, world: World) -> AsyncIterator[ThreadServer]:
    """The app served on a port the sandbox delivers to, and a worker; both stop after the test."""
    port = free_port()
    secret = register_webhook(world.sandbox_url, f"http://127.0.0.1:{port}/api/v1/webhooks/stripe")
    server = serve_service(settings.replace(stripe_webhook_secret=secret), port).start()
    try:
        async with running_worker(settings):
            yield server
    finally:
        server.stop()


async def _settled(world: World) -> None:
    await world.control("POST", "webhooks/flush", json={"timeout": 30})

    async def nothing_pending() -> bool:
        async with world.services.db.session() as session:
            return not await session.scalar(
                select(func.count()).select_from(StripeEvent).where(StripeEvent.status.in_(("pending", "failed")))
            )

    await eventually(nothing_pending, timeout=60)


async def test_a_whole_subscription_life_delivered_over_http(world: World, delivering: ThreadServer) -> None:
    gateway = world.services.stripe
    plan = await world.plan(amount=29900)
    customer = await world.customer()
    checkout = await world.subscribe(customer, plan)
    await _settled(world)
    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.status == "active"

    await world.set_card(checkout["customer"], FAILING_CARD)
    await world.advance(31)  # renewal fails
    await _settled(world)
    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.status == "past_due"
    assert [i.status for i in await world.invoices(customer)] == ["paid", "payment_failed"]

    await world.set_card(checkout["customer"], GOOD_CARD)
    await world.advance(4)  # Stripe's retry succeeds
    await gateway.update_subscription(checkout["subscription"], {"cancel_at_period_end": True})
    first = (await world.invoices(customer))[0]
    assert first.stripe_charge_id is not None
    await gateway.create_refund({"charge": first.stripe_charge_id, "amount": 9900})
    await _settled(world)
    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and (sub.status, sub.cancel_at_period_end) == ("active", True)
    invoices = await world.invoices(customer)
    assert [(i.status, i.amount_refunded_cents, i.attempt_count) for i in invoices] == [
        ("partially_refunded", 9900, 1),
        ("paid", 0, 2),
    ]
    assert [(r.amount_cents, r.status) for r in await world.refunds(customer)] == [(9900, "succeeded")]

    await world.advance(31)  # the period ends: Stripe cancels it
    await _settled(world)
    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.status == "canceled" and sub.ended_at is not None
    deliveries = (await world.control("GET", "webhooks/deliveries"))["deliveries"]
    assert deliveries and {d["status"] for d in deliveries} == {200}

"""The jobs around Stripe events: applying with retries, failing for good, Retry, the sweep and the catch-up."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update

from payment.admins.permissions import AdminActor, Role
from payment.errors import Conflict
from payment.jobs import stripe_events
from payment.models import AuditLog, StripeEvent
from payment.runtime import Services
from payment.stripe import events
from payment.stripe.inbox import store_event
from tests.support.stripe import World

pytestmark = pytest.mark.usefixtures("job_queue")


async def _store(services: Services, event: dict[str, object]) -> int:
    async with services.db.transaction() as session:
        return (await store_event(session, event)).id


async def _row(services: Services, row_id: int) -> StripeEvent:
    async with services.db.session() as session:
        row = await session.get(StripeEvent, row_id)
        assert row is not None
        return row


async def _queued(services: Services, row_id: int) -> int:
    async with services.db.session() as session:
        count = await session.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'payment:apply_stripe_event' "
                "AND status = 'todo' AND (args->>'event_row_id')::bigint = :id"
            ),
            {"id": row_id},
        )
    return int(count or 0)


async def _failing_event(world: World) -> dict[str, object]:
    """A real subscription event for a Stripe customer no customer of ours matches: it cannot be applied."""
    plan = await world.plan()
    customer = await world.customer()
    await world.subscribe(customer, plan)
    event = next(e for e in await world.events() if e["type"] == "customer.subscription.created")
    event["data"]["object"]["metadata"] = {}
    async with world.services.db.transaction() as session:  # our link to the customer is lost
        await session.execute(text("DELETE FROM checkout_sessions WHERE customer_id = :id"), {"id": customer.id})
    return event


async def test_a_failing_event_stays_pending_with_its_error_then_fails_for_good(world: World) -> None:
    services = world.services
    event = await _failing_event(world)
    plan_price = event["data"]["object"]["items"]["data"][0]["price"]["id"]  # type: ignore[index]
    # an unknown price cannot be mapped to a plan, whatever the customer
    async with services.db.transaction() as session:
        await session.execute(
            text("UPDATE plans SET stripe_price_id = NULL, price_cents = 0 WHERE stripe_price_id = :p"),
            {"p": plan_price},
        )
    row_id = await _store(services, event)
    with pytest.raises(Exception, match="No"):
        await stripe_events.process_event(services, row_id)
    row = await _row(services, row_id)
    assert (row.status, row.attempts) == ("pending", 1) and row.last_error and "No" in row.last_error

    with pytest.raises(Exception, match="No"):
        await stripe_events.process_event(services, row_id, final_attempt=True)
    row = await _row(services, row_id)
    assert (row.status, row.attempts) == ("failed", 2)
    assert "SELECT" not in (row.last_error or "") and "sub_" in (row.last_error or "")


async def test_retry_puts_a_failed_event_back_and_it_applies_once_the_cause_is_fixed(world: World) -> None:
    services = world.services
    plan = await world.plan()
    customer = await world.customer()
    checkout = await world.subscribe(customer, plan)
    price = plan.stripe_price_id
    event = next(e for e in await world.events() if e["type"] == "customer.subscription.created")
    async with services.db.transaction() as session:  # an admin deactivated the price mapping by mistake
        await session.execute(
            text("UPDATE plans SET stripe_price_id = NULL, price_cents = 0 WHERE id = :id"), {"id": plan.id}
        )
    event["data"]["object"]["metadata"] = {}
    row_id = await _store(services, event)
    with pytest.raises(Exception):  # noqa: B017 - the message is checked on the row
        await stripe_events.process_event(services, row_id, final_attempt=True)
    assert (await _row(services, row_id)).status == "failed"

    async with services.db.transaction() as session:  # fixed
        await session.execute(
            text("UPDATE plans SET stripe_price_id = :p, price_cents = 29900 WHERE id = :id"),
            {"id": plan.id, "p": price},
        )
    async with services.db.transaction() as session:
        await events.retry(session, row_id, actor=AdminActor(7, Role.SUPPORT))
    assert await stripe_events.enqueue_event(services, row_id) is True
    assert await _queued(services, row_id) == 1
    assert await stripe_events.process_event(services, row_id) is True
    row = await _row(services, row_id)
    assert row.status == "handled" and row.last_error is None
    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.status == "active"
    async with services.db.session() as session:
        actions = (
            await session.scalars(
                select(AuditLog.action)
                .where(AuditLog.entity_type == "stripe_event", AuditLog.entity_id == str(row_id))
                .order_by(AuditLog.id)
            )
        ).all()
    assert list(actions) == ["stripe_event.failed", "stripe_event.retry"]

    async with services.db.transaction() as session:
        with pytest.raises(Conflict):
            await events.retry(session, row_id, actor=AdminActor(7, Role.SUPPORT))


async def test_sweep_enqueues_stored_events_that_have_no_job(world: World) -> None:
    services = world.services
    body = {
        "id": "evt_sweep_1",
        "type": "invoice.paid",
        "created": 1700000000,
        "data": {"object": {"id": "in_sweep", "object": "invoice"}},
    }
    lost = await _store(services, body)  # stored, then the process died before deferring
    waiting = await _store(services, {**body, "id": "evt_sweep_2"})
    await stripe_events.enqueue_event(services, waiting)
    async with services.db.transaction() as session:  # both arrived a minute ago
        await session.execute(
            update(StripeEvent)
            .where(StripeEvent.id.in_([lost, waiting]))
            .values(received_at=StripeEvent.received_at - text("interval '1 minute'"))
        )
    assert await _queued(services, lost) == 0
    await stripe_events.sweep(services)
    assert await _queued(services, lost) == 1
    assert await _queued(services, waiting) == 1  # not enqueued twice
    await stripe_events.sweep(services)
    assert await _queued(services, lost) == 1


async def test_catch_up_applies_an_event_stripe_never_delivered(world: World) -> None:
    services = world.services
    plan = await world.plan()
    customer = await world.customer()
    checkout = await world.subscribe(customer, plan)  # no webhook endpoint: nothing was delivered
    assert await world.subscription(checkout["subscription"]) is None
    found = await stripe_events.catch_up(services)
    assert found >= 3
    completed = next(e for e in await world.events() if e["type"] == "checkout.session.completed")
    row = await world.event_row(completed["id"])
    assert row is not None and row.received_via == "catchup" and await _queued(services, row.id) == 1
    async with services.db.session() as session:
        pending = (
            await session.scalars(
                select(StripeEvent.id).where(StripeEvent.status == "pending", StripeEvent.received_via == "catchup")
            )
        ).all()
    for row_id in pending:
        await stripe_events.process_event(services, row_id)
    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.status == "active" and sub.customer_id == customer.id
    assert await stripe_events.catch_up(services) == 0  # nothing new the second time

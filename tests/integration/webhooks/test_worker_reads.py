"""The job reads Stripe before its transaction, applies the snapshot only when it is not older than the stored one,
and serves all pending events of one object with one read."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select, text

from payment.audit import service as audit
from payment.bootstrap import build_services
from payment.config import Settings
from payment.jobs import stripe_events
from payment.models import AuditLog, Invoice, StripeEvent
from payment.runtime import Services
from payment.stripe.gateway import Snapshot, StripeGateway
from payment.stripe.inbox import store_and_defer, store_event
from payment.subscriptions import stripe_sync as subscriptions
from tests.integration.jobs.conftest import eventually
from tests.support.stripe import FAILING_CARD, World


class CountingGateway(StripeGateway):
    """The real gateway, counting the calls that reach Stripe (views made from it share the count)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.calls: list[str] = []

    async def _live(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> dict[str, Any] | bytes | str:
        self.calls.append(getattr(fn, "__qualname__", str(fn)))
        return await super()._live(fn, *args, **kwargs)


async def _live_subscription(world: World) -> str:
    """A subscription paid in the sandbox and applied from its events; returns its Stripe id."""
    checkout = await world.subscribe(await world.customer(), await world.plan())
    await world.apply_all(await world.events())
    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.status == "active"
    return str(checkout["subscription"])


async def _store(world: World, events: list[dict[str, Any]]) -> list[int]:
    async with world.services.db.transaction() as session:
        return [(await store_event(session, event)).id for event in events]


async def _store_with_jobs(world: World, events: list[dict[str, Any]]) -> list[int]:
    """As the webhook stores them: each event with the job that applies it."""
    ids = []
    for event in events:
        body = json.dumps(event, default=str).encode()

        async def store(conn: Any, event: dict[str, Any] = event, body: bytes = body) -> int:
            return (await store_and_defer(conn, event, body, task=stripe_events.APPLY_TASK)).id

        ids.append(await world.services.db.on_driver(store))
    return ids


async def _ticket(services: Services) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(text("SELECT nextval('stripe_fetch_tickets')")) or 0)


async def test_stripe_is_read_with_no_transaction_open_and_no_connection_held(world: World, settings: Settings) -> None:
    sub_id = await _live_subscription(world)
    seen = len(await world.events())
    await world.services.stripe.update_subscription(sub_id, {"cancel_at_period_end": True})
    [row_id] = await _store(world, [e for e in await world.events(after=seen) if e["id"]])
    # the job's read of the subscription hangs 3 s (then Stripe answers 500 and the SDK's retry succeeds)
    await world.control(
        "POST",
        "faults",
        data={
            "method": "GET",
            "path_prefix": f"/v1/subscriptions/{sub_id}",
            "status": "500",
            "delay_seconds": "3",
            "should_retry": "true",
        },
    )
    job_services = build_services(settings)
    try:
        job = asyncio.create_task(stripe_events.process_event(job_services, row_id))

        async def reading() -> bool:
            return not (await world.control("GET", "faults"))["faults"]

        await eventually(reading, timeout=20, every=0.05)
        assert not job.done()
        # while Stripe is being waited for: no connection of the job's pool is out, the event row is not locked,
        # and no session of the database sits in a transaction
        assert job_services.db.connections_in_use() == 0
        async with world.services.db.transaction() as session:
            locked = await session.scalar(
                select(StripeEvent.id).where(StripeEvent.id == row_id).with_for_update(nowait=True)
            )
            assert locked == row_id
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                    "AND datname = current_database() AND state LIKE 'idle in transaction%'"
                )
            )
            assert waiting == 0
        assert await asyncio.wait_for(job, 30) is True
    finally:
        await job_services.db.dispose()
    sub = await world.subscription(sub_id)
    assert sub is not None and sub.cancel_at_period_end is True
    row = await world.event_row((await world.events(after=seen))[0]["id"])
    assert row is not None and row.status == "handled"


async def test_a_snapshot_asked_for_earlier_never_overwrites_one_asked_for_later(world: World) -> None:
    sub_id = await _live_subscription(world)
    gateway = world.services.stripe
    earlier = Snapshot(await _ticket(world.services))
    before = await gateway.recording(earlier).retrieve_subscription(sub_id)
    await gateway.update_subscription(sub_id, {"cancel_at_period_end": True})
    later = Snapshot(await _ticket(world.services))
    after = await gateway.recording(later).retrieve_subscription(sub_id)
    assert before["cancel_at_period_end"] is False and after["cancel_at_period_end"] is True

    # the later snapshot's transaction commits first, as when two workers' reads return in the other order
    async with world.services.db.transaction() as session:
        row, changes = await subscriptions.upsert_from_stripe(
            session, gateway.replaying(later), after, actor=audit.STRIPE
        )
        assert changes.values["cancel_at_period_end"] is True and row.stripe_fetch_ticket == later.ticket
    async with world.services.db.transaction() as session:
        row, changes = await subscriptions.upsert_from_stripe(
            session, gateway.replaying(earlier), before, actor=audit.STRIPE
        )
        assert changes.values == {} and row.stripe_fetch_ticket == later.ticket
    sub = await world.subscription(sub_id)
    assert sub is not None and sub.cancel_at_period_end is True

    # the same snapshot again, or a live read (an admin's action), applies
    async with world.services.db.transaction() as session:
        row, changes = await subscriptions.upsert_from_stripe(
            session, gateway.replaying(later), after, actor=audit.STRIPE
        )
        assert changes.values == {}
    async with world.services.db.transaction() as session:
        row, changes = await subscriptions.upsert_from_stripe(session, gateway, before, actor=audit.STRIPE)
        assert changes.values["cancel_at_period_end"] is False and row.stripe_fetch_ticket == later.ticket


async def test_pending_events_of_one_object_are_served_by_one_read_each_recorded_once(
    world: World, settings: Settings
) -> None:
    sub_id = await _live_subscription(world)
    seen = len(await world.events())
    for n in range(3):
        await world.services.stripe.update_subscription(sub_id, {"metadata": {"note": str(n)}})
    await world.services.stripe.update_subscription(sub_id, {"cancel_at_period_end": True})
    updates = await world.events(after=seen)
    assert [e["type"] for e in updates] == ["customer.subscription.updated"] * 4
    row_ids = await _store_with_jobs(world, updates)

    counting = CountingGateway(settings)
    services = dataclasses.replace(world.services, stripe=counting)
    assert await stripe_events.process_event(services, row_ids[0]) is True
    assert counting.calls == ["GET /v1/subscriptions/{}"]
    for other in row_ids[1:]:  # their own jobs find them applied
        assert await stripe_events.process_event(services, other) is False
    assert len(counting.calls) == 1

    sub = await world.subscription(sub_id)
    assert sub is not None and sub.cancel_at_period_end is True
    async with world.services.db.session() as session:
        statuses = (
            await session.scalars(
                select(StripeEvent.status).where(StripeEvent.id.in_(row_ids)).order_by(StripeEvent.id)
            )
        ).all()
        audited = (
            await session.execute(
                select(AuditLog.details["event_row_id"].as_integer(), AuditLog.details["applied_with_event_row_id"])
                .where(AuditLog.action == "stripe.customer.subscription.updated")
                .where(AuditLog.details["event_row_id"].as_integer().in_(row_ids))
                .order_by(AuditLog.id)
            )
        ).all()
        waiting = (
            await session.scalars(
                text(
                    "SELECT (args->>'event_row_id')::bigint FROM procrastinate_jobs "
                    "WHERE task_name = :task AND status = 'todo' AND (args->>'event_row_id')::bigint = ANY(:ids)"
                ),
                {"task": stripe_events.APPLY_TASK, "ids": row_ids},
            )
        ).all()
    # the jobs of the events served along were deleted with the commit; the first one's job (run here by hand)
    # is the only one left
    assert list(waiting) == [row_ids[0]]
    assert statuses == ["handled"] * 4
    assert [r[0] for r in audited] == row_ids  # each event recorded exactly once
    assert [r[1] for r in audited] == [None, row_ids[0], row_ids[0], row_ids[0]]


class HeldCountingGateway(CountingGateway):
    """Also notes, for each call that reaches Stripe, how many of the job's database connections were out."""

    def __init__(self, settings: Settings, services: Services) -> None:
        super().__init__(settings)
        self.services = services
        self.held: list[int] = []

    async def _live(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> dict[str, Any] | bytes | str:
        self.held.append(self.services.db.connections_in_use())
        return await super()._live(fn, *args, **kwargs)


async def _renewal_invoice_event(world: World, event_type: str, *, card: str | None = None) -> dict[str, Any]:
    customer = await world.customer()
    checkout = await world.subscribe(customer, await world.plan())
    await world.apply_all(await world.events())
    if card is not None:
        sub = await world.subscription(checkout["subscription"])
        assert sub is not None
        await world.set_card(str(checkout["customer"]), card)
    seen = len(await world.events())
    await world.advance(31)
    [renewal] = [e for e in await world.events(after=seen) if e["type"] == event_type]
    return renewal


async def _invoice_row(world: World, stripe_invoice_id: str) -> Invoice | None:
    async with world.services.db.session() as session:
        found: Invoice | None = await session.scalar(
            select(Invoice).where(Invoice.stripe_invoice_id == stripe_invoice_id)
        )
        return found


async def _one_transaction(world: World, settings: Settings, renewal: dict[str, Any]) -> HeldCountingGateway:
    """Apply the event as its job does; assert it read Stripe with no connection out and ran one transaction."""
    [row_id] = await _store(world, [renewal])
    counting = HeldCountingGateway(settings, world.services)
    services = dataclasses.replace(world.services, stripe=counting)
    begun: list[int] = []

    def begin(conn: Any) -> None:
        begun.append(1)

    engine = world.services.db.engine.sync_engine
    sa_event.listen(engine, "begin", begin)
    try:
        assert await stripe_events.process_event(services, row_id) is True
    finally:
        sa_event.remove(engine, "begin", begin)
    # the read of the event (fetch ticket, pending twins), then one transaction that applies it: no second attempt
    # for a read the first one lacked, and every Stripe read made while no connection of ours was out
    assert len(begun) == 2
    assert counting.held == [0] * len(counting.calls)
    row = await world.event_row(renewal["id"])
    assert row is not None and row.status == "handled"
    return counting


async def test_a_renewal_paid_is_read_before_and_applied_in_one_transaction(world: World, settings: Settings) -> None:
    renewal = await _renewal_invoice_event(world, "invoice.paid")
    counting = await _one_transaction(world, settings, renewal)
    assert sorted(counting.calls) == [
        "GET /v1/invoices/{}",
        "GET /v1/payment_intents/{}",
        "GET /v1/subscriptions/{}",
    ]
    inv = await _invoice_row(world, renewal["data"]["object"]["id"])
    assert inv is not None and inv.status == "paid" and inv.stripe_charge_id is not None


async def test_a_renewal_declined_is_read_before_and_applied_in_one_transaction(
    world: World, settings: Settings
) -> None:
    renewal = await _renewal_invoice_event(world, "invoice.payment_failed", card=FAILING_CARD)
    await _one_transaction(world, settings, renewal)
    inv = await _invoice_row(world, renewal["data"]["object"]["id"])
    assert inv is not None and inv.status == "payment_failed" and inv.last_payment_error

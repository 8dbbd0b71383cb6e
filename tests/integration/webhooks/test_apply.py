"""Each event type, applied from the sandbox's own events: what admins and end users then see."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from payment.models import AuditLog, CheckoutSession, utcnow
from payment.stripe.reader import ts
from tests.support.stripe import FAILING_CARD, GOOD_CARD, World


async def test_checkout_completed_links_customer_and_makes_the_subscription_live(world: World) -> None:
    plan = await world.plan()
    customer = await world.customer()
    checkout = await world.subscribe(customer, plan)
    async with world.services.db.transaction() as session:
        session.add(
            CheckoutSession(
                stripe_checkout_session_id=checkout["id"],
                customer_id=customer.id,
                plan_id=plan.id,
                app_id=(await _app_id(world)),
                url="http://x",
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
    completed = [e for e in await world.events() if e["type"] == "checkout.session.completed"]
    assert len(completed) == 1
    assert await world.apply(completed[0]) is True

    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.status == "active" and sub.source == "stripe"
    assert (sub.customer_id, sub.plan_id) == (customer.id, plan.id)
    assert sub.current_period_end is not None and sub.current_period_start is not None
    assert sub.current_period_end - sub.current_period_start >= timedelta(days=28)
    async with world.services.db.session() as session:
        linked = await session.get(type(customer), customer.id)
        assert linked is not None and linked.stripe_customer_id == checkout["customer"]
        row = await session.scalar(
            select(CheckoutSession).where(CheckoutSession.stripe_checkout_session_id == checkout["id"])
        )
        assert row is not None and row.status == "complete"
        audit = (
            await session.scalars(
                select(AuditLog.action).where(AuditLog.entity_type == "subscription", AuditLog.entity_id == str(sub.id))
            )
        ).all()
    assert "stripe.checkout.session.completed" in audit


async def _app_id(world: World) -> int:
    from tests.support import factories

    async with world.services.db.transaction() as session:
        app, _ = await factories.create_app(session)
        return app.id


async def test_invoice_paid_records_invoice_and_renewal_extends_period(world: World) -> None:
    plan = await world.plan(amount=29900)
    customer = await world.customer()
    checkout = await world.subscribe(customer, plan)
    await world.apply_all(await world.events())
    first = await world.subscription(checkout["subscription"])
    assert first is not None and first.current_period_end is not None
    seen = len(await world.events())

    await world.advance(31)
    renewal = [e for e in await world.events(after=seen) if e["type"] == "invoice.paid"]
    assert len(renewal) == 1
    await world.apply(renewal[0])

    renewed = await world.subscription(checkout["subscription"])
    assert renewed is not None and renewed.current_period_end is not None
    assert renewed.current_period_end > first.current_period_end
    invoices = await world.invoices(customer)
    assert [(i.status, i.amount_cents, i.currency) for i in invoices] == [("paid", 29900, "thb")] * 2
    latest = invoices[-1]
    assert latest.period_end == renewed.current_period_end and latest.subscription_id == renewed.id
    assert latest.paid_at is not None and latest.stripe_charge_id is not None


async def test_payment_failed_marks_past_due_and_records_the_attempt(world: World) -> None:
    plan = await world.plan()
    customer = await world.customer()
    checkout = await world.subscribe(customer, plan)
    await world.apply_all(await world.events())
    seen = len(await world.events())
    await world.set_card(checkout["customer"], FAILING_CARD)
    await world.advance(31)
    failed = [e for e in await world.events(after=seen) if e["type"] == "invoice.payment_failed"]
    assert len(failed) == 1
    await world.apply(failed[0])

    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.status == "past_due"
    invoice = (await world.invoices(customer))[-1]
    assert invoice.status == "payment_failed" and invoice.attempt_count == 1
    assert invoice.last_payment_error and "declined" in invoice.last_payment_error

    # the customer fixes the card; Stripe's retry succeeds
    seen = len(await world.events())
    await world.set_card(checkout["customer"], GOOD_CARD)
    await world.advance(4)
    await world.apply_all(await world.events(after=seen))
    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.status == "active"
    invoice = (await world.invoices(customer))[-1]
    assert invoice.status == "paid" and invoice.attempt_count == 2


async def test_subscription_updated_cancel_at_period_end_and_plan_change(world: World) -> None:
    plan = await world.plan(amount=29900)
    bigger = await world.plan(amount=59900)
    customer = await world.customer()
    checkout = await world.subscribe(customer, plan)
    await world.apply_all(await world.events())
    seen = len(await world.events())
    gateway = world.services.stripe
    current = await gateway.retrieve_subscription(checkout["subscription"])
    await gateway.update_subscription(
        current["id"],
        {
            "cancel_at_period_end": True,
            "items": [{"id": current["items"]["data"][0]["id"], "price": bigger.stripe_price_id}],
        },
    )
    updates = [e for e in await world.events(after=seen) if e["type"] == "customer.subscription.updated"]
    assert updates
    await world.apply_all(updates)

    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.cancel_at_period_end is True and sub.plan_id == bigger.id
    assert sub.status == "active" and sub.canceled_at is not None and sub.ended_at is None


async def test_subscription_deleted_cancels_and_ends(world: World) -> None:
    plan = await world.plan()
    customer = await world.customer()
    checkout = await world.subscribe(customer, plan)
    await world.apply_all(await world.events())
    seen = len(await world.events())
    await world.services.stripe.cancel_subscription(checkout["subscription"])
    deleted = [e for e in await world.events(after=seen) if e["type"] == "customer.subscription.deleted"]
    assert len(deleted) == 1
    await world.apply(deleted[0])

    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.status == "canceled"
    assert sub.ended_at == ts(deleted[0]["data"]["object"]["ended_at"]) and sub.canceled_at is not None


async def test_charge_refunded_reconciles_partial_then_full_refund(world: World) -> None:
    plan = await world.plan(amount=29900)
    customer = await world.customer()
    await world.subscribe(customer, plan)
    await world.apply_all(await world.events())
    invoice = (await world.invoices(customer))[0]
    assert invoice.stripe_charge_id is not None

    # an admin refund: our pending row first, then Stripe's charge.refunded confirms it
    refund = await world.services.stripe.create_refund({"charge": invoice.stripe_charge_id, "amount": 10000})
    from payment.models import Refund

    async with world.services.db.transaction() as session:
        session.add(
            Refund(
                invoice_id=invoice.id,
                amount_cents=10000,
                currency="thb",
                reason="goodwill",
                status="pending",
                stripe_refund_id=refund["id"],
                created_by="admin:1",
            )
        )
    seen = len(await world.events())
    await world.apply_all([e for e in await world.events(after=seen - 2) if e["type"] == "charge.refunded"])
    refunds = await world.refunds(customer)
    assert [(r.amount_cents, r.status, r.created_by, r.reason) for r in refunds] == [
        (10000, "succeeded", "admin:1", "goodwill")
    ]
    partial = (await world.invoices(customer))[0]
    assert (partial.status, partial.amount_refunded_cents) == ("partially_refunded", 10000)

    # the rest refunded from Stripe's dashboard: recorded too, so the books match Stripe
    seen = len(await world.events())
    await world.services.stripe.create_refund({"charge": invoice.stripe_charge_id})
    await world.apply_all([e for e in await world.events(after=seen) if e["type"] == "charge.refunded"])
    refunds = await world.refunds(customer)
    assert [(r.amount_cents, r.status) for r in refunds] == [(10000, "succeeded"), (19900, "succeeded")]
    full = (await world.invoices(customer))[0]
    assert (full.status, full.amount_refunded_cents) == ("refunded", 29900)


async def test_unknown_event_types_are_acknowledged_not_processed(world: World) -> None:
    customer = await world.customer()
    await world.services.stripe.create_customer({"email": customer.email})
    created = [e for e in await world.events() if e["type"] == "customer.created"]
    assert await world.apply(created[0]) is False
    row = await world.event_row(created[0]["id"])
    assert row is not None and row.status == "ignored" and row.handled_at is not None

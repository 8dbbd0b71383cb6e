"""Property: any order and any duplicates of a realistic event history give the natural order's final state.

The history is real: the sandbox runs subscribe, renew, fail, recover, plan change, cancel at period end, cancel and
refunds for two customers; hypothesis then shuffles and duplicates its events.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from sqlalchemy import func, select

from payment.bootstrap import build_services
from payment.config import Settings
from payment.models import AuditLog, Customer, StripeEvent
from payment.stripe import reader
from payment.stripe.handlers import HANDLED_TYPES
from tests.support.stripe import FAILING_CARD, GOOD_CARD, World

pytestmark = pytest.mark.slow


async def _history(world: World) -> tuple[list[dict[str, Any]], list[Customer]]:
    gateway = world.services.stripe
    plan, bigger = await world.plan(amount=29900), await world.plan(amount=59900)
    ann, bob = await world.customer(), await world.customer()
    ann_checkout = await world.subscribe(ann, plan)
    bob_checkout = await world.subscribe(bob, plan)
    await world.advance(31)  # both renew
    await world.set_card(ann_checkout["customer"], FAILING_CARD)
    await world.advance(31)  # ann's renewal fails: past_due; bob renews again
    await world.set_card(ann_checkout["customer"], GOOD_CARD)
    await world.advance(4)  # ann recovers on Stripe's retry
    bob_sub = await gateway.retrieve_subscription(bob_checkout["subscription"])
    await gateway.update_subscription(
        bob_sub["id"], {"items": [{"id": bob_sub["items"]["data"][0]["id"], "price": bigger.stripe_price_id}]}
    )
    await gateway.update_subscription(ann_checkout["subscription"], {"cancel_at_period_end": True})
    invoices = (await gateway.list_invoices({"customer": bob_checkout["customer"], "limit": 10}))["data"]
    first_paid = [i for i in invoices if i["status"] == "paid"][-1]
    paid_by = reader.payment_ids(await gateway.retrieve_invoice(first_paid["id"]))
    await gateway.create_refund({"payment_intent": paid_by.payment_intent_id, "amount": 5000})
    await world.control("POST", f"invoices/{first_paid['id']}/dashboard_refund")  # the rest, no metadata of ours
    await world.advance(31)  # ann's subscription ends at period end
    await gateway.cancel_subscription(bob_checkout["subscription"])
    history = [e for e in await world.events() if e["type"] in HANDLED_TYPES or e["type"] == "customer.created"]
    return history, [ann, bob]


async def _apply_in(
    world: World, events: list[dict[str, Any]], customers: list[Customer]
) -> tuple[dict[str, Any], int]:
    await world.forget(customers, [e["id"] for e in events])
    await world.apply_all(events)
    snapshot = await world.snapshot(customers)
    async with world.services.db.session() as session:
        rows = select(StripeEvent.id).where(StripeEvent.stripe_event_id.in_([e["id"] for e in events]))
        applied = await session.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.action.like("stripe.%"), AuditLog.details["event_row_id"].as_integer().in_(rows))
        )
    return snapshot, int(applied or 0)


def test_any_order_and_duplicates_give_the_natural_final_state(settings: Settings, sandbox: str) -> None:
    # hypothesis drives sync functions: run every example on one private loop so the connection pool is reused
    loop = asyncio.new_event_loop()
    services = build_services(settings)
    world = World(services, sandbox)
    try:
        events, customers = loop.run_until_complete(_history(world))
        handled = sum(1 for e in events if e["type"] in HANDLED_TYPES)
        assert {
            "checkout.session.completed",
            "customer.subscription.updated",
            "customer.subscription.deleted",
            "invoice.paid",
            "invoice.payment_failed",
            "charge.refunded",
        } <= {e["type"] for e in events}
        natural, applied = loop.run_until_complete(_apply_in(world, events, customers))
        assert applied == handled
        assert sorted(s[3] for s in natural["subscriptions"]) == ["canceled", "canceled"]
        assert any(i[3] == "refunded" for i in natural["invoices"])
        assert any(i[10] == 2 and i[12] for i in natural["invoices"])  # ann's failed-then-recovered renewal
        n = len(events)

        @settings_(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            order=st.permutations(range(n)),
            duplicates=st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n)), max_size=6),
        )
        def same_final_state(order: list[int], duplicates: list[tuple[int, int]]) -> None:
            sequence = [events[i] for i in order]
            for which, where in duplicates:
                sequence.insert(where, events[which])
            snapshot, applied_again = loop.run_until_complete(_apply_in(world, sequence, customers))
            assert snapshot == natural
            assert applied_again == handled  # each event applied exactly once; duplicates are no-ops

        same_final_state()
    finally:
        loop.run_until_complete(services.db.dispose())
        loop.close()

"""The statements a worker's job runs to apply an event as the worker benchmark's backlog does (a copy, with its own
event id, of a renewal's event already applied): the apply transaction is the worker's CPU cost per event."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event

from payment.jobs import stripe_events
from payment.stripe.inbox import store_event
from tests.support.stripe import World


async def _renewal(world: World) -> list[dict[str, Any]]:
    checkout = await world.subscribe(await world.customer(), await world.plan())
    await world.apply_all(await world.events())
    assert checkout["subscription"]
    seen = len(await world.events())
    await world.advance(31)
    history = await world.events(after=seen)
    await world.apply_all(history)
    return history


async def _statements(world: World, event: dict[str, Any]) -> list[str]:
    """The statements process_event runs for a copy of `event` with an event id of its own."""
    copy = {**event, "id": event["id"] + "_copy"}
    async with world.services.db.transaction() as session:
        row_id = (await store_event(session, copy)).id
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append(" ".join(statement.split()))

    engine = world.services.db.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", before)
    try:
        assert await stripe_events.process_event(world.services, row_id) is True
    finally:
        sa_event.remove(engine, "before_cursor_execute", before)
    print(f"== {event['type']}: {len(seen)}", *(s[:200] for s in seen), sep="\n")  # shown with -s
    return seen


async def test_a_subscription_update_and_a_paid_invoice_apply_in_few_statements(world: World) -> None:
    history = await _renewal(world)
    [updated] = [e for e in history if e["type"] == "customer.subscription.updated"][-1:]
    [paid] = [e for e in history if e["type"] == "invoice.paid"]
    sub_statements = await _statements(world, updated)
    inv_statements = await _statements(world, paid)
    # the read of the event; then the event row and the customer's lock, the subscription locked with its plan,
    # (the invoice locked,) each row updated, and at commit the audit rows' ids and lane, and their chained insert
    assert len(sub_statements) <= 7, sub_statements
    assert len(inv_statements) <= 9, inv_statements

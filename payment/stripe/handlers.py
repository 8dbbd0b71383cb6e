"""Stripe event type -> the one domain call that applies it, and the Stripe reads it needs.

Each call re-reads the object from Stripe and maps its *current* state (the payload gives only the id and must be
an object of the expected type), so the final state after any order and any number of duplicates equals the state
after the natural order, and an event rendered in another API version is applied all the same.

The worker makes those reads before its transaction (`prefetch`, on a recording gateway) and applies them from the
snapshot (a replaying gateway); a read `prefetch` did not foresee is made between two attempts of the transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from payment.dunning import card_retry
from payment.dunning import cases as dunning
from payment.errors import StripeError
from payment.invoices import stripe_sync as invoices
from payment.models import Customer, Plan
from payment.refunds import stripe_sync as refunds
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.stripe.reader import JSON
from payment.subscriptions import stripe_sync as subscriptions


@dataclass
class Applied:
    """What an event changed: the audit row's entity and details."""

    entity_type: str | None = None
    entity_id: object | None = None
    details: dict[str, Any] = field(default_factory=dict)


Apply = Callable[[AsyncSession, StripeGateway, JSON, datetime, str], Awaitable[Applied]]
Prefetch = Callable[[StripeGateway, JSON], Awaitable[None]]


async def _checkout(session: AsyncSession, gateway: StripeGateway, obj: JSON, at: datetime, actor: str) -> Applied:
    if not reader.checkout(obj).is_subscription:
        return Applied(details={"skipped": "not a subscription checkout"})
    current = await gateway.retrieve_checkout_session(str(obj["id"]))
    customer, sub = await subscriptions.upsert_from_checkout(session, gateway, current, actor=actor, event_at=at)
    if sub is None:
        return Applied("customer", customer.id, {"checkout_session": obj["id"]})
    return Applied("subscription", sub.id, {"checkout_session": obj["id"], "status": sub.status})


async def _subscription(session: AsyncSession, gateway: StripeGateway, obj: JSON, at: datetime, actor: str) -> Applied:
    current = await gateway.retrieve_subscription(str(obj["id"]))
    row, changes = await subscriptions.upsert_from_stripe(session, gateway, current, actor=actor, event_at=at)
    return Applied(
        "subscription",
        row.id,
        {"stripe_subscription_id": row.stripe_subscription_id, "status": row.status, "changes": changes.values},
    )


async def _trial_will_end(
    session: AsyncSession, gateway: StripeGateway, obj: JSON, at: datetime, actor: str
) -> Applied:
    """Three days before a trial ends: map the subscription and queue the end user's `trial_ending` notice, which
    says whether the card on file is charged or, with none, what Stripe does at the end."""
    current = await gateway.retrieve_subscription(str(obj["id"]))
    row, _ = await subscriptions.upsert_from_stripe(session, gateway, current, actor=actor, event_at=at)
    customer = await session.get_one(Customer, row.customer_id)
    plan = await session.get_one(Plan, row.plan_id)
    queued = await dunning.queue_trial_ending(
        session,
        row,
        customer,
        plan,
        card=await _has_payment_method(gateway, current),
        end_behavior=reader.trial_end_without_card(current) or plan.trial_end_behavior,
    )
    return Applied("subscription", row.id, {"stripe_subscription_id": row.stripe_subscription_id, "notice": queued})


async def _has_payment_method(gateway: StripeGateway, sub: JSON) -> bool:
    """Whether Stripe has something to charge when the trial ends: the subscription's default payment method or
    source, else the customer's default for invoices or default source."""
    if reader.subscription_payment_method_id(sub) or reader.id_of(sub.get("default_source")):
        return True
    customer_id = reader.id_of(sub.get("customer"))
    if customer_id is None:
        return False
    cust = await gateway.retrieve_customer(customer_id)
    return bool(reader.customer_payment_method_id(cust) or reader.customer_default_source(cust))


async def _schedule(session: AsyncSession, gateway: StripeGateway, obj: JSON, at: datetime, actor: str) -> Applied:
    """A schedule changed (created, phases updated, released, canceled): map its subscription as it is now."""
    current = await gateway.retrieve_subscription_schedule(str(obj["id"]))
    sub_id = reader.id_of(current.get("subscription")) or reader.id_of(current.get("released_subscription"))
    if sub_id is None:
        return Applied(details={"skipped": f"schedule {obj['id']} manages no subscription"})
    return await _subscription(session, gateway, {"id": sub_id}, at, actor)


async def _invoice(session: AsyncSession, gateway: StripeGateway, obj: JSON, at: datetime, actor: str) -> Applied:
    row, changes = await invoices.apply_current(session, gateway, str(obj["id"]), actor=actor, event_at=at)
    return Applied(
        "invoice",
        row.id,
        {
            "stripe_invoice_id": row.stripe_invoice_id,
            "status": row.status,
            "amount_cents": row.amount_cents,
            "currency": row.currency,
            "attempt_count": row.attempt_count,
            "changes": changes.values,
        },
    )


async def _charge(session: AsyncSession, gateway: StripeGateway, obj: JSON, at: datetime, actor: str) -> Applied:
    current = await gateway.retrieve_charge(str(obj["id"]))
    invoice = await refunds.reconcile_charge(session, gateway, current, actor=actor, event_at=at)
    if invoice is None:
        return Applied(details={"skipped": f"no invoice of ours was paid by charge {obj['id']}"})
    return Applied(
        "invoice",
        invoice.id,
        {
            "stripe_charge_id": obj["id"],
            "status": invoice.status,
            "amount_refunded_cents": invoice.amount_refunded_cents,
        },
    )


async def _customer(session: AsyncSession, gateway: StripeGateway, obj: JSON, at: datetime, actor: str) -> Applied:
    # the portal's card update: a new invoice_settings.default_payment_method retries open failed invoices at once;
    # most customer.updated events (checkout, other customers of the account) concern no open case of ours
    if not await card_retry.may_retry(session, str(obj["id"])):
        return Applied(details={"skipped": "no open dunning case for this customer"})
    current = await gateway.retrieve_customer(str(obj["id"]))
    queued = await card_retry.card_updated(session, current, actor=actor)
    return Applied(details={"stripe_customer_id": obj["id"], "card_retries_queued": queued})


async def _fetch_checkout(gateway: StripeGateway, obj: JSON) -> None:
    if reader.checkout(obj).is_subscription:
        current = await gateway.retrieve_checkout_session(str(obj["id"]))
        subscription_id = reader.checkout(current).subscription_id
        if subscription_id:
            await gateway.retrieve_subscription(subscription_id)


async def _fetch_subscription(gateway: StripeGateway, obj: JSON) -> None:
    await gateway.retrieve_subscription(str(obj["id"]))


async def _fetch_trial(gateway: StripeGateway, obj: JSON) -> None:
    await _has_payment_method(gateway, await gateway.retrieve_subscription(str(obj["id"])))


async def _fetch_schedule(gateway: StripeGateway, obj: JSON) -> None:
    current = await gateway.retrieve_subscription_schedule(str(obj["id"]))
    if sub_id := reader.id_of(current.get("subscription")) or reader.id_of(current.get("released_subscription")):
        await gateway.retrieve_subscription(sub_id)


async def _fetch_invoice(gateway: StripeGateway, obj: JSON) -> None:
    # an invoice's subscription never changes: both reads at once, from the id in the event; then what mapping the
    # invoice reads besides (its payment intent), so the transaction runs once and waits for nothing
    async def invoice() -> None:
        await invoices.read_ahead(gateway, await gateway.retrieve_invoice(str(obj["id"])))

    reads: list[Awaitable[Any]] = [invoice()]
    if subscription_id := reader.invoice_subscription_id(obj):
        reads.append(gateway.retrieve_subscription(subscription_id))
    await asyncio.gather(*reads)


async def _fetch_charge(gateway: StripeGateway, obj: JSON) -> None:
    current = await gateway.retrieve_charge(str(obj["id"]))
    if reader.charge(current).refunds is None:
        await gateway.list_refunds({"charge": str(obj["id"]), "limit": 100})


async def _nothing(gateway: StripeGateway, obj: JSON) -> None:
    return None


@dataclass(frozen=True)
class Handler:
    """The Stripe object type an event of this type carries, the domain call that applies it, and the reads that
    call will make (made first, outside any transaction; one it did not foresee is made when the call asks)."""

    object_type: str
    apply: Apply
    prefetch: Prefetch = _nothing


async def prefetch(handler: Handler, gateway: StripeGateway, obj: JSON) -> None:
    """The handler's reads on a recording gateway; an error stays in the snapshot, met again where apply reads."""
    with contextlib.suppress(StripeError):
        await handler.prefetch(gateway, obj)


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": Handler("checkout.session", _checkout, _fetch_checkout),
    "customer.subscription.created": Handler("subscription", _subscription, _fetch_subscription),
    "customer.subscription.updated": Handler("subscription", _subscription, _fetch_subscription),
    "customer.subscription.deleted": Handler("subscription", _subscription, _fetch_subscription),
    "invoice.paid": Handler("invoice", _invoice, _fetch_invoice),
    "invoice.payment_failed": Handler("invoice", _invoice, _fetch_invoice),
    "charge.refunded": Handler("charge", _charge, _fetch_charge),
    # most customer.updated events concern no open dunning case and read nothing; the few that do read inside
    "customer.updated": Handler("customer", _customer),
    "customer.subscription.paused": Handler("subscription", _subscription, _fetch_subscription),
    "customer.subscription.trial_will_end": Handler("subscription", _trial_will_end, _fetch_trial),
    "subscription_schedule.created": Handler("subscription_schedule", _schedule, _fetch_schedule),
    "subscription_schedule.updated": Handler("subscription_schedule", _schedule, _fetch_schedule),
    "subscription_schedule.released": Handler("subscription_schedule", _schedule, _fetch_schedule),
    "subscription_schedule.canceled": Handler("subscription_schedule", _schedule, _fetch_schedule),
    "subscription_schedule.completed": Handler("subscription_schedule", _schedule, _fetch_schedule),
    "invoice.voided": Handler("invoice", _invoice, _fetch_invoice),
}
HANDLED_TYPES = tuple(HANDLERS)


def same_reads(event_type: str) -> tuple[str, ...]:
    """The event types applied by the same call as this one: pending events of these types about the same object
    are all served by one snapshot of it."""
    handler = HANDLERS.get(event_type)
    if handler is None:
        return ()
    return tuple(t for t, h in HANDLERS.items() if h.apply is handler.apply and h.object_type == handler.object_type)


def lock_key(event: JSON) -> str:
    """Events about one Stripe customer are applied one at a time (a fetch-then-write is not overtaken)."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    obj = obj if isinstance(obj, dict) else {}
    return reader.customer_id(obj) or reader.id_of(obj.get("id")) or str(event.get("id"))

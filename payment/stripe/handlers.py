"""Stripe event type -> the one domain call that applies it.

Each call re-reads the object from Stripe and maps its *current* state (the payload gives only the id and must be
an object of the expected type), so the final state after any order and any number of duplicates equals the state
after the natural order, and an event rendered in another API version is applied all the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from payment.invoices import stripe_sync as invoices
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


@dataclass(frozen=True)
class Handler:
    """The Stripe object type an event of this type carries, and the domain call that applies it."""

    object_type: str
    apply: Apply


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": Handler("checkout.session", _checkout),
    "customer.subscription.created": Handler("subscription", _subscription),
    "customer.subscription.updated": Handler("subscription", _subscription),
    "customer.subscription.deleted": Handler("subscription", _subscription),
    "subscription_schedule.created": Handler("subscription_schedule", _schedule),
    "subscription_schedule.updated": Handler("subscription_schedule", _schedule),
    "subscription_schedule.released": Handler("subscription_schedule", _schedule),
    "subscription_schedule.canceled": Handler("subscription_schedule", _schedule),
    "subscription_schedule.completed": Handler("subscription_schedule", _schedule),
    "invoice.paid": Handler("invoice", _invoice),
    "invoice.payment_failed": Handler("invoice", _invoice),
    "invoice.voided": Handler("invoice", _invoice),
    "charge.refunded": Handler("charge", _charge),
}
HANDLED_TYPES = tuple(HANDLERS)


def lock_key(event: JSON) -> str:
    """Events about one Stripe customer are applied one at a time (a fetch-then-write is not overtaken)."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    obj = obj if isinstance(obj, dict) else {}
    return reader.customer_id(obj) or reader.id_of(obj.get("id")) or str(event.get("id"))

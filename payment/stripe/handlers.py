"""One handler per Stripe event type we act on.

Each handler re-reads the object from Stripe and applies its *current* state (payloads are only used for ids), so
the final state after any order and any number of duplicates equals the state after the natural order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.models import CheckoutSession, Customer, Invoice, Plan
from payment.stripe import sync
from payment.stripe.gateway import StripeGateway
from payment.stripe.sync import JSON, SyncError, id_of


@dataclass
class Applied:
    """What an event changed: the audit row's entity and details."""

    entity_type: str | None = None
    entity_id: object | None = None
    details: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[AsyncSession, StripeGateway, JSON, datetime, str], Awaitable[Applied]]


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def _subscription(session: AsyncSession, gateway: StripeGateway, subscription_id: str, event_at: datetime,
                        actor: str, *, customer: Customer | None = None, plan_hint: Plan | None = None
                        ) -> Applied:
    current = await gateway.retrieve_subscription(subscription_id)
    row, changes = await sync.sync_subscription(session, gateway, current, actor=actor, event_at=event_at,
                                                customer=customer, plan_hint=plan_hint)
    return Applied("subscription", row.id, {"stripe_subscription_id": subscription_id, "status": row.status,
                                            "changes": changes.values})


async def checkout_completed(session: AsyncSession, gateway: StripeGateway, obj: JSON, event_at: datetime,
                             actor: str) -> Applied:
    """Link the Stripe customer to ours, close our checkout record and make the subscription live."""
    if obj.get("mode") not in (None, "subscription"):
        return Applied(details={"skipped": "not a subscription checkout"})
    metadata = obj.get("metadata") or {}
    ref = _as_int(obj.get("client_reference_id")) or _as_int(metadata.get("customer_id"))
    customer = await session.get(Customer, ref) if ref is not None else None
    stripe_customer = id_of(obj.get("customer"))
    customer = customer or await sync.customer_by_stripe_id(session, stripe_customer)
    if customer is None:
        raise SyncError(f"Checkout Session {obj['id']} names no customer of ours.")
    await sync.link_customer(session, customer, stripe_customer, actor=actor)
    checkout: CheckoutSession | None = await session.scalar(
        select(CheckoutSession).where(CheckoutSession.stripe_checkout_session_id == obj["id"]).with_for_update())
    if checkout is not None and checkout.status != "complete":
        checkout.status = "complete"
    plan_ref = _as_int(metadata.get("plan_id"))
    plan_hint = await session.get(Plan, plan_ref) if plan_ref is not None else None
    subscription_id = id_of(obj.get("subscription"))
    if subscription_id is None:
        return Applied("customer", customer.id, {"checkout_session": obj["id"]})
    applied = await _subscription(session, gateway, subscription_id, event_at, actor, customer=customer,
                                  plan_hint=plan_hint)
    applied.details["checkout_session"] = obj["id"]
    return applied


async def subscription_changed(session: AsyncSession, gateway: StripeGateway, obj: JSON, event_at: datetime,
                               actor: str) -> Applied:
    """Status, period, cancel at period end, plan change by price, cancellation: Stripe's current state."""
    return await _subscription(session, gateway, str(obj["id"]), event_at, actor)


async def _invoice(session: AsyncSession, gateway: StripeGateway, invoice_id: str, event_at: datetime,
                   actor: str) -> tuple[Invoice, Applied]:
    current = await gateway.retrieve_invoice(invoice_id)
    subscription_id = sync.subscription_id_of_invoice(current)
    if subscription_id:
        # the renewal's period and a failed payment's past_due live on the subscription
        await _subscription(session, gateway, subscription_id, event_at, actor)
    row, changes = await sync.sync_invoice(session, gateway, current, actor=actor, event_at=event_at)
    return row, Applied("invoice", row.id, {"stripe_invoice_id": invoice_id, "status": row.status,
                                            "amount_cents": row.amount_cents, "currency": row.currency,
                                            "attempt_count": row.attempt_count, "changes": changes.values})


async def invoice_changed(session: AsyncSession, gateway: StripeGateway, obj: JSON, event_at: datetime,
                          actor: str) -> Applied:
    """invoice.paid / invoice.payment_failed: record the invoice and the subscription as Stripe has them now."""
    _, applied = await _invoice(session, gateway, str(obj["id"]), event_at, actor)
    return applied


async def _invoice_for_charge(session: AsyncSession, gateway: StripeGateway, charge: JSON, event_at: datetime,
                              actor: str) -> Invoice | None:
    invoice = await sync.invoice_for_charge(session, charge)
    if invoice is not None or not charge.get("customer"):
        return invoice
    # The refund may arrive before invoice.paid: find the invoice on Stripe and record it first.
    intent = id_of(charge.get("payment_intent"))
    listing = await gateway.list_invoices({"customer": id_of(charge["customer"]), "limit": 100})
    for candidate in listing.get("data") or []:
        charge_id, intent_id = sync.payment_ids(candidate)
        if charge_id == charge["id"] or (intent and intent_id == intent):
            invoice, _ = await _invoice(session, gateway, str(candidate["id"]), event_at, actor)
            return invoice
    return None


async def charge_refunded(session: AsyncSession, gateway: StripeGateway, obj: JSON, event_at: datetime,
                          actor: str) -> Applied:
    """Reconcile the charge's refunds with ours; the invoice becomes refunded or partially refunded."""
    charge = await gateway.retrieve_charge(str(obj["id"]))
    refunds = charge.get("refunds") or {}
    if not refunds or refunds.get("has_more"):
        # current API: a charge no longer embeds its refunds
        charge["refunds"] = await gateway.list_refunds({"charge": charge["id"], "limit": 100})
    invoice = await _invoice_for_charge(session, gateway, charge, event_at, actor)
    if invoice is None:
        return Applied(details={"skipped": f"no invoice of ours was paid by charge {charge['id']}"})
    await sync.reconcile_charge_refunds(session, charge, actor=actor)
    return Applied("invoice", invoice.id, {"stripe_charge_id": charge["id"], "status": invoice.status,
                                           "amount_refunded_cents": invoice.amount_refunded_cents})


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": checkout_completed,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_changed,
    "invoice.paid": invoice_changed,
    "invoice.payment_failed": invoice_changed,
    "charge.refunded": charge_refunded,
}
HANDLED_TYPES = tuple(HANDLERS)


def lock_key(event: JSON) -> str:
    """Events about one Stripe customer are applied one at a time (a fetch-then-write is not overtaken)."""
    obj = (event.get("data") or {}).get("object") or {}
    return id_of(obj.get("customer")) or id_of(obj.get("id")) or str(event.get("id"))

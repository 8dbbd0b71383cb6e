"""Stripe objects -> our rows: the only writer of Stripe-sourced subscription, invoice and refund state.

Every function here maps the *current* state of a Stripe object (fetched by the caller) onto our row, so applying
it again, or after a newer object, gives the same result: that is what makes webhook processing order-independent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit import service as audit
from payment.errors import PaymentError
from payment.models import Customer, Invoice, Plan, Refund, Subscription
from payment.models.base import CURRENCIES
from payment.models.billing import REFUND_STATUSES, SUBSCRIPTION_STATUSES
from payment.stripe.gateway import StripeGateway
from payment.subscriptions.paid_extension import as_seen_by_us

JSON = dict[str, Any]
# Once an invoice is refunded, a later (re)sync of the paid invoice must not put it back to "paid".
_REFUND_STATUSES = ("refunded", "partially_refunded")


class SyncError(PaymentError):
    """A Stripe object cannot be mapped onto our rows (yet): the event is retried and, if it keeps failing,
    shown to admins with this message."""

    status_code = 422
    code = "stripe_sync"


@dataclass
class Changes:
    """What one sync changed, for the audit row."""

    values: dict[str, Any] = field(default_factory=dict)

    def set(self, row: object, name: str, value: Any) -> None:
        old = getattr(row, name)
        if old != value:
            setattr(row, name, value)
            self.values[name] = _jsonable(value)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def ts(value: Any) -> datetime | None:
    """A Stripe unix timestamp as an aware UTC datetime."""
    if value is None or value == "":
        return None
    return datetime.fromtimestamp(int(value), UTC)


def id_of(value: Any) -> str | None:
    """An id from a field that is either an id or an expanded object."""
    if isinstance(value, dict):
        found = value.get("id")
        return str(found) if found else None
    return str(value) if value else None


def subscription_id_of_invoice(inv: JSON) -> str | None:
    """Current API: parent.subscription_details.subscription; older API: top-level subscription."""
    parent = inv.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return id_of(details.get("subscription")) or id_of(inv.get("subscription"))


def _first_item(sub: JSON) -> JSON:
    items = (sub.get("items") or {}).get("data") or []
    return dict(items[0]) if items else {}


def price_id_of(sub: JSON) -> str | None:
    price = _first_item(sub).get("price") or (sub.get("plan") or {})
    return id_of(price)


def period_of(sub: JSON) -> tuple[datetime | None, datetime | None]:
    """Current API keeps periods on the items; older API on the subscription."""
    item = _first_item(sub)
    start = item.get("current_period_start", sub.get("current_period_start"))
    end = item.get("current_period_end", sub.get("current_period_end"))
    return ts(start), ts(end)


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def customer_by_stripe_id(session: AsyncSession, stripe_customer_id: str | None) -> Customer | None:
    if not stripe_customer_id:
        return None
    found: Customer | None = await session.scalar(
        select(Customer).where(Customer.stripe_customer_id == stripe_customer_id))
    return found


async def link_customer(session: AsyncSession, customer: Customer, stripe_customer_id: str | None, *,
                        actor: str) -> None:
    """Remember the customer's Stripe customer id the first time Stripe tells us; never re-point it."""
    if not stripe_customer_id or customer.stripe_customer_id == stripe_customer_id:
        return
    if customer.stripe_customer_id is not None:
        return  # a second Stripe customer for the same user: keep the first link, the subscription still maps
    other = await customer_by_stripe_id(session, stripe_customer_id)
    if other is not None and other.id != customer.id:
        raise SyncError(f"Stripe customer {stripe_customer_id} is already linked to customer #{other.id}.")
    customer.stripe_customer_id = stripe_customer_id
    await audit.record(session, actor=actor, action="customer.stripe_linked", entity_type="customer",
                       entity_id=customer.id, details={"stripe_customer_id": stripe_customer_id})


async def _customer_from_checkout(session: AsyncSession, gateway: StripeGateway,
                                  subscription_id: str) -> Customer | None:
    """The subscription came from one of our Checkout Sessions: it names our customer."""
    listing = await gateway.list_checkout_sessions({"subscription": subscription_id, "limit": 3})
    for checkout in listing.get("data") or []:
        ref = _as_int(checkout.get("client_reference_id")) or _as_int((checkout.get("metadata") or {})
                                                                      .get("customer_id"))
        if ref is not None:
            customer: Customer | None = await session.get(Customer, ref)
            if customer is not None:
                return customer
    return None


async def resolve_customer(session: AsyncSession, gateway: StripeGateway, stripe_customer_id: str | None, *,
                           metadata: JSON | None = None, subscription_id: str | None = None,
                           actor: str) -> Customer | None:
    """Our customer for a Stripe customer: by the linked id, else by our id in metadata or in the Checkout
    Session that created the subscription (so events arriving before checkout.session.completed still map)."""
    customer = await customer_by_stripe_id(session, stripe_customer_id)
    if customer is not None:
        return customer
    ref = _as_int((metadata or {}).get("customer_id"))
    if ref is not None:
        customer = await session.get(Customer, ref)
    if customer is None and subscription_id:
        customer = await _customer_from_checkout(session, gateway, subscription_id)
    if customer is not None:
        await link_customer(session, customer, stripe_customer_id, actor=actor)
    return customer


async def plan_for(session: AsyncSession, price_id: str | None, metadata: JSON | None = None) -> Plan | None:
    """The plan sold at this Stripe price, else the plan named in metadata."""
    if price_id:
        plan: Plan | None = await session.scalar(select(Plan).where(Plan.stripe_price_id == price_id))
        if plan is not None:
            return plan
    ref = _as_int((metadata or {}).get("plan_id"))
    return await session.get(Plan, ref) if ref is not None else None


def _later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate > current else current


async def sync_subscription(session: AsyncSession, gateway: StripeGateway, sub: JSON, *, actor: str,
                            event_at: datetime | None = None, customer: Customer | None = None,
                            plan_hint: Plan | None = None) -> tuple[Subscription, Changes]:
    """Make our subscription row equal to Stripe's current subscription (status, plan by price, period,
    cancel at period end, cancellation), creating it the first time."""
    sub = as_seen_by_us(sub)
    stripe_id = str(sub["id"])
    row: Subscription | None = await session.scalar(
        select(Subscription).where(Subscription.stripe_subscription_id == stripe_id).with_for_update())
    plan = await plan_for(session, price_id_of(sub), sub.get("metadata"))
    plan = plan or plan_hint
    changes = Changes()
    status = str(sub.get("status") or "")
    if status not in SUBSCRIPTION_STATUSES:
        raise SyncError(f"Stripe subscription {stripe_id} has an unknown status {status!r}.")
    if row is None:
        customer = customer or await resolve_customer(
            session, gateway, id_of(sub.get("customer")), metadata=sub.get("metadata"), subscription_id=stripe_id,
            actor=actor)
        if customer is None:
            raise SyncError(f"No customer of ours matches Stripe subscription {stripe_id} "
                            f"(Stripe customer {id_of(sub.get('customer'))}).")
        if plan is None:
            raise SyncError(f"No plan has the Stripe price {price_id_of(sub)} of subscription {stripe_id}.")
        row = Subscription(customer_id=customer.id, plan_id=plan.id, status=status, source="stripe",
                           stripe_subscription_id=stripe_id)
        session.add(row)
        changes.values["created"] = True
    elif plan is not None:
        changes.set(row, "plan_id", plan.id)
    start, end = period_of(sub)
    changes.set(row, "status", status)
    changes.set(row, "current_period_start", start)
    changes.set(row, "current_period_end", end)
    changes.set(row, "cancel_at_period_end", bool(sub.get("cancel_at_period_end")))
    changes.set(row, "canceled_at", ts(sub.get("canceled_at")))
    changes.set(row, "ended_at", ts(sub.get("ended_at")))
    changes.set(row, "trial_end", ts(sub.get("trial_end")))
    row.last_stripe_event_at = _later(row.last_stripe_event_at, event_at)
    await session.flush()
    return row, changes


def _invoice_status(inv: JSON) -> str:
    status = str(inv.get("status") or "open")
    if status == "open" and int(inv.get("attempt_count") or 0) > 0:
        return "payment_failed"
    return status


def payment_ids(inv: JSON) -> tuple[str | None, str | None]:
    """(charge, payment_intent) of an invoice: older API fields, or the invoice payments of the current API."""
    charge, intent = id_of(inv.get("charge")), id_of(inv.get("payment_intent"))
    for payment in ((inv.get("payments") or {}).get("data") or []):
        detail = payment.get("payment") or {}
        charge = charge or id_of(detail.get("charge"))
        intent = intent or id_of(detail.get("payment_intent"))
    return charge, intent


def _service_period(inv: JSON) -> tuple[datetime | None, datetime | None]:
    """The period the invoice pays for: its line's period (Stripe's invoice period is the *previous* one)."""
    lines = (inv.get("lines") or {}).get("data") or []
    period = (lines[0].get("period") if lines else None) or {}
    return ts(period.get("start", inv.get("period_start"))), ts(period.get("end", inv.get("period_end")))


async def sync_invoice(session: AsyncSession, gateway: StripeGateway, inv: JSON, *, actor: str,
                       event_at: datetime | None = None) -> tuple[Invoice, Changes]:
    """Upsert our invoice from Stripe's current invoice (amount, currency, period, status, attempts); a refunded
    invoice stays refunded."""
    stripe_id = str(inv["id"])
    row: Invoice | None = await session.scalar(
        select(Invoice).where(Invoice.stripe_invoice_id == stripe_id).with_for_update())
    sub_id = subscription_id_of_invoice(inv)
    subscription: Subscription | None = None
    if sub_id:
        subscription = await session.scalar(select(Subscription).where(Subscription.stripe_subscription_id == sub_id))
    currency = str(inv.get("currency") or "").lower()
    if currency not in CURRENCIES:
        raise SyncError(f"Stripe invoice {stripe_id} is in {currency or 'no currency'}, which we do not bill in.")
    status = _invoice_status(inv)
    amount = int(inv.get("amount_paid") or 0) if status == "paid" else int(inv.get("amount_due") or 0)
    changes = Changes()
    if row is None:
        customer = await customer_by_stripe_id(session, id_of(inv.get("customer")))
        customer_id = customer.id if customer else subscription.customer_id if subscription else None
        if customer_id is None:
            raise SyncError(f"No customer of ours matches Stripe invoice {stripe_id}.")
        row = Invoice(customer_id=customer_id, source="stripe", stripe_invoice_id=stripe_id, amount_cents=amount,
                      currency=currency, status=status, payment_method="card", amount_refunded_cents=0,
                      attempt_count=0)
        session.add(row)
        changes.values["created"] = True
    if row.amount_refunded_cents > 0 and status == "paid":
        status = "refunded" if row.amount_refunded_cents >= amount else "partially_refunded"
    charge_id, intent_id = payment_ids(inv)
    if status in ("paid", *_REFUND_STATUSES) and charge_id is None and intent_id:
        charge_id = id_of((await gateway.retrieve_payment_intent(intent_id)).get("latest_charge"))
    start, end = _service_period(inv)
    changes.set(row, "subscription_id", subscription.id if subscription else row.subscription_id)
    changes.set(row, "amount_cents", max(amount, row.amount_refunded_cents))
    changes.set(row, "currency", currency)
    changes.set(row, "status", status)
    changes.set(row, "paid_at", ts((inv.get("status_transitions") or {}).get("paid_at")))
    changes.set(row, "period_start", start)
    changes.set(row, "period_end", end)
    changes.set(row, "attempt_count", int(inv.get("attempt_count") or 0))
    changes.set(row, "stripe_charge_id", charge_id or row.stripe_charge_id)
    changes.set(row, "stripe_payment_intent_id", intent_id or row.stripe_payment_intent_id)
    if row.attempt_count > 1 or status == "payment_failed":
        error = await _payment_error(gateway, intent_id)
        if error:
            changes.set(row, "last_payment_error", error[:1000])
    row.last_stripe_event_at = _later(row.last_stripe_event_at, event_at)
    await session.flush()
    return row, changes


async def _payment_error(gateway: StripeGateway, intent_id: str | None) -> str | None:
    if not intent_id:
        return None
    error = (await gateway.retrieve_payment_intent(intent_id)).get("last_payment_error") or {}
    message = error.get("message")
    return str(message) if message else None


async def invoice_for_charge(session: AsyncSession, charge: JSON) -> Invoice | None:
    """Our invoice paid by this charge, by charge id or payment intent id."""
    conditions = [Invoice.stripe_charge_id == str(charge["id"])]
    intent = id_of(charge.get("payment_intent"))
    if intent:
        conditions.append(Invoice.stripe_payment_intent_id == intent)
    found: Invoice | None = await session.scalar(select(Invoice).where(or_(*conditions)).with_for_update())
    return found


async def reconcile_charge_refunds(session: AsyncSession, charge: JSON, *, actor: str) -> Invoice | None:
    """Make our refunds and the invoice's refunded amount equal to the charge's refunds on Stripe (upsert by
    Stripe refund id, or by our refund id in the refund's metadata); None when no invoice of ours was paid by it."""
    invoice = await invoice_for_charge(session, charge)
    if invoice is None:
        return None
    refunds = (charge.get("refunds") or {}).get("data") or []
    changed: list[str] = []
    for refund in refunds:
        row = await _refund_row(session, invoice, refund, actor=actor)
        status = str(refund.get("status") or "pending")
        changes = Changes()
        changes.set(row, "status", status if status in REFUND_STATUSES else "pending")
        changes.set(row, "succeeded_at", ts(refund.get("created")) if status == "succeeded" else None)
        if status == "failed":
            changes.set(row, "failure_reason", str(refund.get("failure_reason") or "failed")[:1000])
        if changes.values:
            changed.append(str(refund["id"]))
    refunded = min(int(charge.get("amount_refunded") or 0), invoice.amount_cents)
    before = (invoice.amount_refunded_cents, invoice.status)
    invoice.amount_refunded_cents = refunded
    if refunded > 0 and invoice.status in ("paid", *_REFUND_STATUSES):
        invoice.status = "refunded" if refunded >= invoice.amount_cents else "partially_refunded"
    await session.flush()
    if changed or before != (invoice.amount_refunded_cents, invoice.status):
        await audit.record(session, actor=actor, action="invoice.refunds_reconciled", entity_type="invoice",
                           entity_id=invoice.id, details={"stripe_charge_id": charge["id"], "refunds": changed,
                                                          "amount_refunded_cents": refunded,
                                                          "status": invoice.status})
    return invoice


async def _refund_row(session: AsyncSession, invoice: Invoice, refund: JSON, *, actor: str) -> Refund:
    stripe_id = str(refund["id"])
    row: Refund | None = await session.scalar(
        select(Refund).where(Refund.stripe_refund_id == stripe_id).with_for_update())
    if row is not None:
        return row
    ours = _as_int((refund.get("metadata") or {}).get("refund_id"))
    if ours is not None:
        row = await session.scalar(select(Refund).where(Refund.id == ours, Refund.invoice_id == invoice.id,
                                                        Refund.stripe_refund_id.is_(None)).with_for_update())
        if row is not None:
            row.stripe_refund_id = stripe_id
            return row
    # issued outside our admin (Stripe dashboard): record it so the books match Stripe
    row = Refund(invoice_id=invoice.id, amount_cents=int(refund["amount"]), currency=invoice.currency,
                 reason=str(refund.get("reason") or "")[:2000], status="pending", stripe_refund_id=stripe_id,
                 created_by=actor)
    session.add(row)
    await session.flush()
    return row

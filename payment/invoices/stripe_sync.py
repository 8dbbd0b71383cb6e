"""A Stripe invoice -> our invoice row: status rules, amounts, the period paid for, and the payment behind it.

Since 2025-03-31.basil an invoice no longer names its charge or payment intent; they come from its invoice
payments (expanded `invoice.payments`, which the gateway asks for, or `GET /v1/invoice_payments?invoice=`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.models import Invoice, Subscription
from payment.models.base import CURRENCIES
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.stripe.reader import JSON
from payment.stripe.sync import Changes, SyncError, later, older_than_stored
from payment.subscriptions import stripe_sync as subscriptions_sync

# Once an invoice is refunded, a later (re)sync of the paid invoice must not put it back to "paid".
REFUNDED_STATUSES = ("refunded", "partially_refunded")
PAID_STATUSES = ("paid", *REFUNDED_STATUSES)


async def _payments(gateway: StripeGateway, inv: JSON) -> list[JSON] | None:
    """The invoice payments when the invoice object does not carry them (not expanded, and not pre-basil)."""
    if isinstance(inv.get("payments"), dict) or "charge" in inv or "payment_intent" in inv:
        return None
    return reader.list_data(await gateway.list_invoice_payments({"invoice": str(inv["id"]), "limit": 10}))


def _failed(state: reader.InvoiceState) -> bool:
    return state.status == "payment_failed" or state.attempt_count > 1


def _needs_intent(state: reader.InvoiceState, ids: reader.PaymentIds) -> bool:
    """Whether mapping the invoice reads its payment intent: for the charge of a paid invoice whose payments do not
    name it, and for the decline of a failed payment."""
    return ids.payment_intent_id is not None and (
        (ids.charge_id is None and state.status in PAID_STATUSES) or _failed(state)
    )


async def read_ahead(gateway: StripeGateway, inv: JSON) -> None:
    """The reads `upsert_from_stripe` makes for this invoice besides the invoice itself (its invoice payments when
    the invoice does not carry them, its payment intent), so the worker makes them before its transaction."""
    ids = reader.payment_ids(inv, await _payments(gateway, inv))
    if ids.payment_intent_id is not None and _needs_intent(reader.invoice(inv), ids):
        await gateway.retrieve_payment_intent(ids.payment_intent_id)


def status_with_refunds(status: str, amount_cents: int, amount_refunded_cents: int) -> str:
    """A paid invoice with refunds is (partially) refunded, whatever Stripe's invoice status says."""
    if amount_refunded_cents > 0 and status in PAID_STATUSES:
        return "refunded" if amount_refunded_cents >= amount_cents else "partially_refunded"
    return status


async def upsert_from_stripe(
    session: AsyncSession,
    gateway: StripeGateway,
    inv: JSON,
    *,
    actor: str,
    event_at: datetime | None = None,
    subscription_hint: Subscription | None = None,
) -> tuple[Invoice, Changes]:
    """Make our invoice equal to Stripe's (amount, currency, period paid for, status, attempts, the charge and
    payment intent behind it, the decline message of a failed payment), creating it the first time; a refunded
    invoice stays refunded. A snapshot older than the one the row shows changes nothing. `subscription_hint`: our
    row of the invoice's subscription when the caller has it already (not looked up again)."""
    state = reader.invoice(inv)
    row: Invoice | None = await session.scalar(
        select(Invoice).where(Invoice.stripe_invoice_id == state.id).with_for_update()
    )
    if row is not None and older_than_stored(gateway, row.stripe_fetch_ticket):
        row.last_stripe_event_at = later(row.last_stripe_event_at, event_at)
        return row, Changes()  # a snapshot asked for later is applied already
    subscription: Subscription | None = None
    if subscription_hint is not None and subscription_hint.stripe_subscription_id == state.subscription_id:
        subscription = subscription_hint
    elif state.subscription_id:
        subscription = await session.scalar(
            select(Subscription).where(Subscription.stripe_subscription_id == state.subscription_id)
        )
    if state.currency not in CURRENCIES:
        raise SyncError(f"Stripe invoice {state.id} is in {state.currency or 'no currency'}, which we do not bill in.")
    amount = state.amount_paid if state.status == "paid" else state.amount_due
    changes = Changes()
    if row is None:
        customer = await subscriptions_sync.customer_by_stripe_id(session, state.stripe_customer_id)
        customer_id = customer.id if customer else subscription.customer_id if subscription else None
        if customer_id is None:
            raise SyncError(f"No customer of ours matches Stripe invoice {state.id}.")
        row = Invoice(
            customer_id=customer_id,
            source="stripe",
            stripe_invoice_id=state.id,
            amount_cents=amount,
            currency=state.currency,
            status=state.status,
            payment_method="card",
            amount_refunded_cents=0,
            attempt_count=0,
        )
        session.add(row)
        changes.values["created"] = True
    ids = reader.payment_ids(inv, await _payments(gateway, inv))
    charge_id = ids.charge_id
    failed = _failed(state)
    intent: JSON | None = None
    if ids.payment_intent_id and _needs_intent(state, ids):
        intent = await gateway.retrieve_payment_intent(ids.payment_intent_id)
        if state.status in PAID_STATUSES:
            charge_id = charge_id or reader.latest_charge_id(intent)
    changes.set(row, "subscription_id", subscription.id if subscription else row.subscription_id)
    changes.set(row, "amount_cents", max(amount, row.amount_refunded_cents))
    changes.set(row, "currency", state.currency)
    changes.set(row, "status", status_with_refunds(state.status, row.amount_cents, row.amount_refunded_cents))
    changes.set(row, "paid_at", state.paid_at)
    changes.set(row, "period_start", state.period_start)
    changes.set(row, "period_end", state.period_end)
    changes.set(row, "subtotal_cents", state.subtotal)
    changes.set(row, "discount_cents", state.discount)
    changes.set(row, "attempt_count", state.attempt_count)
    retry_at = state.next_payment_attempt if state.status == "payment_failed" else None
    changes.set(row, "next_payment_attempt_at", retry_at)
    changes.set(row, "stripe_charge_id", charge_id or row.stripe_charge_id)
    changes.set(row, "stripe_payment_intent_id", ids.payment_intent_id or row.stripe_payment_intent_id)
    decline = reader.decline_message(intent) if intent is not None and failed else None
    if decline:
        changes.set(row, "last_payment_error", decline)
    if intent is not None and failed and state.status == "payment_failed":
        declined_card = reader.failed_payment_method_id(intent) or row.failed_payment_method_id
        changes.set(row, "failed_payment_method_id", declined_card)
    row.last_stripe_event_at = later(row.last_stripe_event_at, event_at)
    row.stripe_fetch_ticket = gateway.fetch_ticket or row.stripe_fetch_ticket
    await session.flush()
    return row, changes


async def apply_current(
    session: AsyncSession, gateway: StripeGateway, invoice_id: str, *, actor: str, event_at: datetime | None = None
) -> tuple[Invoice, Changes]:
    """Re-read a Stripe invoice and map it, its subscription first (a renewal's period and a failed payment's
    past_due live there, and the invoice links to our subscription row)."""
    current = await gateway.retrieve_invoice(invoice_id)
    subscription_id = reader.invoice_subscription_id(current)
    ours: Subscription | None = None
    if subscription_id:
        sub = await gateway.retrieve_subscription(subscription_id)
        ours, _ = await subscriptions_sync.upsert_from_stripe(session, gateway, sub, actor=actor, event_at=event_at)
    return await upsert_from_stripe(session, gateway, current, actor=actor, event_at=event_at, subscription_hint=ours)


async def paid_by(
    session: AsyncSession,
    gateway: StripeGateway,
    charge: reader.ChargeState,
    *,
    actor: str,
    event_at: datetime | None = None,
) -> Invoice | None:
    """Our invoice paid by this charge, locked: by its charge or payment intent id, else found on Stripe (through
    the payment intent's invoice payment, or the charge's invoice before basil) and recorded first, since a refund
    can arrive before invoice.paid. None when no invoice paid it (a one-off charge, not ours to book)."""
    conditions = [Invoice.stripe_charge_id == charge.id]
    if charge.payment_intent_id:
        conditions.append(Invoice.stripe_payment_intent_id == charge.payment_intent_id)
    found: Invoice | None = await session.scalar(select(Invoice).where(or_(*conditions)).with_for_update())
    if found is not None:
        return found
    invoice_id = charge.invoice_id
    if invoice_id is None and charge.payment_intent_id:
        listing = await gateway.list_invoice_payments(
            {"payment": {"type": "payment_intent", "payment_intent": charge.payment_intent_id}, "limit": 1}
        )
        payments = reader.list_data(listing)
        invoice_id = reader.invoice_payment_invoice_id(payments[0]) if payments else None
    if invoice_id is None:
        return None
    row, _ = await apply_current(session, gateway, invoice_id, actor=actor, event_at=event_at)
    return row

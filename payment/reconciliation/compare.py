"""The pure comparison: one customer's rows against the same customer's objects at Stripe -> the differences.

No database, no network: `check.py` fetches both sides and stores what this returns. The fields compared are the
ones each domain's `upsert_from_stripe` maps, read the same way (so a difference here is one a webhook would have
removed), and each difference names the event that should have brought the two together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from payment.invoices.stripe_sync import status_with_refunds
from payment.models.billing import REFUND_STATUSES
from payment.stripe import reader
from payment.stripe.reader import JSON
from payment.subscriptions.paid_extension import as_seen_by_us

Values = dict[str, Any]


@dataclass(frozen=True)
class OurSubscription:
    stripe_subscription_id: str
    status: str
    price_id: str | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    cancel_at: datetime | None


@dataclass(frozen=True)
class OurInvoice:
    stripe_invoice_id: str
    status: str
    amount_cents: int
    currency: str
    paid_at: datetime | None
    amount_refunded_cents: int
    stripe_charge_id: str | None
    stripe_payment_intent_id: str | None


@dataclass(frozen=True)
class OurRefund:
    stripe_refund_id: str
    amount_cents: int
    status: str


@dataclass
class Ours:
    """One customer's rows that Stripe also holds."""

    subscriptions: list[OurSubscription] = field(default_factory=list)
    invoices: list[OurInvoice] = field(default_factory=list)
    refunds: list[OurRefund] = field(default_factory=list)


@dataclass
class Theirs:
    """The same customer at Stripe: the customer object, every subscription and invoice, and the charges with
    refunds together with those refunds."""

    customer: JSON
    subscriptions: list[JSON] = field(default_factory=list)
    invoices: list[JSON] = field(default_factory=list)
    charges: list[JSON] = field(default_factory=list)
    refunds: list[JSON] = field(default_factory=list)


@dataclass(frozen=True)
class Difference:
    kind: str
    stripe_object_id: str
    ours: Values
    theirs: Values
    expected_event: str


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _differing(ours: Values, theirs: Values) -> tuple[Values, Values]:
    """Only the fields that differ, so the screen shows what matters."""
    keys = [k for k in theirs if ours.get(k) != theirs[k]]
    return {k: ours.get(k) for k in keys}, {k: theirs[k] for k in keys}


def subscription_values(sub: JSON) -> Values:
    """Stripe's subscription as our row would hold it after `subscriptions.stripe_sync.upsert_from_stripe`."""
    state = reader.subscription(as_seen_by_us(sub))
    stops = state.cancel_at_period_end or (
        state.cancel_at is not None and state.period_end is not None and state.cancel_at >= state.period_end
    )
    return {
        "status": state.status,
        "price": state.price_id,
        "current_period_end": _iso(state.period_end),
        "cancel_at_period_end": stops,
        "cancel_at": _iso(state.cancel_at),
    }


def _our_subscription_values(row: OurSubscription) -> Values:
    return {
        "status": row.status,
        "price": row.price_id,
        "current_period_end": _iso(row.current_period_end),
        "cancel_at_period_end": row.cancel_at_period_end,
        "cancel_at": _iso(row.cancel_at),
    }


def compare_subscriptions(ours: list[OurSubscription], theirs: list[JSON]) -> list[Difference]:
    """Each Stripe subscription against our row: fields that differ, or no row at all (made in the Dashboard)."""
    by_id = {row.stripe_subscription_id: row for row in ours}
    found: list[Difference] = []
    for sub in theirs:
        sub_id = str(sub["id"])
        their_values = subscription_values(sub)
        row = by_id.get(sub_id)
        if row is None:
            found.append(Difference("subscription_missing", sub_id, {}, their_values, "customer.subscription.created"))
            continue
        our_values = _our_subscription_values(row)
        if row.price_id is None:  # a plan without a Stripe price maps by metadata: nothing to compare
            their_values.pop("price")
            our_values.pop("price")
        mine, stripes = _differing(our_values, their_values)
        if mine or stripes:
            event = (
                "customer.subscription.deleted"
                if stripes.get("status") == "canceled"
                else "customer.subscription.updated"
            )
            found.append(Difference("subscription_differs", sub_id, mine, stripes, event))
    return found


def invoice_values(inv: JSON, *, amount_refunded_cents: int) -> Values:
    """Stripe's invoice as our row would hold it (amount paid once paid, else due; our refunds keep their status)."""
    state = reader.invoice(inv)
    amount = state.amount_paid if state.status == "paid" else state.amount_due
    return {
        "status": status_with_refunds(state.status, amount, amount_refunded_cents),
        "amount_cents": amount,
        "currency": state.currency,
        "paid_at": _iso(state.paid_at),
    }


def _expected_invoice_event(status: str) -> str:
    return {
        "paid": "invoice.paid",
        "payment_failed": "invoice.payment_failed",
        "uncollectible": "invoice.marked_uncollectible",
        "void": "invoice.voided",
    }.get(status, "invoice.updated")


def compare_invoices(ours: list[OurInvoice], theirs: list[JSON]) -> list[Difference]:
    """Each Stripe invoice we hold against our row (status, amount, currency, paid at); drafts are not compared.
    Invoices we never recorded are not drifts of their own: the subscription they bill is."""
    by_id = {row.stripe_invoice_id: row for row in ours}
    found: list[Difference] = []
    for inv in theirs:
        row = by_id.get(str(inv["id"]))
        if row is None or inv.get("status") == "draft":
            continue
        their_values = invoice_values(inv, amount_refunded_cents=row.amount_refunded_cents)
        our_values = {
            "status": row.status,
            "amount_cents": row.amount_cents,
            "currency": row.currency,
            "paid_at": _iso(row.paid_at),
        }
        mine, stripes = _differing(our_values, their_values)
        if mine or stripes:
            event = _expected_invoice_event(str(their_values["status"]))
            found.append(Difference("invoice_differs", row.stripe_invoice_id, mine, stripes, event))
    return found


def _refund_status(status: str) -> str:
    return status if status in REFUND_STATUSES else "pending"


def compare_refunds(invoices: list[OurInvoice], ours: list[OurRefund], refunds: list[JSON]) -> list[Difference]:
    """Each Stripe refund of a charge that paid one of our invoices against our refund row: amount and status
    differ, or we have no row (refunded in Stripe's Dashboard with the webhook lost)."""
    paid_by = {i.stripe_charge_id for i in invoices if i.stripe_charge_id} | {
        i.stripe_payment_intent_id for i in invoices if i.stripe_payment_intent_id
    }
    by_id = {row.stripe_refund_id: row for row in ours}
    found: list[Difference] = []
    for obj in refunds:
        state = reader.refund(obj)
        if state.charge_id not in paid_by and state.payment_intent_id not in paid_by:
            continue  # a charge that paid no invoice of ours: not ours to book
        theirs: Values = {"amount_cents": state.amount, "status": _refund_status(state.status)}
        row = by_id.get(state.id)
        if row is None:
            found.append(
                Difference("refund_missing", state.id, {}, {**theirs, "charge": state.charge_id}, "charge.refunded")
            )
            continue
        mine, stripes = _differing({"amount_cents": row.amount_cents, "status": row.status}, theirs)
        if mine or stripes:
            event = "charge.refund.updated" if "status" in stripes else "charge.refunded"
            # the charge is how "take Stripe's" finds the refund again (reconcile_charge)
            found.append(Difference("refund_differs", state.id, mine, {**stripes, "charge": state.charge_id}, event))
    return found


def charges_to_open(invoices: list[OurInvoice], ours: list[OurRefund], charges: list[JSON]) -> list[str]:
    """The charges whose refunds must be listed: refunded at Stripe and paying one of our invoices."""
    paid_by = {i.stripe_charge_id for i in invoices if i.stripe_charge_id} | {
        i.stripe_payment_intent_id for i in invoices if i.stripe_payment_intent_id
    }
    wanted: list[str] = []
    for obj in charges:
        state = reader.charge(obj)
        if state.amount_refunded > 0 and (state.id in paid_by or state.payment_intent_id in paid_by):
            wanted.append(state.id)
    return wanted


def compare_customer(stripe_customer_id: str, ours: Ours, theirs: Theirs) -> list[Difference]:
    """Every difference for one customer: deleted at Stripe, then subscriptions, invoices and refunds."""
    found: list[Difference] = []
    if reader.customer_deleted(theirs.customer):
        found.append(
            Difference("customer_deleted", stripe_customer_id, {"linked": True}, {"deleted": True}, "customer.deleted")
        )
    found += compare_subscriptions(ours.subscriptions, theirs.subscriptions)
    found += compare_invoices(ours.invoices, theirs.invoices)
    found += compare_refunds(ours.invoices, ours.refunds, theirs.refunds)
    return found

"""The one reader of Stripe objects: every field the service takes from Stripe is read here.

Written for the pinned API version (`payment.stripe.version.API_VERSION`) and for the last pre-basil version
(`PRE_BASIL_VERSION`), because a webhook endpoint keeps the version it was created with and still delivers events in
those shapes. The differences that matter to us:

- the subscription's current period lives on its items since basil (on the subscription before);
- an invoice names its subscription in `parent.subscription_details.subscription` since basil (top-level before);
- an invoice's charge and payment intent come from its invoice payments since basil (`invoice.payments`, returned
  only when expanded, or `GET /v1/invoice_payments?invoice=`); before, from `invoice.charge` / `invoice.payment_intent`;
- a subscription may end at `cancel_at` (a timestamp; set through the `min_period_end` / `max_period_end` enums
  since 2025-07-30.basil) with `cancel_at_period_end` false.

Functions here are pure: they take the JSON Stripe sent and return plain values, so they are tested on payloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

JSON = dict[str, Any]


class UnusableObject(ValueError):
    """A Stripe payload that can never be applied (missing or of the wrong type); the message says why."""


def ts(value: Any) -> datetime | None:
    """A Stripe unix timestamp as an aware UTC datetime."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def id_of(value: Any) -> str | None:
    """An id from a field that is either an id or an expanded object."""
    if isinstance(value, dict):
        found = value.get("id")
        return str(found) if found else None
    return str(value) if value else None


def as_int(value: Any) -> int | None:
    """An integer from metadata or a reference field (Stripe metadata values are strings)."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _data(listing: Any) -> list[JSON]:
    if isinstance(listing, dict):
        items = listing.get("data") or []
        return [dict(i) for i in items if isinstance(i, dict)]
    return []


def metadata_int(obj: JSON, key: str) -> int | None:
    """One of our ids that we put in an object's metadata (`customer_id`, `plan_id`, `refund_id`)."""
    metadata = obj.get("metadata")
    return as_int(metadata.get(key)) if isinstance(metadata, dict) else None


# events


def event_object(event: JSON, expected: str) -> JSON:
    """The event's `data.object`, which must be a Stripe object of the `expected` type with an id."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict) or not obj:
        raise UnusableObject(f"The event has no data.object (expected {expected!r}).")
    kind = obj.get("object")
    if kind != expected:
        raise UnusableObject(f"The event's data.object is {kind or 'untyped'!r} where {expected!r} was expected.")
    if not isinstance(obj.get("id"), str) or not obj["id"]:
        raise UnusableObject(f"The event's {expected!r} object has no id.")
    return dict(obj)


def event_api_version(event: JSON) -> str | None:
    """The API version Stripe rendered the event in (that of the webhook endpoint)."""
    version = event.get("api_version")
    return str(version)[:32] if version else None


# customers and checkout


def customer_id(obj: JSON) -> str | None:
    """The Stripe customer of a subscription, invoice, charge or Checkout Session."""
    return id_of(obj.get("customer"))


@dataclass(frozen=True)
class Checkout:
    """What a completed Checkout Session tells us."""

    id: str
    is_subscription: bool
    our_customer_id: int | None
    our_plan_id: int | None
    stripe_customer_id: str | None
    subscription_id: str | None


def checkout(obj: JSON) -> Checkout:
    """Our customer (client_reference_id, else metadata.customer_id), our plan, Stripe's customer and subscription."""
    return Checkout(
        id=str(obj["id"]),
        is_subscription=obj.get("mode") in (None, "subscription"),
        our_customer_id=as_int(obj.get("client_reference_id")) or metadata_int(obj, "customer_id"),
        our_plan_id=metadata_int(obj, "plan_id"),
        stripe_customer_id=customer_id(obj),
        subscription_id=id_of(obj.get("subscription")),
    )


# subscriptions


@dataclass(frozen=True)
class SubscriptionState:
    """A Stripe subscription as our row holds it."""

    id: str
    status: str
    price_id: str | None
    period_start: datetime | None
    period_end: datetime | None
    cancel_at_period_end: bool
    cancel_at: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None
    trial_end: datetime | None
    stripe_customer_id: str | None
    our_customer_id: int | None
    our_plan_id: int | None
    schedule_id: str | None = None
    pending_update: bool = False


def _items(sub: JSON) -> list[JSON]:
    return _data(sub.get("items"))


def subscription(sub: JSON) -> SubscriptionState:
    """Status, price, period (items since basil, the subscription before), cancellation, trial, and our ids."""
    items = _items(sub)
    first = items[0] if items else {}
    price = first.get("price") or sub.get("plan")
    # since basil each item has its own period; the subscription's is the span the items share
    starts = [t for t in (ts(i.get("current_period_start")) for i in items) if t is not None]
    ends = [t for t in (ts(i.get("current_period_end")) for i in items) if t is not None]
    start = min(starts) if starts else ts(sub.get("current_period_start"))
    end = min(ends) if ends else ts(sub.get("current_period_end"))
    return SubscriptionState(
        id=str(sub["id"]),
        status=str(sub.get("status") or ""),
        price_id=id_of(price),
        period_start=start,
        period_end=end,
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        cancel_at=ts(sub.get("cancel_at")),
        canceled_at=ts(sub.get("canceled_at")),
        ended_at=ts(sub.get("ended_at")),
        trial_end=ts(sub.get("trial_end")),
        stripe_customer_id=customer_id(sub),
        our_customer_id=metadata_int(sub, "customer_id"),
        our_plan_id=metadata_int(sub, "plan_id"),
        schedule_id=id_of(sub.get("schedule")),
        pending_update=bool(sub.get("pending_update")),
    )


def subscription_item_id(sub: JSON) -> str | None:
    """The id of the subscription's (first and only) item, which a price change names."""
    items = _items(sub)
    return id_of(items[0].get("id")) if items else None


# subscription schedules and invoice previews (plan changes)


@dataclass(frozen=True)
class Phase:
    start: datetime
    end: datetime | None
    price_id: str | None


@dataclass(frozen=True)
class ScheduleState:
    id: str
    status: str
    subscription_id: str | None
    phases: tuple[Phase, ...]


def schedule(obj: JSON) -> ScheduleState:
    """A subscription schedule: status, the subscription it manages and each phase's start, end and price."""
    phases = []
    for phase in obj.get("phases") or []:
        items = phase.get("items") or []
        start = ts(phase.get("start_date"))
        if start is None:
            raise UnusableObject(f"subscription schedule {obj.get('id')} has a phase without a start date")
        phases.append(Phase(start, ts(phase.get("end_date")), id_of(items[0].get("price")) if items else None))
    return ScheduleState(
        id=str(obj["id"]),
        status=str(obj.get("status") or ""),
        subscription_id=id_of(obj.get("subscription")),
        phases=tuple(phases),
    )


@dataclass(frozen=True)
class PreviewLine:
    amount: int
    proration: bool
    period_start: datetime | None
    period_end: datetime | None
    price_id: str | None


@dataclass(frozen=True)
class PreviewState:
    """An invoice preview (`create_preview`): what is due and its lines."""

    amount_due: int
    total: int
    currency: str
    lines: tuple[PreviewLine, ...]


def preview(inv: JSON) -> PreviewState:
    lines = []
    for line in _data(inv.get("lines")):
        parent = line.get("parent") or {}
        details = parent.get("subscription_item_details") or {}
        pricing = (line.get("pricing") or {}).get("price_details") or {}
        period = line.get("period") or {}
        lines.append(
            PreviewLine(
                amount=as_int(line.get("amount")) or 0,
                proration=bool(details.get("proration", line.get("proration"))),
                period_start=ts(period.get("start")),
                period_end=ts(period.get("end")),
                price_id=id_of(pricing.get("price") or line.get("price")),
            )
        )
    return PreviewState(
        amount_due=as_int(inv.get("amount_due")) or 0,
        total=as_int(inv.get("total")) or 0,
        currency=str(inv.get("currency") or ""),
        lines=tuple(lines),
    )


@dataclass(frozen=True)
class DiscountTerms:
    """A coupon's terms as a subscription's discount applies them: a percentage or an amount, until `ends_at`."""

    percent_off: Decimal | None
    amount_off: int | None
    ends_at: datetime | None


def _coupon_of(discount: JSON) -> JSON | None:
    # since 2025-09-30.clover under `source.coupon` (expanded), before as `coupon` on the discount itself
    source = discount.get("source")
    coupon = source.get("coupon") if isinstance(source, dict) else discount.get("coupon")
    return coupon if isinstance(coupon, dict) else None


def subscription_discount(sub: JSON) -> DiscountTerms | None:
    """The discount a subscription's next invoices get: `discounts` (expanded with `source.coupon`), or the single
    `discount` of older versions; None when there is none."""
    entries = [d for d in sub.get("discounts") or [] if isinstance(d, dict)]
    legacy = sub.get("discount")
    if not entries and isinstance(legacy, dict):
        entries = [legacy]
    for entry in entries:
        coupon = _coupon_of(entry)
        if coupon is None:
            continue
        percent = coupon.get("percent_off")
        return DiscountTerms(
            percent_off=Decimal(str(percent)) if percent is not None else None,
            amount_off=as_int(coupon.get("amount_off")) if percent is None else None,
            ends_at=ts(entry.get("end")),
        )
    return None


def subscription_payment_method_id(sub: JSON) -> str | None:
    """A subscription's own default payment method (`default_payment_method`)."""
    return id_of(sub.get("default_payment_method"))


def trial_end_without_card(sub: JSON) -> str | None:
    """What Stripe does when the trial ends with no payment method: `cancel`, `pause` or `create_invoice`
    (`trial_settings.end_behavior.missing_payment_method`); None when the subscription does not say."""
    settings = sub.get("trial_settings")
    behavior = settings.get("end_behavior") if isinstance(settings, dict) else None
    found = behavior.get("missing_payment_method") if isinstance(behavior, dict) else None
    return str(found) if found else None


def card_fingerprint(payment_method: JSON) -> str | None:
    """The fingerprint Stripe gives every card number (the same card on two customers has the same one)."""
    card = payment_method.get("card")
    found = card.get("fingerprint") if isinstance(card, dict) else None
    return str(found) if found else None


# invoices and their payments


@dataclass(frozen=True)
class InvoiceState:
    """A Stripe invoice as our row holds it (payment ids come from `payment_ids`)."""

    id: str
    status: str
    currency: str
    amount_paid: int
    amount_due: int
    attempt_count: int
    paid_at: datetime | None
    period_start: datetime | None
    period_end: datetime | None
    subscription_id: str | None
    stripe_customer_id: str | None
    next_payment_attempt: datetime | None = None
    subtotal: int | None = None
    discount: int = 0


def invoice_subscription_id(inv: JSON) -> str | None:
    """`parent.subscription_details.subscription` since basil; the top-level `subscription` before."""
    parent = inv.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, dict) else None
    found = id_of(details.get("subscription")) if isinstance(details, dict) else None
    return found or id_of(inv.get("subscription"))


def _invoice_status(inv: JSON) -> str:
    status = str(inv.get("status") or "open")
    # an open invoice Stripe already tried to charge is a failed payment to us (Stripe retries it)
    if status == "open" and (as_int(inv.get("attempt_count")) or 0) > 0:
        return "payment_failed"
    return status


def _dicts(value: Any) -> list[JSON]:
    return [d for d in value if isinstance(d, dict)] if isinstance(value, list) else []


def invoice(inv: JSON) -> InvoiceState:
    """Status, amounts, attempts, paid time, the period its first line pays for, subscription and customer."""
    lines = _data(inv.get("lines"))
    period = lines[0].get("period") if lines else None
    period = period if isinstance(period, dict) else {}
    # the line's period is the one paid for; the invoice's own period_* is the previous one on renewals
    transitions = inv.get("status_transitions")
    paid_at = transitions.get("paid_at") if isinstance(transitions, dict) else None
    return InvoiceState(
        id=str(inv["id"]),
        status=_invoice_status(inv),
        currency=str(inv.get("currency") or "").lower(),
        amount_paid=as_int(inv.get("amount_paid")) or 0,
        amount_due=as_int(inv.get("amount_due")) or 0,
        attempt_count=as_int(inv.get("attempt_count")) or 0,
        paid_at=ts(paid_at),
        period_start=ts(period.get("start", inv.get("period_start"))),
        period_end=ts(period.get("end", inv.get("period_end"))),
        subscription_id=invoice_subscription_id(inv),
        stripe_customer_id=customer_id(inv),
        # null when no retry is scheduled (paid, void, retries exhausted); a time under Smart Retries or a schedule
        next_payment_attempt=ts(inv.get("next_payment_attempt")),
        subtotal=as_int(inv.get("subtotal")),
        discount=sum(as_int(d.get("amount")) or 0 for d in _dicts(inv.get("total_discount_amounts"))),
    )


@dataclass(frozen=True)
class PaymentIds:
    """The charge and payment intent that paid (or tried to pay) an invoice."""

    charge_id: str | None = None
    payment_intent_id: str | None = None


def _payment_rank(payment: JSON) -> tuple[int, int]:
    # the paid one first, then the default (the one Stripe is collecting), then the newest
    return (
        0 if payment.get("status") == "paid" else 1 if payment.get("is_default") else 2,
        -(as_int(payment.get("created")) or 0),
    )


def payment_ids(inv: JSON, invoice_payments: list[JSON] | None = None) -> PaymentIds:
    """Before basil: `invoice.charge` / `invoice.payment_intent`. Since basil: the invoice payments (expanded
    `invoice.payments`, or the list given), the paid one preferred."""
    charge, intent = id_of(inv.get("charge")), id_of(inv.get("payment_intent"))
    payments = invoice_payments if invoice_payments is not None else _data(inv.get("payments"))
    for payment in sorted(payments, key=_payment_rank):
        detail = payment.get("payment")
        if not isinstance(detail, dict):
            continue
        charge = charge or id_of(detail.get("charge"))
        intent = intent or id_of(detail.get("payment_intent"))
        if charge or intent:
            break
    return PaymentIds(charge, intent)


def invoice_payment_invoice_id(payment: JSON) -> str | None:
    """The invoice an invoice payment belongs to."""
    return id_of(payment.get("invoice"))


def decline_message(obj: JSON) -> str | None:
    """Why the last payment failed, in the card network's words: a payment intent's `last_payment_error.message`
    or a charge's `failure_message`."""
    error = obj.get("last_payment_error")
    message = error.get("message") if isinstance(error, dict) else None
    message = message or obj.get("failure_message")
    return str(message)[:1000] if message else None


def failed_payment_method_id(intent: JSON) -> str | None:
    """The card a payment intent's last attempt was declined on (`last_payment_error.payment_method`; Stripe
    clears `payment_method` itself after a decline)."""
    error = intent.get("last_payment_error")
    found = id_of(error.get("payment_method")) if isinstance(error, dict) else None
    return found or id_of(intent.get("payment_method"))


def customer_payment_method_id(cust: JSON) -> str | None:
    """A customer's default payment method for invoices (`invoice_settings.default_payment_method`)."""
    settings = cust.get("invoice_settings")
    return id_of(settings.get("default_payment_method")) if isinstance(settings, dict) else None


def customer_default_source(cust: JSON) -> str | None:
    """A customer's default source (cards saved through the older Sources API)."""
    return id_of(cust.get("default_source"))


def latest_charge_id(intent: JSON) -> str | None:
    """The charge a payment intent made last."""
    return id_of(intent.get("latest_charge"))


# charges and refunds


@dataclass(frozen=True)
class ChargeState:
    id: str
    payment_intent_id: str | None
    invoice_id: str | None
    stripe_customer_id: str | None
    amount_refunded: int
    refunds: list[JSON] | None


def charge(obj: JSON) -> ChargeState:
    """The charge's payment intent, refunded amount and (only when expanded since 2022-11-15) its refunds; `invoice`
    is there only before basil."""
    refunds = obj.get("refunds")
    embedded = _data(refunds) if isinstance(refunds, dict) and not refunds.get("has_more") else None
    return ChargeState(
        id=str(obj["id"]),
        payment_intent_id=id_of(obj.get("payment_intent")),
        invoice_id=id_of(obj.get("invoice")),
        stripe_customer_id=customer_id(obj),
        amount_refunded=as_int(obj.get("amount_refunded")) or 0,
        refunds=embedded,
    )


@dataclass(frozen=True)
class RefundState:
    id: str
    amount: int
    currency: str
    status: str
    our_refund_id: int | None
    charge_id: str | None
    payment_intent_id: str | None
    reason: str | None
    failure_reason: str | None
    created: datetime | None


def refund(obj: JSON) -> RefundState:
    """Amount, status, our refund id (`metadata.refund_id`, absent for a Dashboard refund), what it refunds."""
    return RefundState(
        id=str(obj["id"]),
        amount=as_int(obj.get("amount")) or 0,
        currency=str(obj.get("currency") or "").lower(),
        status=str(obj.get("status") or "pending"),
        our_refund_id=metadata_int(obj, "refund_id"),
        charge_id=id_of(obj.get("charge")),
        payment_intent_id=id_of(obj.get("payment_intent")),
        reason=str(obj["reason"]) if obj.get("reason") else None,
        failure_reason=str(obj["failure_reason"]) if obj.get("failure_reason") else None,
        created=ts(obj.get("created")),
    )


def list_data(listing: JSON) -> list[JSON]:
    """The objects in a list object (`{"object": "list", "data": [...]}`)."""
    return _data(listing)


def has_more(listing: JSON) -> bool:
    return bool(listing.get("has_more"))


def customer_deleted(obj: JSON) -> bool:
    """Stripe answers a deleted customer's id with `{"id", "object": "customer", "deleted": true}`."""
    return bool(obj.get("deleted"))

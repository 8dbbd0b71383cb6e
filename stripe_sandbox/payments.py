"""Invoices, payment intents, charges, cards and refunds."""

from __future__ import annotations

import secrets
from typing import Any

from . import coupons as cp
from . import shapes_billing as sb
from . import shapes_payments as sp
from .cards import CardError, charge_error
from .errors import StripeError, invalid
from .prorations import invoice_line as proration_line
from .store import JSON, Store


def default_payment_method(store: Store, cust: JSON) -> JSON | None:
    pm_id = cust["invoice_settings"].get("default_payment_method")
    return store.get("payment_method", pm_id) if pm_id else None


def attach_card(store: Store, cust: JSON, card: JSON) -> JSON:
    """Save a card as the customer's default payment method (events: payment_method.attached, customer.updated)."""
    pm = save_card(store, cust, card)
    make_default(store, cust, pm)
    return pm


def save_card(store: Store, cust: JSON, card: JSON) -> JSON:
    """Attach a new card to the customer (payment_method.attached)."""
    pm = store.add(sb.payment_method(store.now(), card, cust["id"], cust.get("email")))
    pm["_number"] = card["number"]
    store.emit("payment_method.attached", pm)
    return pm


def make_default(store: Store, cust: JSON, pm: JSON) -> None:
    """The card becomes the default for invoices (customer.updated) and for the customer's live subscriptions."""
    previous = {"invoice_settings": dict(cust["invoice_settings"])}
    cust["invoice_settings"]["default_payment_method"] = pm["id"]
    store.emit("customer.updated", cust, previous)
    for sub in store.all("subscription"):
        if sub["customer"] == cust["id"] and sub["status"] not in ("canceled", "incomplete_expired"):
            sub["default_payment_method"] = pm["id"]


def next_invoice_number(cust: JSON) -> str:
    seq = int(cust.get("next_invoice_sequence") or 1)
    cust["next_invoice_sequence"] = seq + 1
    return f"{cust['invoice_prefix']}-{seq:04d}"


def create_invoice(
    store: Store,
    cust: JSON,
    sub: JSON,
    billing_reason: str,
    line_start: int,
    line_end: int,
    period_start: int,
    period_end: int,
    amount_override: int | None = None,
) -> JSON:
    """Create, emit invoice.created, finalize and emit invoice.finalized."""
    inv = new_invoice(store, cust, sub, billing_reason, period_start, period_end)
    for item in sub["items"]["data"]:
        price = item["price"]
        amount = int(price["unit_amount"] or 0) * int(item["quantity"])
        if amount_override is not None:
            amount = amount_override
        product = store.get("product", price["product"])
        name = product["name"] if product else price["product"]
        description = f"{item['quantity']} × {name}"
        if amount == 0 and sub.get("trial_end") and line_end <= sub["trial_end"]:
            description = f"Trial period for {name}"
        inv["lines"]["data"].append(sb.invoice_line(inv["id"], sub, item, amount, description, line_start, line_end))
    if billing_reason == "subscription_cycle":
        # Prorations of changes made with proration_behavior=create_prorations wait for the next invoice.
        for spec in sub.pop("_pending_lines", None) or []:
            inv["lines"]["data"].append(proration_line(inv["id"], sub, spec))
    return finalize_new_invoice(store, cust, sub, inv)


def new_invoice(store: Store, cust: JSON, sub: JSON, billing_reason: str, period_start: int, period_end: int) -> JSON:
    """A draft invoice of a subscription, not stored yet: its lines are added by the caller."""
    return sb.invoice(
        store.now(),
        cust,
        sub,
        next_invoice_number(cust),
        billing_reason,
        period_start=period_start,
        period_end=period_end,
    )


def finalize_new_invoice(store: Store, cust: JSON, sub: JSON, inv: JSON) -> JSON:
    """Total the lines, store the invoice as the subscription's latest, emit invoice.created, finalize it and emit
    invoice.finalized."""
    now = store.now()
    total = sum(int(line["amount"]) for line in inv["lines"]["data"])
    applied = cp.discount_lines(store, sub, inv["lines"]["data"], inv["currency"], now)
    inv["discounts"] = [di["id"] for di, _ in applied]
    inv["total_discount_amounts"] = [{"amount": off, "discount": di["id"]} for di, off in applied]
    inv["subtotal"] = inv["subtotal_excluding_tax"] = total
    total -= sum(off for _, off in applied)
    for key in ("amount_due", "amount_remaining", "total", "total_excluding_tax"):
        inv[key] = total
    inv["default_payment_method"] = cust["invoice_settings"].get("default_payment_method")
    store.add(inv)
    previous_latest = sub.get("latest_invoice")
    sub["latest_invoice"] = inv["id"]
    store.emit("invoice.created", inv)
    inv["status"] = "open"
    inv["effective_at"] = now
    inv["status_transitions"]["finalized_at"] = now
    inv["_previous_latest"] = previous_latest
    store.emit("invoice.finalized", inv)
    _end_used_discounts(store, sub, now)
    return inv


def _end_used_discounts(store: Store, sub: JSON, at: int) -> None:
    """A `once` discount ends after the invoice it applied to, a `repeating` one when its months are over."""
    gone = cp.expired_discounts(store, sub, at)
    if not gone:
        return
    previous = {"discounts": list(sub["discounts"])}
    sub["discounts"] = [d for d in sub["discounts"] if d not in gone]
    for di_id in gone:
        di = store.get("discount", di_id)
        if di is not None:
            store.emit("customer.discount.deleted", di)
    store.emit("customer.subscription.updated", sub, previous)


def _mark_paid(store: Store, inv: JSON) -> None:
    now = store.now()
    inv["status"] = "paid"
    inv["amount_paid"] = inv["amount_due"]
    inv["amount_remaining"] = 0
    inv["attempted"] = True
    inv["next_payment_attempt"] = None
    inv["status_transitions"]["paid_at"] = now
    store.emit("invoice.paid", inv)
    store.emit("invoice.payment_succeeded", inv)


def attempt_payment(
    store: Store, inv: JSON, cust: JSON, next_attempt: int | None = None, card: JSON | None = None
) -> bool:
    """Charge the customer's default card (or `card`) for an open invoice. Emits the payment events; True when
    paid."""
    now = store.now()
    if inv["amount_due"] == 0:
        _mark_paid(store, inv)
        return True
    pm = card or default_payment_method(store, cust)
    pi = store.get("payment_intent", inv["_payment_intent"]) if inv.get("_payment_intent") else None
    if pi is None:
        pi = store.add(
            sp.payment_intent(
                now,
                inv["amount_due"],
                inv["currency"],
                cust["id"],
                pm["id"] if pm else None,
                "Subscription update"
                if inv["billing_reason"] == "subscription_update"
                else "Subscription creation"
                if inv["billing_reason"] == "subscription_create"
                else "Subscription cycle",
            )
        )
        pi["_invoice"] = inv["id"]
        inv["_payment_intent"] = pi["id"]
        store.emit("payment_intent.created", pi)
        store.add(sp.invoice_payment(now, inv, pi))
    pi["payment_method"] = pm["id"] if pm else None
    inv["attempted"] = True
    inv["attempt_count"] = int(inv["attempt_count"]) + 1
    error = (
        charge_error(pm["_number"])
        if pm
        else CardError(
            "The customer has no attached payment source or default payment method.", code="payment_method_missing"
        )
    )
    if pm is not None:
        ch = store.add(sp.charge(now, pi, pm, cust.get("email")))
        ch["_invoice"] = inv["id"]
        pi["latest_charge"] = ch["id"]
        if error is None:
            store.emit("charge.succeeded", ch)
        else:
            ch.update(
                status="failed",
                paid=False,
                captured=False,
                amount_captured=0,
                failure_code=error.code,
                failure_message=error.message,
            )
            ch["outcome"].update(
                network_status="declined_by_network",
                reason=error.decline_code,
                seller_message="The bank did not return any further details with this decline.",
                type="issuer_declined",
            )
            store.emit("charge.failed", ch)
    if error is None:
        pi["status"] = "succeeded"
        pi["amount_received"] = pi["amount"]
        store.emit("payment_intent.succeeded", pi)
        for payment in invoice_payments(store, inv["id"]):
            if payment["payment"].get("payment_intent") == pi["id"]:
                payment.update(status="paid", amount_paid=pi["amount"])
                payment["status_transitions"]["paid_at"] = now
                store.emit("invoice_payment.paid", payment)
        cust["delinquent"] = False
        _mark_paid(store, inv)
        return True
    pi["status"] = "requires_payment_method"
    pi["last_payment_error"] = {
        "charge": pi["latest_charge"],
        "code": error.code,
        "decline_code": error.decline_code,
        "doc_url": f"https://stripe.com/docs/error-codes/{error.code.replace('_', '-')}",
        "message": error.message,
        "payment_method": pm and sb_public_pm(pm),
        "type": "card_error",
    }
    store.emit("payment_intent.payment_failed", pi)
    inv["next_payment_attempt"] = next_attempt
    cust["delinquent"] = True
    store.emit("invoice.payment_failed", inv)
    return False


REFUND_REFERENCE_DELAY = 86400
"""A card refund gets its acquirer reference number about a day later (refund.updated)."""


def settle_refund(store: Store, re: JSON) -> None:
    """The card network acknowledged the refund: its reference becomes available (refund.updated)."""
    re.pop("_settles_at", None)
    card = re["destination_details"]["card"]
    previous = {"destination_details": {"card": {"reference": None, "reference_status": card["reference_status"]}}}
    card["reference"] = f"{secrets.randbelow(10**23):023d}"
    card["reference_status"] = "available"
    store.emit("refund.updated", re, previous)


def invoice_payments(store: Store, invoice_id: str) -> list[JSON]:
    """The invoice payments of an invoice, newest first."""
    return [p for p in store.all("invoice_payment") if p["invoice"] == invoice_id]


def invoice_charge(store: Store, inv: JSON) -> JSON | None:
    """The succeeded charge that paid an invoice (through its paid invoice payment's payment intent)."""
    for payment in invoice_payments(store, inv["id"]):
        pi = store.get("payment_intent", str(payment["payment"].get("payment_intent")))
        if payment["status"] == "paid" and pi and pi.get("latest_charge"):
            return store.get("charge", pi["latest_charge"])
    return None


def sb_public_pm(pm: JSON) -> dict[str, Any]:
    return {k: v for k, v in pm.items() if not k.startswith("_")}


def create_refund(store: Store, params: dict[str, Any], amount: int | None, reason: str | None, metadata: JSON) -> JSON:
    ch: JSON | None
    if params.get("charge"):
        ch = store.get("charge", str(params["charge"]))
        if ch is None:
            raise StripeError(404, f"No such charge: '{params['charge']}'", code="resource_missing", param="charge")
    elif params.get("payment_intent"):
        pi = store.get("payment_intent", str(params["payment_intent"]))
        if pi is None:
            raise StripeError(
                404,
                f"No such payment_intent: '{params['payment_intent']}'",
                code="resource_missing",
                param="payment_intent",
            )
        ch = store.get("charge", pi["latest_charge"]) if pi.get("latest_charge") else None
        if ch is None or pi["status"] != "succeeded":
            raise invalid(
                "payment_intent",
                f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                code="charge_not_refundable",
            )
    else:
        raise StripeError(
            400,
            "One of the following params should be provided for this request: payment_intent or charge.",
            code="parameter_missing",
        )
    if ch["status"] != "succeeded":
        raise invalid(
            "charge", f"Charge {ch['id']} has not succeeded and cannot be refunded.", code="charge_not_refundable"
        )
    remaining = int(ch["amount_captured"]) - int(ch["amount_refunded"])
    if remaining <= 0:
        raise invalid("charge", f"Charge {ch['id']} has already been refunded.", code="charge_already_refunded")
    if amount is None:
        amount = remaining
    if amount <= 0:
        raise invalid("amount", "Refund amount must be positive.", code="parameter_invalid_integer")
    if amount > remaining:
        raise invalid(
            "amount",
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            code="amount_too_large",
        )
    if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
        raise invalid("reason", "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer")
    re = store.add(sp.refund(store.now(), ch, amount, reason, metadata))
    re["_settles_at"] = store.now() + REFUND_REFERENCE_DELAY
    previous = {"amount_refunded": ch["amount_refunded"], "refunded": ch["refunded"]}
    ch["amount_refunded"] = int(ch["amount_refunded"]) + amount
    ch["refunded"] = ch["amount_refunded"] >= ch["amount_captured"]
    store.emit("refund.created", re)
    store.emit("charge.refunded", ch, previous)
    return re

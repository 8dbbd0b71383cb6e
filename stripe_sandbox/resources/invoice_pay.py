"""`POST /v1/invoices/{id}/pay`: charge an open invoice now, with the customer's default card or `payment_method`.

As Stripe does: a decline answers 402 `card_error` (the attempt is counted and `invoice.payment_failed` is sent,
the scheduled retry stays); a success pays the invoice (`invoice.paid`) and a past-due subscription is active again.
"""

from __future__ import annotations

from ..api import Ctx, route
from ..errors import StripeError, invalid
from ..forms import get_str
from ..payments import attempt_payment
from ..store import JSON


def _declined(pi: JSON) -> StripeError:
    error = pi.get("last_payment_error") or {}
    return StripeError(
        402,
        str(error.get("message") or "Your card was declined."),
        type_="card_error",
        code=str(error.get("code") or "card_declined"),
        decline_code=error.get("decline_code"),
    )


@route("POST", "/v1/invoices/{id}/pay")
def pay_invoice(ctx: Ctx) -> JSON:
    inv = ctx.load("invoice")
    if inv["status"] == "paid":
        raise invalid("invoice", "Invoice is already paid", code=None)
    # Stripe takes payment of an open invoice and of one marked uncollectible (void and draft ones are refused)
    if inv["status"] not in ("open", "uncollectible"):
        raise invalid("invoice", f"You can only pay an open invoice; this one is {inv['status']}.", code=None)
    cust = ctx.store.get("customer", inv["customer"])
    assert cust is not None
    card: JSON | None = None
    pm_id = get_str(ctx.params, "payment_method")
    if pm_id:
        card = ctx.store.get("payment_method", pm_id)
        if card is None or card.get("customer") != cust["id"]:
            raise invalid(
                "payment_method",
                f"The PaymentMethod {pm_id} does not belong to the Customer {cust['id']}.",
                code="resource_missing",
            )
    if not attempt_payment(ctx.store, inv, cust, next_attempt=inv.get("next_payment_attempt"), card=card):
        pi = ctx.store.get("payment_intent", inv["_payment_intent"])
        assert pi is not None
        raise _declined(pi)
    details = (inv.get("parent") or {}).get("subscription_details") or {}
    sub = ctx.store.get("subscription", str(details.get("subscription") or ""))
    if sub is not None and sub["status"] == "past_due":
        previous = {"status": sub["status"]}
        sub["status"] = "active"
        ctx.store.emit("customer.subscription.updated", sub, previous)
    return inv

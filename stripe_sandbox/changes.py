"""Changing a subscription's items through `POST /v1/subscriptions/{id}`: proration, the immediate invoice of
`always_invoice` (or of an interval change), and `payment_behavior=pending_if_incomplete`.

With `pending_if_incomplete` the invoice is created and charged first; when the charge fails nothing of the
subscription changes but `pending_update` (what would apply once paid, expiring after 23 hours) and `latest_invoice`
(the open proration invoice), as Stripe documents it.
"""

from __future__ import annotations

from typing import Any

from .errors import invalid
from .forms import get_str
from .payments import attempt_payment, finalize_new_invoice, new_invoice
from .periods import items_snapshot, set_period
from .prorations import Change, invoice_line, item_updates, new_items, plan_change, proration_behavior, proration_date
from .store import JSON, Store

PENDING_UPDATE_SECONDS = 23 * 3600


def _apply(sub: JSON, change: Change) -> None:
    sub["items"]["data"] = change.items
    set_period(sub, *change.period)
    if change.interval_changed:
        sub["_anchor"] = change.period[0]
        sub["_cycles"] = 1
        sub["billing_cycle_anchor"] = change.period[0]


def invoices_now(change: Change, behavior: str) -> bool:
    """Whether a change is invoiced at once: always with a new billing interval, else with always_invoice."""
    return change.interval_changed or (behavior == "always_invoice" and bool(change.lines))


def change_items(store: Store, sub: JSON, params: dict[str, Any], payment_behavior: str, previous: JSON) -> None:
    updates = item_updates(params)
    if not updates:
        return
    behavior = proration_behavior(params)
    at = proration_date(sub, get_str(params, "proration_date"), store.now())
    change = plan_change(store, sub, new_items(store, sub, updates), behavior, at)
    before = items_snapshot(sub)
    if not invoices_now(change, behavior):
        if behavior == "create_prorations" and change.lines:
            sub["_pending_lines"] = [*(sub.get("_pending_lines") or []), *change.lines]
        _apply(sub, change)
        previous["items"] = before
        return
    cust = store.get("customer", sub["customer"])
    assert cust is not None
    if change.total < 0:
        # A credit larger than the charge goes to the customer's balance at Stripe; the sandbox keeps no balance.
        raise invalid(
            "items",
            "This change would credit the customer more than it charges: Stripe would keep the difference as "
            "customer balance, which the sandbox does not emulate. Schedule the change for the period end instead.",
        )
    inv = new_invoice(store, cust, sub, "subscription_update", store.now(), store.now())
    inv["lines"]["data"] = [invoice_line(inv["id"], sub, spec) for spec in change.lines]
    finalize_new_invoice(store, cust, sub, inv)
    previous["latest_invoice"] = inv.pop("_previous_latest", None)
    paid = attempt_payment(store, inv, cust, next_attempt=None)
    if paid or payment_behavior != "pending_if_incomplete":
        _apply(sub, change)
        previous["items"] = before
        if not paid:
            previous["status"] = sub["status"]
            sub["status"] = "past_due"
        return
    previous["pending_update"] = sub.get("pending_update")
    sub["pending_update"] = {
        "billing_cycle_anchor": change.period[0] if change.interval_changed else None,
        "discount": None,
        "discounts": [],
        "expires_at": store.now() + PENDING_UPDATE_SECONDS,
        "metadata": None,
        "subscription_items": [
            {**item, "current_period_start": change.period[0], "current_period_end": change.period[1]}
            for item in change.items
        ],
        "trial_end": None,
        "trial_from_plan": None,
    }

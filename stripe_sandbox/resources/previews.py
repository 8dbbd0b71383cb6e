"""`POST /v1/invoices/create_preview`: the invoice a subscription change would bring, not stored anywhere.

With `subscription_details[items]` and `proration_behavior=always_invoice` (or a new billing interval) it is the
invoice the update creates at once, built by the same `plan_change` as the update; otherwise it is the subscription's
next renewal invoice: pending prorations, then the next period at the items the change (or the schedule's next
phase) leaves.
"""

from __future__ import annotations

import copy

from .. import shapes_billing as sb
from ..api import Ctx, route
from ..changes import invoices_now
from ..errors import invalid, missing, not_found
from ..forms import get_dict, get_str
from ..periods import add_interval, current_period
from ..prorations import invoice_line, item_updates, new_items, plan_change, product_name, proration_behavior
from ..prorations import proration_date as proration_at
from ..store import JSON, new_id


def _next_phase_items(ctx: Ctx, sub: JSON, at: int) -> list[JSON] | None:
    sched = ctx.store.get("subscription_schedule", sub["schedule"]) if sub.get("schedule") else None
    if sched is None or sched["status"] != "active":
        return None
    phase = next((p for p in sched["phases"] if int(p["start_date"]) == at), None)
    if phase is None:
        return None
    items = []
    for i, entry in enumerate(phase["items"]):
        price = ctx.store.get("price", entry["price"])
        assert price is not None
        base = sub["items"]["data"][min(i, len(sub["items"]["data"]) - 1)]
        item = copy.deepcopy(base)
        item.update(price=copy.deepcopy(price), plan=sb.plan_of(price), quantity=entry["quantity"])
        items.append(item)
    return items


def _total(inv: JSON) -> None:
    total = sum(int(line["amount"]) for line in inv["lines"]["data"])
    for key in ("subtotal", "subtotal_excluding_tax", "total", "total_excluding_tax"):
        inv[key] = total
    inv["amount_due"] = inv["amount_remaining"] = max(total, 0)


@route("POST", "/v1/invoices/create_preview")
def create_preview(ctx: Ctx) -> JSON:
    p = ctx.params
    store = ctx.store
    sub_id = get_str(p, "subscription")
    if sub_id is None:
        raise missing("subscription")
    sub = store.get("subscription", sub_id)
    if sub is None:
        raise not_found("subscription", sub_id, "subscription")
    customer_id = get_str(p, "customer")
    if customer_id is not None and customer_id != sub["customer"]:
        raise invalid("customer", f"The subscription {sub_id} does not belong to the customer {customer_id}.")
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid("subscription", "No upcoming invoices for a canceled subscription.", code="invoice_upcoming_none")
    cust = store.get("customer", sub["customer"])
    assert cust is not None
    details = get_dict(p, "subscription_details") or {}
    behavior = proration_behavior(details)
    at = proration_at(sub, get_str(details, "proration_date"), store.now(), "subscription_details[proration_date]")
    updates = item_updates(details)
    items = new_items(store, sub, updates) if updates else copy.deepcopy(sub["items"]["data"])
    change = plan_change(store, sub, items, behavior, at)
    preview_id = "upcoming_" + new_id("in")
    if updates and invoices_now(change, behavior):
        inv = sb.invoice(store.now(), cust, sub, "", "subscription_update", period_start=store.now())
        inv["lines"]["data"] = [invoice_line(preview_id, sub, spec) for spec in change.lines]
    else:
        start, end = current_period(sub)
        inv = sb.invoice(end, cust, sub, "", "subscription_cycle", period_start=start, period_end=end)
        renewal_items = items if updates else (_next_phase_items(ctx, sub, end) or items)
        specs = list(sub.get("_pending_lines") or [])
        if updates and behavior == "create_prorations":
            specs += change.lines
        lines = [invoice_line(preview_id, sub, spec) for spec in specs]
        recurring = renewal_items[0]["price"].get("recurring") or {"interval": "month", "interval_count": 1}
        next_end = add_interval(end, recurring["interval"], int(recurring["interval_count"]))
        for item in renewal_items:
            amount = int(item["price"]["unit_amount"] or 0) * int(item["quantity"])
            description = f"{item['quantity']} × {product_name(store, item['price'])}"
            lines.append(sb.invoice_line(preview_id, sub, item, amount, description, end, next_end))
        inv["lines"]["data"] = lines
        inv["next_payment_attempt"] = end
    inv.update(
        id=preview_id, number=None, default_payment_method=cust["invoice_settings"].get("default_payment_method")
    )
    inv["lines"]["url"] = f"/v1/invoices/{preview_id}/lines"
    for line in inv["lines"]["data"]:
        line["invoice"] = preview_id
    _total(inv)
    return inv

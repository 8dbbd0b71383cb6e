"""Price changes of a subscription and what Stripe invoices for them (classic billing mode).

Stripe prorates to the second: the unused part of the current period is credited at the old price and the
remaining part charged at the new one, each `unit_amount × quantity × remaining / period` rounded to the minor unit.
A change of billing interval restarts the billing cycle at the change: the unused time is credited and a whole new
period is charged at once. The same function builds the lines of the real update and of `create_preview`, so a
preview with the update's `proration_date` shows exactly what the update invoices.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import shapes_billing as sb
from .errors import invalid, not_found
from .forms import get_bool, get_int, get_list, get_str
from .periods import add_interval, current_period
from .store import JSON, Store

PRORATIONS = ("none", "create_prorations", "always_invoice")


def prorate(amount: int, remaining: int, period: int) -> int:
    """amount × remaining / period, rounded half up to the minor unit (amount >= 0)."""
    if period <= 0:
        return 0
    return (2 * amount * remaining + period) // (2 * period)


def _recurring(price: JSON) -> tuple[str, int]:
    recurring = price.get("recurring") or {"interval": "month", "interval_count": 1}
    return str(recurring["interval"]), int(recurring["interval_count"])


def product_name(store: Store, price: JSON) -> str:
    product = store.get("product", price["product"])
    return str(product["name"]) if product else str(price["product"])


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%d %b %Y")


@dataclass
class Change:
    """A subscription's items after an update, and the lines Stripe bills for getting there."""

    items: list[JSON]
    lines: list[JSON] = field(default_factory=list)  # specs: item, amount, description, start, end, proration, credited
    interval_changed: bool = False
    period: tuple[int, int] = (0, 0)  # the current period after the change

    @property
    def total(self) -> int:
        return sum(int(line["amount"]) for line in self.lines)

    @property
    def changes_items(self) -> bool:
        return bool(self.lines) or self.interval_changed


def new_items(store: Store, sub: JSON, updates: list[Any]) -> list[JSON]:
    """The subscription's items with `items[...]` applied (not stored), validated as Stripe does."""
    items: list[JSON] = copy.deepcopy(sub["items"]["data"])
    start, end = current_period(sub)
    for i, entry in enumerate(updates):
        if not isinstance(entry, dict):
            raise invalid(f"items[{i}]", "Invalid item")
        item_id = get_str(entry, "id")
        price_id = get_str(entry, "price")
        price = store.get("price", price_id) if price_id else None
        if price_id and price is None:
            raise not_found("price", price_id, f"items[{i}][price]")
        if price is not None and price["currency"] != sub["currency"]:
            raise invalid(f"items[{i}][price]", "The price currency must match the subscription currency.")
        if item_id:
            item = next((x for x in items if x["id"] == item_id), None)
            if item is None:
                raise invalid(f"items[{i}][id]", f"No such subscription item: '{item_id}'", code="resource_missing")
            if get_bool(entry, "deleted"):
                items.remove(item)
                continue
            if price is not None:
                item["price"] = copy.deepcopy(price)
                item["plan"] = sb.plan_of(price)
            quantity = get_int(entry, "quantity")
            if quantity is not None:
                item["quantity"] = quantity
            if isinstance(entry.get("metadata"), dict):
                item["metadata"] = {k: str(v) for k, v in entry["metadata"].items() if v != ""}
        elif price is not None:
            items.append(
                sb.subscription_item(store.now(), sub["id"], price, get_int(entry, "quantity") or 1, start, end)
            )
        else:
            raise invalid(f"items[{i}]", "Each item needs an `id` or a `price`.")
    if not items:
        raise invalid("items", "A subscription must have at least one active plan.")
    return items


def proration_date(sub: JSON, raw: str | None, now: int, param: str = "proration_date") -> int:
    """The moment a change is prorated from: now, or a given time inside the current period."""
    if raw is None:
        return now
    if not raw.lstrip("-").isdigit():
        raise invalid(param, f"Invalid integer: {raw}")
    at = int(raw)
    start, end = current_period(sub)
    if not start <= at <= end:
        raise invalid(param, "The proration date must fall within the subscription's current billing period.")
    return at


def _credited(store: Store, sub: JSON, item: JSON, period: tuple[int, int]) -> JSON | None:
    """The invoice line that billed this item's current period (Stripe's `proration_details.credited_items`)."""
    for inv in store.all("invoice"):
        details = (inv.get("parent") or {}).get("subscription_details") or {}
        if details.get("subscription") != sub["id"]:
            continue
        for line in inv["lines"]["data"]:
            parent = line["parent"]["subscription_item_details"]
            if (
                parent["subscription_item"] == item["id"]
                and line["pricing"]["price_details"]["price"] == item["price"]["id"]
                and int(line["period"]["end"]) == period[1]
            ):
                return {"invoice": inv["id"], "invoice_line_items": [line["id"]]}
    return None


def plan_change(store: Store, sub: JSON, items: list[JSON], behavior: str, at: int) -> Change:
    """What replacing the subscription's items by `items` at time `at` bills, for a proration behavior."""
    start, end = current_period(sub)
    old = {item["id"]: item for item in sub["items"]["data"]}
    change = Change(items=items, period=(start, end))
    old_intervals = {_recurring(item["price"]) for item in sub["items"]["data"]}
    new_intervals = {_recurring(item["price"]) for item in items}
    change.interval_changed = old_intervals != new_intervals
    if change.interval_changed:
        interval, count = _recurring(items[0]["price"])
        change.period = (at, add_interval(at, interval, count))
    period = end - start
    remaining = end - at
    for item in items:
        before = old.get(item["id"])
        same = (
            before is not None
            and before["price"]["id"] == item["price"]["id"]
            and int(before["quantity"]) == int(item["quantity"])
        )
        amount_new = int(item["price"]["unit_amount"] or 0) * int(item["quantity"])
        name = product_name(store, item["price"])
        if same and not change.interval_changed:
            continue
        if behavior != "none" and before is not None and remaining > 0:
            credit = prorate(int(before["price"]["unit_amount"] or 0) * int(before["quantity"]), remaining, period)
            if credit:
                change.lines.append(
                    {
                        "item": before,
                        "amount": -credit,
                        "description": f"Unused time on {product_name(store, before['price'])} after {_day(at)}",
                        "start": at,
                        "end": end,
                        "proration": True,
                        "credited": _credited(store, sub, before, (start, end)),
                    }
                )
        if change.interval_changed:
            change.lines.append(
                {
                    "item": item,
                    "amount": amount_new,
                    "description": f"{item['quantity']} × {name}",
                    "start": change.period[0],
                    "end": change.period[1],
                    "proration": False,
                    "credited": None,
                }
            )
        elif behavior != "none" and remaining > 0:
            change.lines.append(
                {
                    "item": item,
                    "amount": prorate(amount_new, remaining, period),
                    "description": f"Remaining time on {name} after {_day(at)}",
                    "start": at,
                    "end": end,
                    "proration": True,
                    "credited": None,
                }
            )
    for item in old.values():
        if item["id"] not in {i["id"] for i in items} and behavior != "none" and remaining > 0:
            credit = prorate(int(item["price"]["unit_amount"] or 0) * int(item["quantity"]), remaining, period)
            change.lines.append(
                {
                    "item": item,
                    "amount": -credit,
                    "description": f"Unused time on {product_name(store, item['price'])} after {_day(at)}",
                    "start": at,
                    "end": end,
                    "proration": True,
                    "credited": _credited(store, sub, item, (start, end)),
                }
            )
    return change


def invoice_line(invoice_id: str, sub: JSON, spec: JSON) -> JSON:
    """An invoice line (Stripe's shape) from a line spec of `plan_change`."""
    line = sb.invoice_line(
        invoice_id, sub, spec["item"], int(spec["amount"]), str(spec["description"]), spec["start"], spec["end"]
    )
    details = line["parent"]["subscription_item_details"]
    details["proration"] = bool(spec["proration"])
    details["proration_details"] = {"credited_items": spec["credited"]}
    return line


def proration_behavior(params: dict[str, Any], default: str = "create_prorations") -> str:
    behavior = get_str(params, "proration_behavior") or default
    if behavior not in PRORATIONS:
        raise invalid("proration_behavior", f"Invalid proration_behavior: must be one of {', '.join(PRORATIONS)}")
    return behavior


def item_updates(params: dict[str, Any]) -> list[Any]:
    return get_list(params, "items")

"""Subscriptions: retrieve, list, update (cancel at period end, trial_end, price change) and cancel."""

from __future__ import annotations

import copy

from .. import shapes_billing as sb
from ..api import Ctx, route
from ..billing import cancel_now, current_period, items_snapshot, run_due, set_period
from ..errors import StripeError, invalid, not_found
from ..forms import get_bool, get_dict, get_int, get_list, get_str, merge_metadata
from ..listing import created_filter, paginate
from ..store import JSON

PRORATIONS = ("none", "create_prorations", "always_invoice")


@route("GET", "/v1/subscriptions/{id}")
def retrieve_subscription(ctx: Ctx) -> JSON:
    return ctx.load("subscription")


@route("GET", "/v1/subscriptions")
def list_subscriptions(ctx: Ctx) -> JSON:
    p = ctx.params
    customer = get_str(p, "customer")
    status = get_str(p, "status")
    price = get_str(p, "price")
    keep = created_filter(p)

    def wanted(s: JSON) -> bool:
        if status == "all":
            ok = True
        elif status:
            ok = s["status"] == status
        else:
            ok = s["status"] not in ("canceled", "incomplete_expired")
        return (
            ok
            and (not customer or s["customer"] == customer)
            and keep(s)
            and (not price or any(i["price"]["id"] == price for i in s["items"]["data"]))
        )

    return paginate([s for s in ctx.store.all("subscription") if wanted(s)], p, "/v1/subscriptions")


def _apply_items(ctx: Ctx, sub: JSON, previous: JSON) -> None:
    updates = get_list(ctx.params, "items")
    if not updates:
        return
    before = items_snapshot(sub)
    start, end = current_period(sub)
    for i, entry in enumerate(updates):
        if not isinstance(entry, dict):
            raise invalid(f"items[{i}]", "Invalid item")
        item_id = get_str(entry, "id")
        price_id = get_str(entry, "price")
        price = ctx.store.get("price", price_id) if price_id else None
        if price_id and price is None:
            raise not_found("price", price_id, f"items[{i}][price]")
        if price is not None and price["currency"] != sub["currency"]:
            raise invalid(f"items[{i}][price]", "The price currency must match the subscription currency.")
        if item_id:
            item = next((x for x in sub["items"]["data"] if x["id"] == item_id), None)
            if item is None:
                raise invalid(f"items[{i}][id]", f"No such subscription item: '{item_id}'", code="resource_missing")
            if get_bool(entry, "deleted"):
                sub["items"]["data"].remove(item)
                continue
            if price is not None:
                item["price"] = copy.deepcopy(price)
                item["plan"] = sb.plan_of(price)
            quantity = get_int(entry, "quantity")
            if quantity is not None:
                item["quantity"] = quantity
            if "metadata" in entry:
                item["metadata"] = merge_metadata(item["metadata"], entry)
        elif price is not None:
            sub["items"]["data"].append(
                sb.subscription_item(ctx.store.now(), sub["id"], price, get_int(entry, "quantity") or 1, start, end)
            )
        else:
            raise invalid(f"items[{i}]", "Each item needs an `id` or a `price`.")
    if not sub["items"]["data"]:
        raise invalid("items", "A subscription must have at least one active plan.")
    previous["items"] = before


CANCEL_AT_ENUMS = ("min_period_end", "max_period_end")


def _cancel_at(sub: JSON, raw: str | None, now: int) -> int | None:
    """`cancel_at` as a timestamp, or an enum naming the end of the items' current periods (2025-07-30.basil)."""
    if raw in (None, ""):
        return None
    if raw in CANCEL_AT_ENUMS:
        ends = [int(item["current_period_end"]) for item in sub["items"]["data"]]
        return min(ends) if raw == "min_period_end" else max(ends)
    if not str(raw).lstrip("-").isdigit():
        raise invalid("cancel_at", "Invalid cancel_at: must be a Unix timestamp, min_period_end or max_period_end.")
    cancel_at = int(str(raw))
    if cancel_at <= now:
        raise invalid("cancel_at", "cancel_at must be in the future.")
    return cancel_at


@route("POST", "/v1/subscriptions/{id}")
def update_subscription(ctx: Ctx) -> JSON:
    sub = ctx.load("subscription")
    p = ctx.params
    store = ctx.store
    now = store.now()
    previous: JSON = {}
    if sub["status"] in ("canceled", "incomplete_expired") and (
        set(p) - {"metadata", "cancellation_details", "expand"}
    ):
        raise StripeError(400, "A canceled subscription can only update its cancellation_details and metadata.")
    behavior = get_str(p, "proration_behavior")
    if behavior and behavior not in PRORATIONS:
        raise invalid("proration_behavior", f"Invalid proration_behavior: must be one of {', '.join(PRORATIONS)}")
    if "metadata" in p:
        previous["metadata"] = dict(sub["metadata"])
        sub["metadata"] = merge_metadata(sub["metadata"], p)
    if "description" in p:
        previous["description"] = sub["description"]
        sub["description"] = get_str(p, "description")
    details = get_dict(p, "cancellation_details")
    if details is not None:
        previous["cancellation_details"] = dict(sub["cancellation_details"])
        for key in ("comment", "feedback"):
            if key in details:
                sub["cancellation_details"][key] = get_str(details, key)
    cape = get_bool(p, "cancel_at_period_end")
    if cape is not None and cape != sub["cancel_at_period_end"]:
        previous.update(
            cancel_at_period_end=sub["cancel_at_period_end"], cancel_at=sub["cancel_at"], canceled_at=sub["canceled_at"]
        )
        sub["cancel_at_period_end"] = cape
        sub["cancel_at"] = current_period(sub)[1] if cape else None
        sub["canceled_at"] = now if cape else None
    if "cancel_at" in p:
        cancel_at = _cancel_at(sub, get_str(p, "cancel_at"), now)
        previous.setdefault("cancel_at", sub["cancel_at"])
        previous.setdefault("canceled_at", sub["canceled_at"])
        sub["cancel_at"] = cancel_at
        sub["canceled_at"] = now if cancel_at else None
        if sub["cancel_at_period_end"]:
            # A `cancel_at` (even an enum meaning the period end) replaces cancel_at_period_end.
            previous.setdefault("cancel_at_period_end", True)
            sub["cancel_at_period_end"] = False
    pm_id = get_str(p, "default_payment_method")
    if pm_id:
        if store.get("payment_method", pm_id) is None:
            raise not_found("payment_method", pm_id, "default_payment_method")
        previous["default_payment_method"] = sub["default_payment_method"]
        sub["default_payment_method"] = pm_id
    _apply_items(ctx, sub, previous)
    trial_end_raw = get_str(p, "trial_end")
    if trial_end_raw is not None:
        trial_end = now if trial_end_raw == "now" else get_int(p, "trial_end")
        assert trial_end is not None
        if trial_end < now:
            raise invalid("trial_end", "Invalid timestamp: must be an integer Unix timestamp in the future.")
        if sub["status"] not in ("active", "trialing"):
            raise invalid("trial_end", f"Cannot set trial_end on a subscription with status {sub['status']}.")
        previous.update(
            trial_end=sub["trial_end"],
            trial_start=sub["trial_start"],
            status=sub["status"],
            billing_cycle_anchor=sub["billing_cycle_anchor"],
        )
        previous.setdefault("items", items_snapshot(sub))
        start = current_period(sub)[0]
        sub["trial_start"] = sub["trial_start"] if sub["status"] == "trialing" else now
        sub["trial_end"] = trial_end
        sub["status"] = "trialing"
        sub["_anchor"] = trial_end
        sub["_cycles"] = 0
        sub["billing_cycle_anchor"] = trial_end
        set_period(sub, start, trial_end)
        if sub["cancel_at_period_end"]:
            sub["cancel_at"] = trial_end
    if previous:
        store.emit("customer.subscription.updated", sub, previous)
    if trial_end_raw == "now":
        run_due(store, retry_days=ctx.config.retry_days)
    return sub


@route("DELETE", "/v1/subscriptions/{id}")
def cancel_subscription(ctx: Ctx) -> JSON:
    sub = ctx.load("subscription")
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise StripeError(404, f"No such subscription: '{sub['id']}'", code="resource_missing", param="id")
    details = get_dict(ctx.params, "cancellation_details") or {}
    for key in ("comment", "feedback"):
        if key in details:
            sub["cancellation_details"][key] = get_str(details, key)
    now = ctx.store.now()
    sub["canceled_at"] = now
    cancel_now(ctx.store, sub, now)
    return sub


def _items(ctx: Ctx) -> list[JSON]:
    return [item for sub in ctx.store.all("subscription") for item in sub["items"]["data"]]


@route("GET", "/v1/subscription_items/{id}")
def retrieve_subscription_item(ctx: Ctx) -> JSON:
    item = next((i for i in _items(ctx) if i["id"] == ctx.path["id"]), None)
    if item is None:
        raise not_found("subscription_item", ctx.path["id"])
    return item


@route("GET", "/v1/subscription_items")
def list_subscription_items(ctx: Ctx) -> JSON:
    sub = ctx.store.get("subscription", get_str(ctx.params, "subscription", required=True) or "")
    if sub is None:
        raise not_found("subscription", str(ctx.params.get("subscription")), "subscription")
    return paginate(sub["items"]["data"], ctx.params, "/v1/subscription_items")

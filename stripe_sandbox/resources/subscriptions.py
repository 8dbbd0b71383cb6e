"""Subscriptions: retrieve, list, update (cancel at period end, trial_end, price change) and cancel."""

from __future__ import annotations

from ..api import Ctx, route
from ..billing import cancel_now, run_due
from ..changes import change_items
from ..errors import StripeError, invalid, not_found
from ..forms import get_bool, get_dict, get_int, get_str, merge_metadata
from ..listing import created_filter, paginate
from ..periods import current_period, items_snapshot, set_period
from ..prorations import PRORATIONS
from ..schedules import refuse_cancel_change
from ..store import JSON

PAYMENT_BEHAVIORS = ("allow_incomplete", "pending_if_incomplete")
PENDING_PARAMS = {
    "expand",
    "payment_behavior",
    "proration_behavior",
    "proration_date",
    "billing_cycle_anchor",
    "items",
    "trial_end",
    "trial_from_plan",
    "add_invoice_items",
}


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
    payment_behavior = get_str(p, "payment_behavior") or "allow_incomplete"
    if payment_behavior not in PAYMENT_BEHAVIORS:
        raise invalid(
            "payment_behavior",
            f"The sandbox emulates payment_behavior {' and '.join(PAYMENT_BEHAVIORS)} only, not {payment_behavior}.",
        )
    if payment_behavior == "pending_if_incomplete" and set(p) - PENDING_PARAMS:
        raise invalid(
            "payment_behavior",
            "When `payment_behavior` is `pending_if_incomplete`, you can only pass the following parameters: "
            + ", ".join(sorted(PENDING_PARAMS))
            + ".",
        )
    if sub.get("pending_update") and "items" in p:
        raise invalid("items", "This subscription has a pending update: its invoice must be paid or expire first.")
    if "cancel_at_period_end" in p or "cancel_at" in p:
        refuse_cancel_change(sub)
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
    change_items(store, sub, p, payment_behavior, previous)
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

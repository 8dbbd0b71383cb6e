"""Checkout Sessions (subscription mode)."""

from __future__ import annotations

from typing import Any

from .. import coupons as cp
from .. import shapes
from ..api import Ctx, route
from ..errors import StripeError, invalid, missing, not_found
from ..forms import get_bool, get_dict, get_int, get_list, get_str, merge_metadata
from ..listing import created_filter, paginate
from ..store import JSON, Store


def _line_items(ctx: Ctx) -> tuple[list[JSON], str, int]:
    raw = get_list(ctx.params, "line_items")
    if not raw:
        raise missing("line_items")
    lines: list[JSON] = []
    currency: str | None = None
    total = 0
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise invalid(f"line_items[{i}]", "Invalid line item")
        price_id = get_str(entry, "price")
        if not price_id:
            raise missing(f"line_items[{i}][price]")
        price = ctx.store.get("price", price_id)
        if price is None:
            raise not_found("price", price_id, f"line_items[{i}][price]")
        if not price["active"]:
            raise invalid(f"line_items[{i}][price]", f"The price specified ({price_id}) is inactive.")
        if price["type"] != "recurring":
            raise invalid(
                f"line_items[{i}][price]",
                "You must provide at least one recurring price in `subscription` mode when using prices.",
            )
        quantity = get_int(entry, "quantity") or 1
        if currency and price["currency"] != currency:
            raise invalid("line_items", "All prices must use the same currency.")
        currency = price["currency"]
        total += int(price["unit_amount"]) * quantity
        lines.append({"price": price_id, "quantity": quantity})
    assert currency is not None
    return lines, currency, total


COLLECTIONS = ("always", "if_required")
END_BEHAVIORS = ("cancel", "create_invoice", "pause")


def _end_behavior(sub_data: dict[str, Any]) -> str:
    settings = get_dict(sub_data, "trial_settings") or {}
    behavior = get_str(get_dict(settings, "end_behavior") or {}, "missing_payment_method") or "create_invoice"
    if behavior not in END_BEHAVIORS:
        raise invalid(
            "subscription_data[trial_settings][end_behavior][missing_payment_method]",
            "Invalid missing_payment_method: must be one of cancel, create_invoice, or pause",
        )
    return behavior


def _discount_amount(store: Store, discounts: list[JSON], total: int, currency: str) -> int:
    off = 0
    for entry in discounts:
        cpn = store.get("coupon", entry["coupon"])
        assert cpn is not None
        off += cp.amount_off(cpn, total - off, currency)
    return off


@route("POST", "/v1/checkout/sessions")
def create_session(ctx: Ctx) -> JSON:
    p = ctx.params
    mode = get_str(p, "mode", required=True)
    if mode != "subscription":
        raise invalid("mode", "The sandbox only supports Checkout in `subscription` mode.")
    success_url = get_str(p, "success_url")
    ui_mode = get_str(p, "ui_mode") or "hosted"
    if not success_url and ui_mode == "hosted":
        raise missing("success_url")
    customer_id = get_str(p, "customer")
    customer_email = get_str(p, "customer_email")
    store = ctx.store
    if customer_id:
        if store.get("customer", customer_id) is None:
            raise not_found("customer", customer_id, "customer")
        if customer_email:
            raise invalid("customer_email", "You may only specify one of these parameters: customer, customer_email.")
    lines, currency, total = _line_items(ctx)
    sub_data = get_dict(p, "subscription_data") or {}
    trial_days = get_int(sub_data, "trial_period_days")
    if trial_days is not None and trial_days < 1:
        raise invalid("subscription_data[trial_period_days]", "trial_period_days must be at least 1.")
    end_behavior = _end_behavior(sub_data)
    collection = get_str(p, "payment_method_collection") or "always"
    if collection not in COLLECTIONS:
        raise invalid("payment_method_collection", "Invalid payment_method_collection: must be always or if_required")
    allow_codes = get_bool(p, "allow_promotion_codes")
    discounts = [
        cp.session_discount(store, entry if isinstance(entry, dict) else {}, i, customer_id)
        for i, entry in enumerate(get_list(p, "discounts"))
    ]
    if allow_codes and discounts:
        raise invalid(
            "allow_promotion_codes", "You may only specify one of these parameters: allow_promotion_codes, discounts."
        )
    if len(discounts) > 1:
        raise invalid("discounts", "You may only specify one discount on a Checkout Session.")
    off = _discount_amount(store, discounts, total, currency)
    now = store.now()
    expires_at = get_int(p, "expires_at") or now + 24 * 3600
    if not now + 1800 <= expires_at <= now + 24 * 3600:
        raise invalid(
            "expires_at",
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
        )
    session = shapes.checkout_session(
        now,
        cancel_url=get_str(p, "cancel_url"),
        success_url=success_url,
        client_reference_id=get_str(p, "client_reference_id"),
        customer=customer_id,
        customer_email=customer_email,
        currency=currency,
        amount_subtotal=0 if trial_days else total,
        amount_total=0 if trial_days else total - off,
        total_details={"amount_discount": 0 if trial_days else off, "amount_shipping": 0, "amount_tax": 0},
        discounts=discounts,
        payment_method_collection=collection,
        metadata=merge_metadata({}, p),
        expires_at=expires_at,
        locale=get_str(p, "locale"),
        customer_creation=None if customer_id else "always",
        allow_promotion_codes=allow_codes,
        ui_mode=ui_mode,
    )
    session["url"] = f"{ctx.config.base_url}/c/pay/{session['id']}"
    session["_line_items"] = lines
    session["_subscription_data"] = {
        "metadata": merge_metadata({}, sub_data),
        "trial_period_days": trial_days,
        "description": get_str(sub_data, "description"),
        "trial_settings": {"end_behavior": {"missing_payment_method": end_behavior}},
    }
    session["_total"] = total
    store.add(session)
    return session


@route("GET", "/v1/checkout/sessions/{id}")
def retrieve_session(ctx: Ctx) -> JSON:
    return ctx.load("checkout.session", label="checkout.session")


def _line_share(session: JSON, amount: int) -> int:
    """A line's part of the session's discount, in proportion to its amount."""
    total = int(session.get("_total") or 0)
    off = int(session["total_details"]["amount_discount"])
    return off * amount // total if total else 0


@route("GET", "/v1/checkout/sessions/{id}/line_items")
def session_line_items(ctx: Ctx) -> JSON:
    session = ctx.load("checkout.session")
    data: list[Any] = []
    for i, line in enumerate(session["_line_items"]):
        price = ctx.store.get("price", line["price"])
        assert price is not None
        product = ctx.store.get("product", price["product"])
        amount = int(price["unit_amount"]) * int(line["quantity"])
        discount = _line_share(session, amount)
        data.append(
            {
                "id": f"li_{session['id'][8:30]}{i}",
                "object": "item",
                "adjustable_quantity": None,
                "amount_discount": discount,
                "amount_subtotal": amount,
                "amount_tax": 0,
                "amount_total": amount - discount,
                "currency": price["currency"],
                "description": product["name"] if product else "",
                "metadata": {},
                "price": {k: v for k, v in price.items() if not k.startswith("_")},
                "quantity": line["quantity"],
            }
        )
    return {
        "object": "list",
        "data": data,
        "has_more": False,
        "url": f"/v1/checkout/sessions/{session['id']}/line_items",
    }


@route("POST", "/v1/checkout/sessions/{id}/expire")
def expire_session(ctx: Ctx) -> JSON:
    from ..billing import expire_session as expire

    session = ctx.load("checkout.session")
    if session["status"] != "open":
        raise StripeError(
            400,
            f'Only Checkout Sessions with a status in ["open"] can be expired. This '
            f'Checkout Session has a status of "{session["status"]}".',
        )
    expire(ctx.store, session)
    return session


@route("GET", "/v1/checkout/sessions")
def list_sessions(ctx: Ctx) -> JSON:
    p = ctx.params
    customer = get_str(p, "customer")
    status = get_str(p, "status")
    subscription = get_str(p, "subscription")
    keep = created_filter(p)
    items = [
        s
        for s in ctx.store.all("checkout.session")
        if (not customer or s["customer"] == customer)
        and (not status or s["status"] == status)
        and (not subscription or s["subscription"] == subscription)
        and keep(s)
    ]
    return paginate(items, p, "/v1/checkout/sessions")

"""Coupons (/v1/coupons) and promotion codes (/v1/promotion_codes)."""

from __future__ import annotations

import re

from .. import coupons as cp
from ..api import Ctx, route
from ..errors import StripeError, invalid, missing, not_found
from ..forms import get_bool, get_dict, get_int, get_str, merge_metadata
from ..listing import created_filter, paginate
from ..store import JSON

CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,500}")


def _percent(raw: str | None) -> float | None:
    if raw in (None, ""):
        return None
    try:
        value = float(str(raw))
    except ValueError:
        raise invalid("percent_off", "Invalid decimal: percent_off") from None
    if not 0 < value <= 100:
        raise invalid("percent_off", "Invalid percent_off: must be greater than 0 and at most 100.")
    return value


@route("POST", "/v1/coupons")
def create_coupon(ctx: Ctx) -> JSON:
    p = ctx.params
    store = ctx.store
    percent = _percent(get_str(p, "percent_off"))
    amount = get_int(p, "amount_off")
    currency = (get_str(p, "currency") or "").lower() or None
    if (percent is None) == (amount is None):
        raise StripeError(400, "You must pass exactly one of `percent_off` or `amount_off`.", code="parameter_missing")
    if amount is not None:
        if amount < 1:
            raise invalid("amount_off", "Invalid amount_off: must be a positive integer.")
        if currency is None:
            raise invalid("currency", "You must pass currency when passing amount_off.", code="parameter_missing")
    duration = get_str(p, "duration") or "once"
    if duration not in cp.DURATIONS:
        raise invalid("duration", "Invalid duration: must be one of once, repeating, or forever")
    months = get_int(p, "duration_in_months")
    if duration == "repeating" and (months is None or months < 1):
        raise invalid("duration_in_months", "You must pass duration_in_months when duration is repeating.")
    if duration != "repeating" and months is not None:
        raise invalid("duration_in_months", "duration_in_months is only valid when duration is repeating.")
    max_redemptions = get_int(p, "max_redemptions")
    if max_redemptions is not None and max_redemptions < 1:
        raise invalid("max_redemptions", "Invalid max_redemptions: must be a positive integer.")
    redeem_by = get_int(p, "redeem_by")
    if redeem_by is not None and redeem_by <= store.now():
        raise invalid("redeem_by", "Invalid redeem_by: must be in the future.")
    fields: JSON = {
        "amount_off": amount,
        "currency": currency if amount is not None else None,
        "duration": duration,
        "duration_in_months": months,
        "max_redemptions": max_redemptions,
        "metadata": merge_metadata({}, p),
        "name": get_str(p, "name"),
        "percent_off": percent,
        "redeem_by": redeem_by,
    }
    wanted_id = get_str(p, "id")
    if wanted_id:
        if store.get("coupon", wanted_id) is not None:
            raise invalid("id", "Coupon already exists.", code="resource_already_exists")
        fields["id"] = wanted_id
    return store.add(cp.coupon(store.now(), **fields))


def _coupon(ctx: Ctx) -> JSON:
    cpn = ctx.load("coupon")
    if cpn.get("_deleted"):
        raise not_found("coupon", cpn["id"])
    cp.refresh_validity(ctx.store, cpn)
    return cpn


@route("GET", "/v1/coupons/{id}")
def retrieve_coupon(ctx: Ctx) -> JSON:
    return _coupon(ctx)


@route("POST", "/v1/coupons/{id}")
def update_coupon(ctx: Ctx) -> JSON:
    cpn = _coupon(ctx)
    if set(ctx.params) - {"metadata", "name", "expand"}:
        raise invalid(sorted(set(ctx.params) - {"metadata", "name", "expand"})[0], "A coupon's terms cannot change.")
    if "name" in ctx.params:
        cpn["name"] = get_str(ctx.params, "name")
    cpn["metadata"] = merge_metadata(cpn["metadata"], ctx.params)
    return cpn


@route("DELETE", "/v1/coupons/{id}")
def delete_coupon(ctx: Ctx) -> JSON:
    """Deleting a coupon stops new redemptions; discounts already made keep applying (as at Stripe)."""
    cpn = ctx.load("coupon")
    cpn["_deleted"] = True
    return {"id": cpn["id"], "object": "coupon", "deleted": True}


@route("GET", "/v1/coupons")
def list_coupons(ctx: Ctx) -> JSON:
    keep = created_filter(ctx.params)
    items = [c for c in ctx.store.all("coupon") if not c.get("_deleted") and keep(c)]
    for cpn in items:
        cp.refresh_validity(ctx.store, cpn)
    return paginate(items, ctx.params, "/v1/coupons")


@route("POST", "/v1/promotion_codes")
def create_promotion_code(ctx: Ctx) -> JSON:
    p = ctx.params
    store = ctx.store
    promotion = get_dict(p, "promotion")
    if promotion is None:
        raise missing("promotion")
    if get_str(promotion, "type") != "coupon":
        raise invalid("promotion[type]", "Invalid promotion[type]: must be coupon")
    coupon_id = get_str(promotion, "coupon")
    if not coupon_id:
        raise missing("promotion[coupon]")
    cpn = store.get("coupon", coupon_id)
    if cpn is None or cpn.get("_deleted"):
        raise not_found("coupon", coupon_id, "promotion[coupon]")
    code = get_str(p, "code") or cp.coupon(0)["id"]
    if not CODE_PATTERN.fullmatch(code):
        raise invalid("code", "Invalid code: use only letters, digits, dashes and underscores.")
    if any(x["active"] and str(x["code"]).lower() == code.lower() for x in store.all("promotion_code")):
        raise invalid("code", "An active promotion code with `code` already exists.", code="resource_already_exists")
    expires_at = get_int(p, "expires_at")
    if expires_at is not None and expires_at <= store.now():
        raise invalid("expires_at", "Invalid expires_at: must be in the future.")
    if expires_at is not None and cpn.get("redeem_by") and expires_at > int(cpn["redeem_by"]):
        raise invalid("expires_at", "The promotion code cannot expire after its coupon's redeem_by date.")
    max_redemptions = get_int(p, "max_redemptions")
    if max_redemptions is not None and max_redemptions < 1:
        raise invalid("max_redemptions", "Invalid max_redemptions: must be a positive integer.")
    customer = get_str(p, "customer")
    if customer and store.get("customer", customer) is None:
        raise not_found("customer", customer, "customer")
    restrictions = get_dict(p, "restrictions") or {}
    minimum = get_int(restrictions, "minimum_amount")
    promo = cp.promotion_code(
        store.now(),
        cpn["id"],
        code,
        active=get_bool(p, "active") is not False,
        customer=customer,
        expires_at=expires_at,
        max_redemptions=max_redemptions,
        metadata=merge_metadata({}, p),
        restrictions={
            "first_time_transaction": bool(get_bool(restrictions, "first_time_transaction")),
            "minimum_amount": minimum,
            "minimum_amount_currency": (get_str(restrictions, "minimum_amount_currency") or "").lower() or None
            if minimum is not None
            else None,
        },
    )
    return store.add(promo)


@route("GET", "/v1/promotion_codes/{id}")
def retrieve_promotion_code(ctx: Ctx) -> JSON:
    return ctx.load("promotion_code")


@route("POST", "/v1/promotion_codes/{id}")
def update_promotion_code(ctx: Ctx) -> JSON:
    promo = ctx.load("promotion_code")
    active = get_bool(ctx.params, "active")
    if active is not None:
        if active and not promo["active"]:
            cpn = ctx.store.get("coupon", promo["promotion"]["coupon"])
            if cpn is None or cpn.get("_deleted") or not cp.coupon_valid(ctx.store, cpn):
                raise invalid("active", "A promotion code whose coupon is no longer valid cannot be reactivated.")
        promo["active"] = active
    promo["metadata"] = merge_metadata(promo["metadata"], ctx.params)
    return promo


@route("GET", "/v1/promotion_codes")
def list_promotion_codes(ctx: Ctx) -> JSON:
    p = ctx.params
    code = get_str(p, "code")
    coupon_id = get_str(p, "coupon")
    active = get_bool(p, "active")
    keep = created_filter(p)
    items = [
        x
        for x in ctx.store.all("promotion_code")
        if (code is None or x["code"] == code)
        and (coupon_id is None or x["promotion"]["coupon"] == coupon_id)
        and (active is None or x["active"] == active)
        and keep(x)
    ]
    return paginate(items, p, "/v1/promotion_codes")

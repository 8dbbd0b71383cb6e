"""Coupons, promotion codes and the discounts they become on Checkout Sessions, subscriptions and invoices.

Shapes of the pinned version (2025-09-30.clover and later): a promotion code names its coupon under
`promotion: {type: "coupon", coupon}`, a discount under `source: {type: "coupon", coupon}`; subscriptions, invoices
and invoice lines list discount ids, and invoices carry `total_discount_amounts` and lines `discount_amounts`.
"""

from __future__ import annotations

import calendar
import secrets
import string
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .errors import StripeError, invalid
from .store import JSON, Store, new_id

DURATIONS = ("once", "repeating", "forever")
COUPON_ALPHABET = string.ascii_uppercase + string.digits


def coupon(now: int, **fields: Any) -> JSON:
    obj: JSON = {
        "id": "".join(secrets.choice(COUPON_ALPHABET) for _ in range(8)),
        "object": "coupon",
        "amount_off": None,
        "created": now,
        "currency": None,
        "duration": "once",
        "duration_in_months": None,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "name": None,
        "percent_off": None,
        "redeem_by": None,
        "times_redeemed": 0,
        "valid": True,
    }
    obj.update(fields)
    return obj


def promotion_code(now: int, coupon_id: str, code: str, **fields: Any) -> JSON:
    obj: JSON = {
        "id": new_id("promo"),
        "object": "promotion_code",
        "active": True,
        "code": code,
        "created": now,
        "customer": None,
        "customer_account": None,
        "expires_at": None,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "promotion": {"coupon": coupon_id, "type": "coupon"},
        "restrictions": {"first_time_transaction": False, "minimum_amount": None, "minimum_amount_currency": None},
        "times_redeemed": 0,
    }
    obj.update(fields)
    return obj


def add_months(ts: int, months: int) -> int:
    dt = datetime.fromtimestamp(ts, UTC)
    index = dt.month - 1 + months
    year, month = dt.year + index // 12, index % 12 + 1
    return int(dt.replace(year=year, month=month, day=min(dt.day, calendar.monthrange(year, month)[1])).timestamp())


def coupon_valid(store: Store, cpn: JSON) -> bool:
    """A coupon can still be redeemed: not past `redeem_by`, not used `max_redemptions` times."""
    if cpn.get("redeem_by") is not None and store.now() > int(cpn["redeem_by"]):
        return False
    return cpn.get("max_redemptions") is None or int(cpn["times_redeemed"]) < int(cpn["max_redemptions"])


def refresh_validity(store: Store, cpn: JSON) -> None:
    cpn["valid"] = coupon_valid(store, cpn)


def promotion_code_usable(store: Store, promo: JSON, customer_id: str | None) -> str | None:
    """Why a promotion code cannot be redeemed now (Stripe's Checkout wording), or None when it can."""
    cpn = store.get("coupon", promo["promotion"]["coupon"])
    if not promo["active"] or cpn is None or not coupon_valid(store, cpn):
        return "This code is invalid."
    if promo.get("expires_at") is not None and store.now() > int(promo["expires_at"]):
        return "This code has expired."
    if promo.get("max_redemptions") is not None and int(promo["times_redeemed"]) >= int(promo["max_redemptions"]):
        return "This code has already been used the maximum number of times."
    if promo.get("customer") and promo["customer"] != customer_id:
        return "This code is invalid."
    return None


def find_active_code(store: Store, code: str) -> JSON | None:
    """The active promotion code with this customer-facing code (codes are case-insensitive at Checkout)."""
    wanted = code.strip().lower()
    return next(
        (p for p in store.all("promotion_code") if p["active"] and str(p["code"]).lower() == wanted),
        None,
    )


def session_discount(store: Store, entry: dict[str, Any], index: int, customer_id: str | None) -> JSON:
    """One `discounts[i]` of a Checkout Session create request, checked: {coupon, promotion_code}."""
    coupon_id, promo_id = entry.get("coupon"), entry.get("promotion_code")
    if bool(coupon_id) == bool(promo_id):
        raise invalid(f"discounts[{index}]", "You must pass exactly one of `coupon` or `promotion_code`.")
    if promo_id:
        promo = store.get("promotion_code", str(promo_id))
        if promo is None:
            raise StripeError(
                400,
                f"No such promotion code: '{promo_id}'",
                code="resource_missing",
                param=f"discounts[{index}][promotion_code]",
            )
        why = promotion_code_usable(store, promo, customer_id)
        if why:
            raise invalid(f"discounts[{index}][promotion_code]", why)
        return {"coupon": promo["promotion"]["coupon"], "promotion_code": promo["id"]}
    cpn = store.get("coupon", str(coupon_id))
    if cpn is None:
        raise StripeError(
            400, f"No such coupon: '{coupon_id}'", code="resource_missing", param=f"discounts[{index}][coupon]"
        )
    if not coupon_valid(store, cpn):
        raise invalid(f"discounts[{index}][coupon]", f"Coupon {cpn['id']} is no longer valid.")
    return {"coupon": cpn["id"], "promotion_code": None}


def amount_off(cpn: JSON, subtotal: int, currency: str) -> int:
    """What a coupon takes off a subtotal: a percentage rounded half up, or a fixed amount capped at the subtotal."""
    if cpn.get("percent_off") is not None:
        off = (Decimal(subtotal) * Decimal(str(cpn["percent_off"])) / 100).quantize(Decimal(1), ROUND_HALF_UP)
        return min(int(off), subtotal)
    if cpn.get("currency") != currency:
        return 0
    return min(int(cpn["amount_off"] or 0), subtotal)


def discount(store: Store, entry: JSON, *, customer_id: str, subscription_id: str, session_id: str | None) -> JSON:
    """Redeem a coupon (through a promotion code or directly) on a new subscription: the discount object."""
    now = store.now()
    cpn = store.get("coupon", entry["coupon"])
    assert cpn is not None
    end = None
    if cpn["duration"] == "repeating":
        end = add_months(now, int(cpn["duration_in_months"]))
    di = store.add(
        {
            "id": new_id("di"),
            "object": "discount",
            "checkout_session": session_id,
            "customer": customer_id,
            "customer_account": None,
            "end": end,
            "invoice": None,
            "invoice_item": None,
            "promotion_code": entry.get("promotion_code"),
            "source": {"coupon": cpn["id"], "type": "coupon"},
            "start": now,
            "subscription": subscription_id,
            "subscription_item": None,
            "_applied": 0,
        }
    )
    cpn["times_redeemed"] = int(cpn["times_redeemed"]) + 1
    refresh_validity(store, cpn)
    if entry.get("promotion_code"):
        promo = store.get("promotion_code", entry["promotion_code"])
        assert promo is not None
        promo["times_redeemed"] = int(promo["times_redeemed"]) + 1
    return di


def applies(store: Store, di: JSON, at: int) -> bool:
    """The discount still applies to an invoice created at `at` (once: the first paid invoice; repeating: until
    its end)."""
    cpn = store.get("coupon", di["source"]["coupon"])
    if cpn is None:
        return False
    if cpn["duration"] == "once":
        return int(di["_applied"]) == 0
    if cpn["duration"] == "repeating":
        return di["end"] is None or at < int(di["end"])
    return True


def discount_lines(store: Store, sub: JSON, lines: list[JSON], currency: str, at: int) -> list[tuple[JSON, int]]:
    """Apply the subscription's discounts to invoice lines in place; returns (discount, amount) per discount."""
    totals: list[tuple[JSON, int]] = []
    subtotal = sum(int(line["amount"]) for line in lines)
    if subtotal <= 0:
        return totals
    for di_id in list(sub.get("discounts") or []):
        di = store.get("discount", di_id)
        if di is None or not applies(store, di, at):
            continue
        cpn = store.get("coupon", di["source"]["coupon"])
        assert cpn is not None
        off = amount_off(cpn, subtotal, currency)
        if off <= 0:
            continue
        di["_applied"] = int(di["_applied"]) + 1
        remaining = off
        for i, line in enumerate(lines):
            share = remaining if i == len(lines) - 1 else off * int(line["amount"]) // subtotal
            remaining -= share
            line["discounts"].append(di["id"])
            line["discount_amounts"].append({"amount": share, "discount": di["id"]})
        totals.append((di, off))
        subtotal -= off
    return totals


def expired_discounts(store: Store, sub: JSON, at: int) -> list[str]:
    """Discount ids on a subscription that no longer apply after an invoice at `at` (once used, repeating ended)."""
    gone = []
    for di_id in sub.get("discounts") or []:
        di = store.get("discount", di_id)
        if di is None:
            continue
        cpn = store.get("coupon", di["source"]["coupon"])
        used = cpn is not None and cpn["duration"] == "once" and int(di["_applied"]) > 0
        ended = cpn is not None and cpn["duration"] == "repeating" and di["end"] is not None and at >= int(di["end"])
        if cpn is None or used or ended:
            gone.append(di_id)
    return gone


def apply_code_to_session(store: Store, session: JSON, code: str) -> str | None:
    """A promotion code typed on the hosted Checkout page: put its discount on the session and reprice it; the
    reason it is refused otherwise."""
    if not session.get("allow_promotion_codes"):
        return "Promotion codes are not accepted on this page."
    promo = find_active_code(store, code)
    if promo is None:
        return "This code is invalid."
    why = promotion_code_usable(store, promo, session.get("customer"))
    if why:
        return why
    cpn = store.get("coupon", promo["promotion"]["coupon"])
    assert cpn is not None
    total = int(session["_total"])
    trial = bool((session.get("_subscription_data") or {}).get("trial_period_days"))
    off = 0 if trial else amount_off(cpn, total, session["currency"])
    session["discounts"] = [{"coupon": cpn["id"], "promotion_code": promo["id"]}]
    session["total_details"]["amount_discount"] = off
    session["amount_total"] = 0 if trial else total - off
    return None

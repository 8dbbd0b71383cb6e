"""List pagination and `expand[]`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import StripeError, invalid
from .forms import get_int, get_str
from .store import JSON, Store, kind_of_id, public


def paginate(items: list[JSON], params: dict[str, Any], url: str) -> JSON:
    """Stripe cursor paging over items already in list order (newest first)."""
    limit = get_int(params, "limit") or 10
    if not 1 <= limit <= 100:
        raise invalid("limit", "Invalid integer: limit must be between 1 and 100")
    after = get_str(params, "starting_after")
    before = get_str(params, "ending_before")
    ids = [o["id"] for o in items]
    if after:
        if after not in ids:
            raise StripeError(400, f"No such object: '{after}'", code="resource_missing", param="starting_after")
        rest = items[ids.index(after) + 1 :]
        page, has_more = rest[:limit], len(rest) > limit
    elif before:
        if before not in ids:
            raise StripeError(400, f"No such object: '{before}'", code="resource_missing", param="ending_before")
        rest = items[: ids.index(before)]
        page, has_more = rest[-limit:], len(rest) > limit
    else:
        page, has_more = items[:limit], len(items) > limit
    return {"object": "list", "data": [public(o) for o in page], "has_more": has_more, "url": url}


def created_filter(params: dict[str, Any]) -> Callable[[JSON], bool]:
    created = params.get("created")
    if created is None:
        return lambda obj: True
    if isinstance(created, str):
        exact = int(created)
        return lambda obj: int(obj["created"]) == exact
    bounds = {op: int(v) for op, v in created.items() if op in ("gt", "gte", "lt", "lte")}

    def check(obj: JSON) -> bool:
        c = int(obj["created"])
        return (
            ("gt" not in bounds or c > bounds["gt"])
            and ("gte" not in bounds or c >= bounds["gte"])
            and ("lt" not in bounds or c < bounds["lt"])
            and ("lte" not in bounds or c <= bounds["lte"])
        )

    return check


def _sublist(items: list[JSON], url: str) -> JSON:
    return {"object": "list", "data": [public(o) for o in items], "has_more": False, "url": url}


def _invoice_payments(store: Store, inv: JSON) -> JSON:
    payments = [p for p in store.all("invoice_payment") if p["invoice"] == inv["id"]]
    return _sublist(payments, f"/v1/invoice_payments?invoice={inv['id']}")


def _charge_refunds(store: Store, ch: JSON) -> JSON:
    refunds = [r for r in store.all("refund") if r["charge"] == ch["id"]]
    return _sublist(refunds, f"/v1/charges/{ch['id']}/refunds")


INCLUDABLE: dict[tuple[str, str], Callable[[Store, JSON], JSON]] = {
    ("invoice", "payments"): _invoice_payments,
    ("charge", "refunds"): _charge_refunds,
}
"""Fields Stripe returns only when `expand[]` names them: (object type, field) -> builder of the field's value."""


def _object_of(store: Store, item: Any, head: str, full_path: str) -> Any:
    if not isinstance(item, str):
        return item
    kind = "coupon" if head == "coupon" else kind_of_id(item)
    found = store.get(kind, item) if kind else None
    if found is None:
        raise invalid("expand", f"This property cannot be expanded ({full_path}).")
    return public(found)


def _expand_one(store: Store, value: Any, rest: list[str], full_path: str) -> Any:
    if isinstance(value, list):
        return [_expand_one(store, v, rest, full_path) for v in value]
    if not rest:
        return value
    head, tail = rest[0], rest[1:]
    if isinstance(value, dict) and head not in value and (value.get("object"), head) in INCLUDABLE:
        value[head] = INCLUDABLE[(value["object"], head)](store, value)
    if not isinstance(value, dict) or head not in value:
        raise invalid("expand", f"This property cannot be expanded ({full_path}).")
    target = value[head]
    if isinstance(target, list):
        # a list of ids (`discounts`): each id becomes its object, then the rest of the path applies to each
        value[head] = [_expand_one(store, _object_of(store, item, head, full_path), tail, full_path) for item in target]
        return value
    if isinstance(target, str):
        # coupon ids carry no prefix (an admin may name them): the field says what they are
        kind = "coupon" if head == "coupon" else kind_of_id(target)
        found = store.get(kind, target) if kind else None
        if found is None:
            raise invalid("expand", f"This property cannot be expanded ({full_path}).")
        target = public(found)
    elif target is None:
        return value
    value[head] = _expand_one(store, target, tail, full_path)
    return value


def expand(store: Store, obj: JSON, paths: list[str]) -> JSON:
    for path in sorted(paths, key=lambda p: p.count(".")):
        parts = path.split(".")
        _expand_one(store, obj, parts, path)
    return obj

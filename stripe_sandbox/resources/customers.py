"""Customers, including list by email and the search query language subset we need."""

from __future__ import annotations

import re
from collections.abc import Callable

from .. import billing, shapes
from ..api import Ctx, route
from ..errors import invalid, not_found
from ..forms import get_dict, get_int, get_list, get_str, merge_metadata
from ..listing import created_filter, paginate
from ..store import JSON, public

SIMPLE_FIELDS = ("email", "name", "phone", "description")
_CLAUSE = re.compile(
    r"""\s*(?P<neg>-)?(?P<field>[a-z_]+)(?:\[['"](?P<key>[^'"]+)['"]\])?\s*(?P<op>[:~])\s*"""
    r"""(?:['"](?P<value>(?:[^'"\\]|\\.)*)['"]|(?P<bare>\S+))\s*"""
)


def _parse_query(query: str) -> tuple[str, list[Callable[[JSON], bool]]]:
    joiner = "OR" if re.search(r"\sOR\s", query) else "AND"
    if joiner == "OR" and re.search(r"\sAND\s", query):
        raise invalid("query", "Mixing AND and OR in one search query is not supported.")
    checks: list[Callable[[JSON], bool]] = []
    for part in re.split(rf"\s{joiner}\s", query.strip()):
        m = _CLAUSE.fullmatch(part)
        if not m:
            raise invalid("query", f"Invalid search query: {query}", code="search_query_invalid")
        field, key, op = m.group("field"), m.group("key"), m.group("op")
        value = m.group("value") if m.group("value") is not None else m.group("bare")
        value = re.sub(r"\\(.)", r"\1", value)
        negate = bool(m.group("neg"))
        if field not in (*SIMPLE_FIELDS, "metadata", "created"):
            raise invalid(
                "query", f"Field '{field}' is not supported for customer search.", code="search_query_invalid"
            )

        def check(
            obj: JSON,
            field: str = field,
            key: str | None = key,
            op: str = op,
            value: str = value,
            negate: bool = negate,
        ) -> bool:
            actual = (obj.get("metadata") or {}).get(key or "") if field == "metadata" else obj.get(field)
            if actual is None:
                result = False
            elif op == "~":
                result = value.lower() in str(actual).lower()
            elif field == "email":
                result = str(actual).lower() == value.lower()
            else:
                result = str(actual) == value
            return result != negate

        checks.append(check)
    return joiner, checks


@route("POST", "/v1/customers")
def create_customer(ctx: Ctx) -> JSON:
    fields: JSON = {"metadata": merge_metadata({}, ctx.params)}
    for key in SIMPLE_FIELDS:
        if get_str(ctx.params, key):
            fields[key] = get_str(ctx.params, key)
    locales = get_list(ctx.params, "preferred_locales")
    if locales:
        fields["preferred_locales"] = [str(x) for x in locales]
    clock = get_str(ctx.params, "test_clock")
    if clock:
        if ctx.store.get("test_helpers.test_clock", clock) is None:
            raise not_found("test_helpers.test_clock", clock, "test_clock")
        fields["test_clock"] = clock
    cust = ctx.store.add(shapes.customer(ctx.store.now(), **fields))
    ctx.store.emit("customer.created", cust)
    return cust


@route("GET", "/v1/customers/search")
def search_customers(ctx: Ctx) -> JSON:
    query = get_str(ctx.params, "query", required=True)
    assert query is not None
    joiner, checks = _parse_query(query)
    combine = any if joiner == "OR" else all
    matches = [c for c in ctx.store.all("customer") if combine(chk(c) for chk in checks)]
    limit = get_int(ctx.params, "limit") or 10
    offset = int(get_str(ctx.params, "page") or 0)
    page = matches[offset : offset + limit]
    has_more = len(matches) > offset + limit
    return {
        "object": "search_result",
        "data": [public(c) for c in page],
        "has_more": has_more,
        "next_page": str(offset + limit) if has_more else None,
        "total_count": len(matches),
        "url": "/v1/customers/search",
    }


@route("GET", "/v1/customers/{id}")
def retrieve_customer(ctx: Ctx) -> JSON:
    cust = ctx.store.get("customer", ctx.path["id"])
    if cust is None:
        deleted = ctx.store.get("deleted_customer", ctx.path["id"])
        if deleted is not None:
            return {"id": deleted["id"], "object": "customer", "deleted": True}
        return ctx.load("customer")
    return cust


@route("POST", "/v1/customers/{id}")
def update_customer(ctx: Ctx) -> JSON:
    cust = ctx.load("customer")
    previous: JSON = {}
    for key in SIMPLE_FIELDS:
        if key in ctx.params:
            previous[key] = cust[key]
            cust[key] = get_str(ctx.params, key)
    if "metadata" in ctx.params:
        previous["metadata"] = dict(cust["metadata"])
        cust["metadata"] = merge_metadata(cust["metadata"], ctx.params)
    settings = get_dict(ctx.params, "invoice_settings")
    if settings and "default_payment_method" in settings:
        pm_id = get_str(settings, "default_payment_method")
        if pm_id and ctx.store.get("payment_method", pm_id) is None:
            raise invalid(
                "invoice_settings[default_payment_method]", f"No such PaymentMethod: '{pm_id}'", code="resource_missing"
            )
        previous["invoice_settings"] = dict(cust["invoice_settings"])
        cust["invoice_settings"]["default_payment_method"] = pm_id
    if previous:
        ctx.store.emit("customer.updated", cust, previous)
    return cust


@route("DELETE", "/v1/customers/{id}")
def delete_customer(ctx: Ctx) -> JSON:
    cust = ctx.load("customer")
    billing.delete_customer(ctx.store, cust)
    return {"id": cust["id"], "object": "customer", "deleted": True}


@route("GET", "/v1/customers")
def list_customers(ctx: Ctx) -> JSON:
    email = get_str(ctx.params, "email")
    keep = created_filter(ctx.params)
    items = [c for c in ctx.store.all("customer") if (not email or c.get("email") == email) and keep(c)]
    return paginate(items, ctx.params, "/v1/customers")

"""Products and prices."""

from __future__ import annotations

from .. import shapes
from ..api import Ctx, route
from ..errors import StripeError, invalid, missing, not_found
from ..forms import get_bool, get_dict, get_int, get_list, get_str, merge_metadata
from ..listing import created_filter, paginate
from ..store import JSON, public

INTERVALS = ("day", "week", "month", "year")


@route("POST", "/v1/products")
def create_product(ctx: Ctx) -> JSON:
    name = get_str(ctx.params, "name", required=True)
    assert name is not None
    fields: JSON = {"metadata": merge_metadata({}, ctx.params)}
    for key in ("description", "statement_descriptor", "unit_label", "url", "tax_code"):
        if get_str(ctx.params, key):
            fields[key] = get_str(ctx.params, key)
    custom_id = get_str(ctx.params, "id")
    if custom_id:
        if ctx.store.get("product", custom_id):
            raise StripeError(400, "Product already exists.", code="resource_already_exists", param="id")
        fields["id"] = custom_id
    active = get_bool(ctx.params, "active")
    if active is not None:
        fields["active"] = active
    prod = ctx.store.add(shapes.product(ctx.store.now(), name, **fields))
    ctx.store.emit("product.created", prod)
    return prod


@route("GET", "/v1/products/{id}")
def retrieve_product(ctx: Ctx) -> JSON:
    return ctx.load("product")


@route("POST", "/v1/products/{id}")
def update_product(ctx: Ctx) -> JSON:
    prod = ctx.load("product")
    previous: JSON = {}
    for key in ("name", "description", "default_price"):
        if key in ctx.params:
            previous[key] = prod[key]
            prod[key] = get_str(ctx.params, key)
    active = get_bool(ctx.params, "active")
    if active is not None:
        previous["active"] = prod["active"]
        prod["active"] = active
    if "metadata" in ctx.params:
        previous["metadata"] = prod["metadata"]
        prod["metadata"] = merge_metadata(prod["metadata"], ctx.params)
    prod["updated"] = ctx.store.now()
    ctx.store.emit("product.updated", prod, previous)
    return prod


@route("GET", "/v1/products")
def list_products(ctx: Ctx) -> JSON:
    active = get_bool(ctx.params, "active")
    ids = set(get_list(ctx.params, "ids"))
    keep = created_filter(ctx.params)
    items = [
        p
        for p in ctx.store.all("product")
        if (active is None or p["active"] == active) and (not ids or p["id"] in ids) and keep(p)
    ]
    return paginate(items, ctx.params, "/v1/products")


@route("POST", "/v1/prices")
def create_price(ctx: Ctx) -> JSON:
    store = ctx.store
    product_id = get_str(ctx.params, "product")
    product_data = get_dict(ctx.params, "product_data")
    if product_id:
        if store.get("product", product_id) is None:
            raise not_found("product", product_id, "product")
    elif product_data and product_data.get("name"):
        prod = store.add(shapes.product(store.now(), str(product_data["name"])))
        store.emit("product.created", prod)
        product_id = prod["id"]
    else:
        raise missing("product")
    currency = (get_str(ctx.params, "currency", required=True) or "").lower()
    if len(currency) != 3 or not currency.isalpha():
        raise invalid("currency", f"Invalid currency: {currency}.")
    unit_amount = get_int(ctx.params, "unit_amount", required=True)
    assert unit_amount is not None
    if unit_amount < 0:
        raise invalid("unit_amount", "Invalid non-negative integer")
    recurring = get_dict(ctx.params, "recurring")
    recurring_obj: JSON | None = None
    if recurring is not None:
        interval = get_str(recurring, "interval")
        if interval not in INTERVALS:
            raise invalid("recurring[interval]", f"Invalid recurring[interval]: must be one of {', '.join(INTERVALS)}")
        recurring_obj = {
            "interval": interval,
            "interval_count": get_int(recurring, "interval_count") or 1,
            "meter": None,
            "trial_period_days": get_int(recurring, "trial_period_days"),
            "usage_type": "licensed",
        }
    fields: JSON = {"metadata": merge_metadata({}, ctx.params)}
    for key in ("nickname", "lookup_key"):
        if get_str(ctx.params, key):
            fields[key] = get_str(ctx.params, key)
    if fields.get("lookup_key"):
        for other in store.all("price"):
            if other.get("lookup_key") == fields["lookup_key"]:
                if get_bool(ctx.params, "transfer_lookup_key"):
                    other["lookup_key"] = None
                else:
                    raise invalid("lookup_key", f"A price (`{other['id']}`) already uses that lookup key.")
    price = store.add(shapes.price(store.now(), product_id, currency, unit_amount, recurring_obj, **fields))
    store.emit("price.created", price)
    return price


@route("GET", "/v1/prices/{id}")
def retrieve_price(ctx: Ctx) -> JSON:
    return ctx.load("price")


@route("POST", "/v1/prices/{id}")
def update_price(ctx: Ctx) -> JSON:
    price = ctx.load("price")
    previous: JSON = {}
    active = get_bool(ctx.params, "active")
    if active is not None:
        previous["active"] = price["active"]
        price["active"] = active
    for key in ("nickname", "lookup_key"):
        if key in ctx.params:
            previous[key] = price[key]
            price[key] = get_str(ctx.params, key)
    if "metadata" in ctx.params:
        previous["metadata"] = price["metadata"]
        price["metadata"] = merge_metadata(price["metadata"], ctx.params)
    ctx.store.emit("price.updated", price, previous)
    return price


@route("GET", "/v1/prices")
def list_prices(ctx: Ctx) -> JSON:
    p = ctx.params
    active = get_bool(p, "active")
    product = get_str(p, "product")
    currency = get_str(p, "currency")
    type_ = get_str(p, "type")
    lookup_keys = set(get_list(p, "lookup_keys"))
    keep = created_filter(p)
    items = [
        x
        for x in ctx.store.all("price")
        if (active is None or x["active"] == active)
        and (not product or x["product"] == product)
        and (not currency or x["currency"] == currency)
        and (not type_ or x["type"] == type_)
        and (not lookup_keys or x["lookup_key"] in lookup_keys)
        and keep(x)
    ]
    result = paginate(items, p, "/v1/prices")
    result["data"] = [public(x) for x in result["data"]]
    return result

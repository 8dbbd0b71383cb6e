"""Events for webhook endpoints created on an older API version, in that version's shapes.

Stripe renders each event for the endpoint's `api_version`. The sandbox serves the pinned version and can render
the last version before 2025-03-31.basil (`PRE_BASIL_VERSION`, 2025-02-24.acacia), the one endpoints created earlier
still receive: invoices with `charge`, `payment_intent`, `paid`, `subscription` and no `parent`; subscriptions with
`current_period_start/end`; invoice lines with `subscription_item`, `price`, `type` and no `parent` / `pricing`.
"""

from __future__ import annotations

import copy

from payment.stripe.version import API_VERSION, PRE_BASIL_VERSION

from . import shapes_billing as sb
from .store import JSON, Store, public

SUPPORTED = (API_VERSION, PRE_BASIL_VERSION)
BASIL_ONLY_EVENTS = ("invoice_payment.",)


def delivers(version: str | None, event_type: str) -> bool:
    """Whether an endpoint on `version` receives events of this type (acacia had no invoice payment events)."""
    return version != PRE_BASIL_VERSION or not event_type.startswith(BASIL_ONLY_EVENTS)


def render(store: Store, event: JSON, version: str | None) -> JSON:
    """The public event as an endpoint on `version` receives it."""
    rendered: JSON = public(event)
    if version in (None, API_VERSION):
        return rendered
    rendered["api_version"] = version
    obj = rendered["data"]["object"]
    if obj.get("object") == "invoice":
        _acacia_invoice(store, obj)
    elif obj.get("object") == "subscription":
        _acacia_subscription(obj)
    return rendered


def _acacia_subscription(sub: JSON) -> None:
    items = sub["items"]["data"]
    sub["current_period_start"] = items[0]["current_period_start"] if items else None
    sub["current_period_end"] = items[0]["current_period_end"] if items else None


def _acacia_invoice(store: Store, inv: JSON) -> None:
    stored = store.get("invoice", inv["id"]) or {}
    pi = store.get("payment_intent", stored["_payment_intent"]) if stored.get("_payment_intent") else None
    parent = inv.pop("parent", None) or {}
    details = parent.get("subscription_details") or {}
    inv["charge"] = pi.get("latest_charge") if pi else None
    inv["payment_intent"] = pi["id"] if pi else None
    inv["paid"] = inv["status"] == "paid"
    inv["paid_out_of_band"] = False
    inv["subscription"] = details.get("subscription")
    inv["subscription_details"] = {"metadata": copy.deepcopy(details.get("metadata") or {})}
    for line in inv["lines"]["data"]:
        line_parent = line.pop("parent", None) or {}
        item_details = line_parent.get("subscription_item_details") or {}
        pricing = line.pop("pricing", None) or {}
        price_id = (pricing.get("price_details") or {}).get("price")
        price = store.get("price", price_id) if price_id else None
        line["invoice_item"] = item_details.get("invoice_item")
        line["plan"] = sb.plan_of(price) if price else None
        line["price"] = public(price) if price else None
        line["proration"] = bool(item_details.get("proration"))
        line["proration_details"] = copy.deepcopy(item_details.get("proration_details"))
        line["subscription_item"] = item_details.get("subscription_item")
        line["type"] = "subscription"

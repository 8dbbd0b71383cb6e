"""The portal's "Update payment method": Stripe collects the card with a SetupIntent, attaches it and makes it the
customer's default. Events, in order: setup_intent.created, payment_method.attached, setup_intent.succeeded,
customer.updated (with the new `invoice_settings.default_payment_method`, the one a service acts on)."""

from __future__ import annotations

from .payments import make_default, save_card
from .store import JSON, Store, new_id


def setup_intent(now: int, customer_id: str) -> JSON:
    sid = new_id("seti")
    return {
        "id": sid,
        "object": "setup_intent",
        "application": None,
        "automatic_payment_methods": None,
        "cancellation_reason": None,
        "client_secret": f"{sid}_secret_{new_id('x', 24)[2:]}",
        "created": now,
        "customer": customer_id,
        "description": None,
        "excluded_payment_method_types": None,
        "flow_directions": None,
        "last_setup_error": None,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {"mandate_options": None, "network": None, "request_three_d_secure": "automatic"}
        },
        "payment_method_types": ["card"],
        "single_use_mandate": None,
        "status": "requires_payment_method",
        "usage": "off_session",
    }


def update_card(store: Store, cust: JSON, card: JSON) -> JSON:
    """Save `card` through a SetupIntent and make it the default, as the portal does. Returns the payment method."""
    si = store.add(setup_intent(store.now(), cust["id"]))
    store.emit("setup_intent.created", si)
    pm = save_card(store, cust, card)
    si.update(status="succeeded", payment_method=pm["id"])
    store.emit("setup_intent.succeeded", si)
    make_default(store, cust, pm)
    return pm

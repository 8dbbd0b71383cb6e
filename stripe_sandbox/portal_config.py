"""Billing portal configurations: what a portal session lets the customer do.

The shape is the pinned API version's `billing_portal.configuration`. The account's default configuration
(`is_default`, id `bpc_sandboxdefault`) exists from the first time anything needs it and offers what the sandbox's
portal page always offered: card update, invoice history, cancel at period end (and renew), no plan switch and no
customer details. A session created with `configuration=bpc_...` shows only what that configuration enables.
The sandbox's portal page has no plan switch at all, so `subscription_update.enabled` only matters as "not offered".
"""

from __future__ import annotations

from typing import Any

from .errors import StripeError, invalid, missing, not_found
from .forms import get_bool, get_dict, get_list, get_str, merge_metadata
from .store import JSON, Store, new_id

DEFAULT_ID = "bpc_sandboxdefault"
KIND = "billing_portal.configuration"
FEATURES = (
    "customer_update",
    "invoice_history",
    "payment_method_update",
    "subscription_cancel",
    "subscription_update",
)
CUSTOMER_UPDATES = {"address", "email", "name", "phone", "shipping", "tax_id"}
CANCEL_MODES = {"at_period_end", "immediately"}
PRORATIONS = {"always_invoice", "create_prorations", "none"}
REASONS = [
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "other",
]


def _features(*, cancel: bool, invoices: bool, card: bool) -> JSON:
    return {
        "customer_update": {"allowed_updates": [], "enabled": False},
        "invoice_history": {"enabled": invoices},
        "payment_method_update": {"enabled": card, "payment_method_configuration": None},
        "subscription_cancel": {
            "cancellation_reason": {"enabled": False, "options": list(REASONS)},
            "enabled": cancel,
            "mode": "at_period_end",
            "proration_behavior": "none",
        },
        "subscription_update": {
            "billing_cycle_anchor": None,
            "default_allowed_updates": [],
            "enabled": False,
            "proration_behavior": "none",
            "schedule_at_period_end": {"conditions": []},
            "trial_update_behavior": "end_trial",
        },
    }


def configuration(now: int, *, object_id: str | None = None, is_default: bool = False) -> JSON:
    return {
        "id": object_id or new_id("bpc"),
        "object": KIND,
        "active": True,
        "application": None,
        "business_profile": {"headline": None, "privacy_policy_url": None, "terms_of_service_url": None},
        "created": now,
        "default_return_url": None,
        "features": _features(cancel=is_default, invoices=is_default, card=is_default),
        "is_default": is_default,
        "livemode": False,
        "login_page": {"enabled": False, "url": None},
        "metadata": {},
        "name": None,
        "updated": now,
    }


def default_configuration(store: Store) -> JSON:
    """The account's default configuration, made the first time it is needed."""
    found = store.get(KIND, DEFAULT_ID)
    if found is None:
        found = store.add(configuration(store.now(), object_id=DEFAULT_ID, is_default=True))
    return found


def for_session(store: Store, configuration_id: str | None) -> JSON:
    """The configuration a new portal session uses: the one named (active), or the default."""
    if configuration_id is None:
        return default_configuration(store)
    if configuration_id == DEFAULT_ID:
        default_configuration(store)
    found = store.get(KIND, configuration_id)
    if found is None:
        raise not_found("configuration", configuration_id, "configuration")
    if not found["active"]:
        raise invalid("configuration", f"The configuration {configuration_id} is not active.")
    return found


def features_of(store: Store, portal: JSON) -> JSON:
    """What the portal page of this session may offer (the default's features for an unknown configuration)."""
    found = store.get(KIND, str(portal.get("configuration") or ""))
    features: JSON = (found or default_configuration(store))["features"]
    return features


def _flag(params: dict[str, Any], name: str, *, required: bool) -> bool | None:
    value = get_bool(params, "enabled")
    if value is None and required:
        raise missing(f"features[{name}][enabled]")
    return value


def _choice(params: dict[str, Any], key: str, allowed: set[str], name: str) -> str | None:
    value = get_str(params, key)
    if value is not None and value not in allowed:
        raise invalid(f"features[{name}][{key}]", f"Invalid {key}: must be one of {', '.join(sorted(allowed))}")
    return value


def apply_features(current: JSON, params: dict[str, Any] | None, *, creating: bool) -> None:
    """Set the features named in `params` (`enabled` is required for each one named on create)."""
    if params is None:
        return
    for name in params:
        if name not in FEATURES:
            raise StripeError(400, f"Received unknown parameter: features[{name}]", param=f"features[{name}]")
        raw = get_dict(params, name) or {}
        target = current[name]
        enabled = _flag(raw, name, required=creating)
        if enabled is not None:
            target["enabled"] = enabled
        if name == "customer_update" and "allowed_updates" in raw:
            updates = [str(u) for u in get_list(raw, "allowed_updates")]
            unknown = [u for u in updates if u not in CUSTOMER_UPDATES]
            if unknown:
                raise invalid("features[customer_update][allowed_updates]", f"Invalid allowed_updates: {unknown[0]}")
            target["allowed_updates"] = updates
        if name == "subscription_cancel":
            target["mode"] = _choice(raw, "mode", CANCEL_MODES, name) or target["mode"]
            proration = _choice(raw, "proration_behavior", PRORATIONS, name)
            target["proration_behavior"] = proration or target["proration_behavior"]
            reason = get_dict(raw, "cancellation_reason")
            if reason is not None:
                flag = get_bool(reason, "enabled")
                if flag is not None:
                    target["cancellation_reason"]["enabled"] = flag
                if "options" in reason:
                    target["cancellation_reason"]["options"] = [str(o) for o in get_list(reason, "options")]
        if name == "subscription_update":
            proration = _choice(raw, "proration_behavior", PRORATIONS, name)
            target["proration_behavior"] = proration or target["proration_behavior"]
            if "default_allowed_updates" in raw:
                target["default_allowed_updates"] = [str(u) for u in get_list(raw, "default_allowed_updates")]
        if name == "payment_method_update" and "payment_method_configuration" in raw:
            target["payment_method_configuration"] = get_str(raw, "payment_method_configuration")


def apply_fields(conf: JSON, params: dict[str, Any]) -> None:
    """The top-level fields create and update share."""
    profile = get_dict(params, "business_profile")
    if profile is not None:
        for key in ("headline", "privacy_policy_url", "terms_of_service_url"):
            if key in profile:
                conf["business_profile"][key] = get_str(profile, key)
    if "default_return_url" in params:
        conf["default_return_url"] = get_str(params, "default_return_url")
    if "name" in params:
        conf["name"] = get_str(params, "name")
    login = get_dict(params, "login_page")
    if login is not None:
        flag = get_bool(login, "enabled")
        if flag is not None:
            conf["login_page"]["enabled"] = flag
            conf["login_page"]["url"] = f"https://billing.stripe.com/p/login/test_{conf['id'][4:16]}" if flag else None
    conf["metadata"] = merge_metadata(conf["metadata"], params)

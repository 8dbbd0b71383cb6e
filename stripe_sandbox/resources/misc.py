"""Billing portal sessions and configurations, events, webhook endpoints and test clocks (which all share the one
sandbox clock)."""

from __future__ import annotations

import secrets

from .. import portal_config, shapes, shapes_payments, versions
from ..api import Ctx, route
from ..billing import run_due
from ..errors import invalid, missing, not_found
from ..forms import get_bool, get_dict, get_int, get_list, get_str, merge_metadata
from ..listing import created_filter, paginate
from ..store import JSON


@route("POST", "/v1/billing_portal/sessions")
def create_portal_session(ctx: Ctx) -> JSON:
    customer_id = get_str(ctx.params, "customer", required=True)
    assert customer_id is not None
    if ctx.store.get("customer", customer_id) is None:
        raise not_found("customer", customer_id, "customer")
    conf = portal_config.for_session(ctx.store, get_str(ctx.params, "configuration"))
    return_url = get_str(ctx.params, "return_url") or conf["default_return_url"]
    session = shapes.portal_session(ctx.store.now(), customer_id, return_url)
    session["configuration"] = conf["id"]
    session["locale"] = get_str(ctx.params, "locale")
    session["url"] = f"{ctx.config.base_url}/p/session/{session['id']}"
    return ctx.store.add(session)


@route("POST", "/v1/billing_portal/configurations")
def create_portal_configuration(ctx: Ctx) -> JSON:
    features = get_dict(ctx.params, "features")
    if features is None:
        raise missing("features")
    conf = portal_config.configuration(ctx.store.now())
    portal_config.apply_features(conf["features"], features, creating=True)
    portal_config.apply_fields(conf, ctx.params)
    return ctx.store.add(conf)


@route("GET", "/v1/billing_portal/configurations/{id}")
def retrieve_portal_configuration(ctx: Ctx) -> JSON:
    portal_config.default_configuration(ctx.store)
    return ctx.load(portal_config.KIND, label="configuration")


@route("POST", "/v1/billing_portal/configurations/{id}")
def update_portal_configuration(ctx: Ctx) -> JSON:
    portal_config.default_configuration(ctx.store)
    conf = ctx.load(portal_config.KIND, label="configuration")
    active = get_bool(ctx.params, "active")
    if active is not None:
        if conf["is_default"] and not active:
            raise invalid("active", "The default configuration cannot be deactivated.")
        conf["active"] = active
    portal_config.apply_features(conf["features"], get_dict(ctx.params, "features"), creating=False)
    portal_config.apply_fields(conf, ctx.params)
    conf["updated"] = ctx.store.now()
    return conf


@route("GET", "/v1/billing_portal/configurations")
def list_portal_configurations(ctx: Ctx) -> JSON:
    portal_config.default_configuration(ctx.store)
    active = get_bool(ctx.params, "active")
    is_default = get_bool(ctx.params, "is_default")
    items = [
        c
        for c in ctx.store.all(portal_config.KIND)
        if (active is None or c["active"] == active) and (is_default is None or c["is_default"] == is_default)
    ]
    return paginate(items, ctx.params, "/v1/billing_portal/configurations")


@route("GET", "/v1/events/{id}")
def retrieve_event(ctx: Ctx) -> JSON:
    return ctx.load("event")


def _type_matches(pattern: str, event_type: str) -> bool:
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern in ("*", event_type)


@route("GET", "/v1/events")
def list_events(ctx: Ctx) -> JSON:
    one = get_str(ctx.params, "type")
    many = [str(t) for t in get_list(ctx.params, "types")]
    if one and many:
        raise invalid("types", "You may only specify one of these parameters: type, types.")
    patterns = many or ([one] if one else [])
    keep = created_filter(ctx.params)
    items = [
        e
        for e in ctx.store.all("event")
        if keep(e) and (not patterns or any(_type_matches(p, e["type"]) for p in patterns))
    ]
    return paginate(items, ctx.params, "/v1/events")


@route("POST", "/v1/webhook_endpoints")
def create_webhook_endpoint(ctx: Ctx) -> JSON:
    url = get_str(ctx.params, "url", required=True)
    assert url is not None
    events = [str(e) for e in get_list(ctx.params, "enabled_events")]
    if not events:
        raise missing("enabled_events")
    # Sandbox extension: `secret=whsec_...` picks the signing secret (Stripe always generates one).
    secret = get_str(ctx.params, "secret") or "whsec_" + secrets.token_hex(16)
    if not secret.startswith("whsec_"):
        raise invalid("secret", "The sandbox's webhook secrets must start with whsec_.")
    endpoint = shapes.webhook_endpoint(
        ctx.store.now(),
        url,
        events,
        secret,
        description=get_str(ctx.params, "description"),
        api_version=get_str(ctx.params, "api_version"),
        metadata=merge_metadata({}, ctx.params),
    )
    if endpoint["api_version"] not in (None, *versions.SUPPORTED):
        supported = ", ".join(versions.SUPPORTED)
        raise invalid("api_version", f"The sandbox renders events only in these API versions: {supported}.")
    ctx.store.add(endpoint)
    return {**endpoint, "secret": secret}


@route("GET", "/v1/webhook_endpoints/{id}")
def retrieve_webhook_endpoint(ctx: Ctx) -> JSON:
    return ctx.load("webhook_endpoint")


@route("POST", "/v1/webhook_endpoints/{id}")
def update_webhook_endpoint(ctx: Ctx) -> JSON:
    endpoint = ctx.load("webhook_endpoint")
    if get_str(ctx.params, "url"):
        endpoint["url"] = get_str(ctx.params, "url")
    events = get_list(ctx.params, "enabled_events")
    if events:
        endpoint["enabled_events"] = [str(e) for e in events]
    disabled = get_bool(ctx.params, "disabled")
    if disabled is not None:
        endpoint["status"] = "disabled" if disabled else "enabled"
    endpoint["metadata"] = merge_metadata(endpoint["metadata"], ctx.params)
    return endpoint


@route("DELETE", "/v1/webhook_endpoints/{id}")
def delete_webhook_endpoint(ctx: Ctx) -> JSON:
    endpoint = ctx.load("webhook_endpoint")
    ctx.store.delete("webhook_endpoint", endpoint["id"])
    return {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}


@route("GET", "/v1/webhook_endpoints")
def list_webhook_endpoints(ctx: Ctx) -> JSON:
    keep = created_filter(ctx.params)
    return paginate([w for w in ctx.store.all("webhook_endpoint") if keep(w)], ctx.params, "/v1/webhook_endpoints")


@route("POST", "/v1/test_helpers/test_clocks")
def create_test_clock(ctx: Ctx) -> JSON:
    frozen_time = get_int(ctx.params, "frozen_time", required=True)
    assert frozen_time is not None
    now = ctx.store.now()
    if frozen_time < now:
        # One clock drives the whole sandbox and only moves forward.
        raise invalid("frozen_time", "The sandbox's test clocks cannot start before the sandbox clock.")
    clock = ctx.store.add(shapes_payments.test_clock(now, frozen_time, get_str(ctx.params, "name")))
    run_due(ctx.store, until=frozen_time, retry_days=ctx.config.retry_days)
    return clock


@route("GET", "/v1/test_helpers/test_clocks/{id}")
def retrieve_test_clock(ctx: Ctx) -> JSON:
    return ctx.load("test_helpers.test_clock", label="test_helpers.test_clock")


@route("POST", "/v1/test_helpers/test_clocks/{id}/advance")
def advance_test_clock(ctx: Ctx) -> JSON:
    clock = ctx.load("test_helpers.test_clock", label="test_helpers.test_clock")
    frozen_time = get_int(ctx.params, "frozen_time", required=True)
    assert frozen_time is not None
    if frozen_time < int(clock["frozen_time"]):
        raise invalid("frozen_time", "Cannot advance a test clock to a time before its current frozen time.")
    run_due(ctx.store, until=frozen_time, retry_days=ctx.config.retry_days)
    clock["frozen_time"] = frozen_time
    ctx.store.emit("test_helpers.test_clock.ready", clock)
    return clock


@route("DELETE", "/v1/test_helpers/test_clocks/{id}")
def delete_test_clock(ctx: Ctx) -> JSON:
    clock = ctx.load("test_helpers.test_clock", label="test_helpers.test_clock")
    ctx.store.delete("test_helpers.test_clock", clock["id"])
    return {"id": clock["id"], "object": "test_helpers.test_clock", "deleted": True}


@route("GET", "/v1/test_helpers/test_clocks")
def list_test_clocks(ctx: Ctx) -> JSON:
    return paginate(ctx.store.all("test_helpers.test_clock"), ctx.params, "/v1/test_helpers/test_clocks")

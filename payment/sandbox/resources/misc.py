"""Billing portal sessions, events and webhook endpoints."""

from __future__ import annotations

import secrets

from .. import shapes
from ..api import Ctx, route
from ..errors import invalid, missing, not_found
from ..forms import get_bool, get_list, get_str, merge_metadata
from ..listing import created_filter, paginate
from ..store import JSON


@route("POST", "/v1/billing_portal/sessions")
def create_portal_session(ctx: Ctx) -> JSON:
    customer_id = get_str(ctx.params, "customer", required=True)
    assert customer_id is not None
    if ctx.store.get("customer", customer_id) is None:
        raise not_found("customer", customer_id, "customer")
    session = shapes.portal_session(ctx.store.now(), customer_id, get_str(ctx.params, "return_url"))
    session["locale"] = get_str(ctx.params, "locale")
    session["url"] = f"{ctx.config.base_url}/p/session/{session['id']}"
    return ctx.store.add(session)


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

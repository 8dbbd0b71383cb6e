"""Invoices, payment intents, charges, refunds and payment methods."""

from __future__ import annotations

from ..api import Ctx, route
from ..errors import invalid
from ..forms import get_dict, get_int, get_str, merge_metadata
from ..listing import created_filter, paginate
from ..payments import create_refund
from ..store import JSON


def _filtered(ctx: Ctx, kind: str, url: str, *fields: str) -> JSON:
    wanted = {f: get_str(ctx.params, f) for f in fields}
    keep = created_filter(ctx.params)
    items = [o for o in ctx.store.all(kind) if all(v is None or o.get(f) == v for f, v in wanted.items()) and keep(o)]
    return paginate(items, ctx.params, url)


@route("GET", "/v1/invoices/{id}")
def retrieve_invoice(ctx: Ctx) -> JSON:
    return ctx.load("invoice")


@route("GET", "/v1/invoices/{id}/lines")
def invoice_lines(ctx: Ctx) -> JSON:
    inv = ctx.load("invoice")
    return paginate(inv["lines"]["data"], ctx.params, f"/v1/invoices/{inv['id']}/lines")


def _subscription_of(inv: JSON) -> str | None:
    details = (inv.get("parent") or {}).get("subscription_details") or {}
    return details.get("subscription")


@route("GET", "/v1/invoices")
def list_invoices(ctx: Ctx) -> JSON:
    subscription = get_str(ctx.params, "subscription")
    wanted = {f: get_str(ctx.params, f) for f in ("customer", "status")}
    keep = created_filter(ctx.params)
    items = [
        o
        for o in ctx.store.all("invoice")
        if all(v is None or o.get(f) == v for f, v in wanted.items())
        and (subscription is None or _subscription_of(o) == subscription)
        and keep(o)
    ]
    return paginate(items, ctx.params, "/v1/invoices")


@route("POST", "/v1/invoices/{id}/void")
def void_invoice(ctx: Ctx) -> JSON:
    """An open invoice becomes void (invoice.voided); a pending update waiting for it is dropped with it."""
    inv = ctx.load("invoice")
    if inv["status"] != "open":
        raise invalid(
            "invoice", f"You can only void an open invoice; this one is {inv['status']}.", code="invoice_not_open"
        )
    now = ctx.store.now()
    inv.update(status="void", amount_remaining=0, next_payment_attempt=None, auto_advance=False)
    inv["status_transitions"]["voided_at"] = now
    ctx.store.emit("invoice.voided", inv)
    sub = ctx.store.get("subscription", _subscription_of(inv) or "")
    if sub is not None and sub.get("pending_update") and sub.get("latest_invoice") == inv["id"]:
        previous = {"pending_update": sub["pending_update"]}
        sub["pending_update"] = None
        ctx.store.emit("customer.subscription.updated", sub, previous)
    return inv


@route("GET", "/v1/invoice_payments/{id}")
def retrieve_invoice_payment(ctx: Ctx) -> JSON:
    return ctx.load("invoice_payment")


@route("GET", "/v1/invoice_payments")
def list_invoice_payments(ctx: Ctx) -> JSON:
    invoice = get_str(ctx.params, "invoice")
    payment = get_dict(ctx.params, "payment") or {}
    status = get_str(ctx.params, "status")
    items = [
        p
        for p in ctx.store.all("invoice_payment")
        if (invoice is None or p["invoice"] == invoice)
        and (status is None or p["status"] == status)
        and all(p["payment"].get(k) == v for k, v in payment.items())
    ]
    return paginate(items, ctx.params, "/v1/invoice_payments")


@route("GET", "/v1/payment_intents/{id}")
def retrieve_payment_intent(ctx: Ctx) -> JSON:
    return ctx.load("payment_intent")


@route("GET", "/v1/payment_intents")
def list_payment_intents(ctx: Ctx) -> JSON:
    return _filtered(ctx, "payment_intent", "/v1/payment_intents", "customer")


@route("GET", "/v1/charges/{id}")
def retrieve_charge(ctx: Ctx) -> JSON:
    return ctx.load("charge")


@route("GET", "/v1/charges")
def list_charges(ctx: Ctx) -> JSON:
    return _filtered(ctx, "charge", "/v1/charges", "customer", "payment_intent")


@route("POST", "/v1/refunds")
def refund(ctx: Ctx) -> JSON:
    amount = get_int(ctx.params, "amount")
    return create_refund(ctx.store, ctx.params, amount, get_str(ctx.params, "reason"), merge_metadata({}, ctx.params))


@route("GET", "/v1/refunds/{id}")
def retrieve_refund(ctx: Ctx) -> JSON:
    return ctx.load("refund")


@route("POST", "/v1/refunds/{id}")
def update_refund(ctx: Ctx) -> JSON:
    re = ctx.load("refund")
    re["metadata"] = merge_metadata(re["metadata"], ctx.params)
    return re


@route("GET", "/v1/refunds")
def list_refunds(ctx: Ctx) -> JSON:
    return _filtered(ctx, "refund", "/v1/refunds", "charge", "payment_intent")


@route("GET", "/v1/payment_methods/{id}")
def retrieve_payment_method(ctx: Ctx) -> JSON:
    return ctx.load("payment_method", label="PaymentMethod")


@route("GET", "/v1/payment_methods")
def list_payment_methods(ctx: Ctx) -> JSON:
    return _filtered(ctx, "payment_method", "/v1/payment_methods", "customer", "type")

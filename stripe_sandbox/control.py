"""Test controls under /_sandbox: what a test does to Stripe that is not an API call of ours.

- `GET clock`, `POST clock/advance` (seconds= or to=): the one sandbox clock; renewals, retries, `cancel_at` and
  Checkout expiry happen as it passes them.
- `POST reset`, `GET state`, `GET|POST|DELETE faults` (inject Stripe errors), `POST webhooks/flush`,
  `GET webhooks/deliveries`.
- `POST checkout_sessions/{id}/pay` (card=, promotion_code=): pay like the hosted page; a declined card answers 402
  and creates nothing (no customer subscription, no invoice); `card=none` starts a trial without a card when the
  session has `payment_method_collection=if_required`; a promotion code is applied first (400 when refused).
- `POST customers/{id}/card` (card=): save a default card, like the portal. 4000000000000341 attaches but every
  charge is declined ("Your card was declined."); 4000000000009995 attaches and is declined for insufficient funds:
  the next renewal fails with that message in `charge.failure_message` and `payment_intent.last_payment_error`.
- `POST invoices/{id}/dashboard_refund` (amount=, reason=): a refund made in Stripe's Dashboard on the charge that
  paid the invoice, without metadata of ours (refund.created, charge.refunded).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .billing import complete_checkout, run_due
from .cards import CardError, charge_error, parse_card
from .coupons import apply_code_to_session
from .errors import StripeError
from .payments import attach_card, create_refund, invoice_charge
from .store import JSON, Store, public


async def _params(request: Request) -> dict[str, Any]:
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/json") and body:
        data = json.loads(body)
        return data if isinstance(data, dict) else {}
    if body:
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    return dict(request.query_params)


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _retry_days(request: Request) -> tuple[int, ...]:
    days: tuple[int, ...] = request.app.state.config.retry_days
    return days


async def clock(request: Request) -> JSONResponse:
    store = _store(request)
    return JSONResponse({"now": store.now(), "offset_seconds": store.clock_offset})


async def advance(request: Request) -> JSONResponse:
    store = _store(request)
    params = await _params(request)
    now = store.now()
    if params.get("to") not in (None, ""):
        target = int(params["to"])
    elif params.get("seconds") not in (None, ""):
        target = now + int(params["seconds"])
    else:
        return JSONResponse({"error": {"type": "invalid_request_error", "message": "Pass seconds or to."}}, 400)
    if target < now:
        return JSONResponse(
            {"error": {"type": "invalid_request_error", "message": "The sandbox clock only moves forward."}}, 400
        )
    processed = run_due(store, until=target, retry_days=_retry_days(request))
    store.save()
    return JSONResponse({"now": store.now(), "processed": processed})


async def reset(request: Request) -> JSONResponse:
    store = _store(request)
    await request.app.state.dispatcher.clear()
    store.reset()
    return JSONResponse({"reset": True, "now": store.now()})


async def state(request: Request) -> JSONResponse:
    store = _store(request)
    return JSONResponse(
        {
            "now": store.now(),
            "objects": {k: list(v.values()) for k, v in store.objects.items()},
            "faults": store.faults,
            "pending_webhooks": request.app.state.dispatcher.pending(),
        }
    )


async def faults(request: Request) -> JSONResponse:
    store = _store(request)
    if request.method == "POST":
        params = await _params(request)
        fault = {
            "method": str(params.get("method", "POST")).upper(),
            "path_prefix": str(params.get("path_prefix", "/v1/")),
            "status": int(params.get("status", 500)),
            "times": int(params.get("times", 1)),
        }
        for key in ("type", "code", "message", "should_retry", "delay_seconds"):
            if key in params:
                fault[key] = params[key]
        store.faults.append(fault)
    elif request.method == "DELETE":
        store.faults.clear()
    return JSONResponse({"faults": store.faults})


async def flush(request: Request) -> JSONResponse:
    params = await _params(request)
    dispatcher = request.app.state.dispatcher
    idle = await dispatcher.wait_idle(float(params.get("timeout", 10)))
    return JSONResponse({"idle": idle, "pending": dispatcher.pending()}, status_code=200 if idle else 504)


async def deliveries(request: Request) -> JSONResponse:
    return JSONResponse({"deliveries": request.app.state.dispatcher.deliveries})


def _card(store: Store, params: dict[str, Any]) -> dict[str, Any]:
    now = datetime.fromtimestamp(store.now(), UTC)
    return parse_card(
        str(params.get("card", "4242424242424242")),
        str(params.get("exp", f"12/{now.year + 3}")),
        str(params.get("cvc", "123")),
        now.year,
        now.month,
    )


async def pay_session(request: Request) -> JSONResponse:
    """Complete an open Checkout Session like the hosted page does (for tests without a browser)."""
    store = _store(request)
    run_due(store, retry_days=_retry_days(request))
    session = store.get("checkout.session", request.path_params["id"])
    if session is None or session["status"] != "open":
        return JSONResponse({"error": {"type": "invalid_request_error", "message": "Session is not open."}}, 400)
    params = await _params(request)
    code = str(params.get("promotion_code") or "")
    if code and not session.get("discounts"):
        refused = apply_code_to_session(store, session, code)
        if refused:
            return JSONResponse({"error": {"type": "invalid_request_error", "message": refused}}, 400)
    card: JSON | None = None
    try:
        if params.get("card") != "none":
            card = _card(store, params)
            error = charge_error(card["number"])
            if error:
                raise error
        elif session.get("payment_method_collection") != "if_required":
            raise CardError("Your card number is incomplete.", code="incomplete_number")
    except CardError as exc:
        return JSONResponse(
            {
                "error": {
                    "type": "card_error",
                    "code": exc.code,
                    "message": exc.message,
                    "decline_code": exc.decline_code,
                }
            },
            402,
        )
    cust = store.get("customer", session["customer"]) if session.get("customer") else None
    email = (cust or {}).get("email") or session.get("customer_email") or params.get("email")
    sub = complete_checkout(store, session, card, str(email) if email else None)
    store.save()
    redirect = (session.get("success_url") or "").replace("{CHECKOUT_SESSION_ID}", session["id"])
    return JSONResponse({"redirect": redirect, "session": public(session), "subscription": public(sub)})


async def set_card(request: Request) -> JSONResponse:
    """Save a card as the customer's default (like the portal's Update card)."""
    store = _store(request)
    cust = store.get("customer", request.path_params["id"])
    if cust is None:
        return JSONResponse({"error": {"type": "invalid_request_error", "message": "No such customer."}}, 404)
    try:
        card = _card(store, await _params(request))
    except CardError as exc:
        return JSONResponse({"error": {"type": "card_error", "code": exc.code, "message": exc.message}}, 402)
    pm = attach_card(store, cust, card)
    store.save()
    return JSONResponse({"payment_method": public(pm)})


async def dashboard_refund(request: Request) -> JSONResponse:
    """Refund a paid invoice's charge the way an operator does in Stripe's Dashboard: no metadata of ours.

    Emits what Stripe emits (refund.created, charge.refunded); pass `amount` for a partial refund."""
    store = _store(request)
    inv = store.get("invoice", request.path_params["id"])
    ch = invoice_charge(store, inv) if inv else None
    if ch is None:
        message = "No such invoice, or it was not paid by a charge."
        return JSONResponse({"error": {"type": "invalid_request_error", "message": message}}, 400)
    params = await _params(request)
    amount = int(params["amount"]) if params.get("amount") not in (None, "") else None
    reason = str(params["reason"]) if params.get("reason") else None
    try:
        refund = create_refund(store, {"charge": ch["id"]}, amount, reason, {})
    except StripeError as exc:
        return JSONResponse(exc.body(), exc.status)
    store.save()
    return JSONResponse({"refund": public(refund)})


ROUTES = [
    Route("/_sandbox/clock", clock, methods=["GET"]),
    Route("/_sandbox/clock/advance", advance, methods=["POST"]),
    Route("/_sandbox/reset", reset, methods=["POST"]),
    Route("/_sandbox/state", state, methods=["GET"]),
    Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
    Route("/_sandbox/webhooks/flush", flush, methods=["POST"]),
    Route("/_sandbox/webhooks/deliveries", deliveries, methods=["GET"]),
    Route("/_sandbox/checkout_sessions/{id}/pay", pay_session, methods=["POST"]),
    Route("/_sandbox/customers/{id}/card", set_card, methods=["POST"]),
    Route("/_sandbox/invoices/{id}/dashboard_refund", dashboard_refund, methods=["POST"]),
]

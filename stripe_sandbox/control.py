"""Test controls under /_sandbox: what a test does to Stripe that is not an API call of ours.

- `GET clock`, `POST clock/advance` (seconds= or to=): the one sandbox clock; renewals, retries, `cancel_at` and
  Checkout expiry happen as it passes them.
- `POST reset`, `GET state`, `GET|POST|DELETE faults` (inject Stripe errors: method=, path_prefix=, status=,
  times=; stage=execution fails the request after its endpoint began, so its answer is saved under its
  idempotency key and replayed to retries, as Stripe does even for 500s), `POST webhooks/flush`,
  `GET webhooks/deliveries`.
- `POST latency` (seconds=): every API answer waits that long from now on.
- `GET requests`: the API requests answered since the sandbox started, by method and route (`{"GET
  /v1/invoices/{id}": 300, ...}`), for benchmarks counting Stripe calls.
- `POST holds` (method=, path_prefix=): the next matching API request is parked before it runs, until
  `POST holds/{id}/release`; `POST holds/{id}/wait` (timeout=) answers once a request is parked there (504 when
  none came in time), so a test can look at what the caller holds while its Stripe call is in flight.
  `DELETE holds` (and a reset) releases every hold.
- `POST checkout_sessions/{id}/pay` (card=, promotion_code=): pay like the hosted page; a declined card answers 402
  and creates nothing (no customer subscription, no invoice); `card=none` starts a trial without a card when the
  session has `payment_method_collection=if_required`; a promotion code is applied first (400 when refused).
- `POST customers/{id}/card` (card=): save a default card, like the portal (setup_intent.created,
  payment_method.attached, setup_intent.succeeded, customer.updated). 4000000000000341 attaches but every
  charge is declined ("Your card was declined."); 4000000000009995 attaches and is declined for insufficient funds:
  the next renewal fails with that message in `charge.failure_message` and `payment_intent.last_payment_error`.
- `POST invoices/{id}/dashboard_refund` (amount=, reason=): a refund made in Stripe's Dashboard on the charge that
  paid the invoice, without metadata of ours (refund.created, charge.refunded).

Changes made behind the service's back, as an operator does in Stripe's Dashboard (the objects change exactly as
through the API, and the events are recorded in /v1/events). With `drop_webhooks=true` (the default for all but
`dashboard_refund`) no event is delivered: a webhook endpoint that was misconfigured or deleted.
- `POST subscriptions/{id}/dashboard_cancel` (at_period_end=true to stop renewing instead of ending now).
- `POST customers/{id}/dashboard_subscription` (price=, quantity=): a new subscription charged to the default card.
- `POST invoices/{id}/mark_uncollectible`: an open invoice marked uncollectible.
- `POST customers/{id}/dashboard_delete`: the customer deleted (its subscriptions end).
- `POST bulk/customers` (count=, price=, subscribe_every=, card=): `count` customers with a saved card, every
  `subscribe_every`-th one subscribed to `price` when given, all without webhooks (seeding benchmarks).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import shapes
from .api import Config, Hold
from .billing import cancel_now, complete_checkout, dashboard_subscription, delete_customer, mark_uncollectible, run_due
from .cards import CardError, charge_error, parse_card
from .coupons import apply_code_to_session
from .errors import StripeError
from .payments import attach_card, create_refund, invoice_charge
from .portal_card import update_card
from .store import JSON, Store, new_id, public


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
    config = request.app.state.config
    config.latency_seconds = config.startup_latency_seconds
    _release_all(config)
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


async def requests(request: Request) -> JSONResponse:
    return JSONResponse(dict(request.app.state.config.requests))


async def latency(request: Request) -> JSONResponse:
    """Stripe's latency from now on: every API answer waits `seconds` (0 to 30) first, so a test can watch what
    our side holds while Stripe is slow. A reset puts back the latency the sandbox started with."""
    config = request.app.state.config
    if request.method == "POST":
        params = await _params(request)
        try:
            seconds = float(params.get("seconds", ""))
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= 30:
            return JSONResponse(
                {"error": {"type": "invalid_request_error", "message": "Pass seconds between 0 and 30."}}, 400
            )
        config.latency_seconds = seconds
    return JSONResponse({"seconds": config.latency_seconds})


def _release_all(config: Config) -> None:
    for hold in config.holds:
        hold.released.set()
    config.holds.clear()


def _hold(request: Request) -> Hold | None:
    config: Config = request.app.state.config
    return next((h for h in config.holds if h.id == request.path_params["id"]), None)


async def holds(request: Request) -> JSONResponse:
    config: Config = request.app.state.config
    if request.method == "POST":
        params = await _params(request)
        method = str(params.get("method", "POST")).upper()
        prefix = str(params.get("path_prefix", ""))
        if method not in ("GET", "POST", "DELETE") or not prefix.startswith("/v1/"):
            return _bad("Pass method= GET, POST or DELETE and path_prefix= starting with /v1/.")
        hold = Hold(id=new_id("hold", 14), method=method, path_prefix=prefix)
        config.holds.append(hold)
        return JSONResponse(hold.public())
    if request.method == "DELETE":
        _release_all(config)
    return JSONResponse({"holds": [h.public() for h in config.holds]})


async def hold_wait(request: Request) -> JSONResponse:
    hold = _hold(request)
    if hold is None:
        return _bad("No such hold.", 404)
    params = await _params(request)
    try:
        await asyncio.wait_for(hold.parked.wait(), min(float(params.get("timeout") or 10), 60))
    except TimeoutError:
        return JSONResponse(hold.public(), 504)
    return JSONResponse(hold.public())


async def hold_release(request: Request) -> JSONResponse:
    config: Config = request.app.state.config
    hold = _hold(request)
    if hold is None:
        return _bad("No such hold.", 404)
    hold.released.set()
    config.holds.remove(hold)
    return JSONResponse(hold.public())


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
        for key in ("type", "code", "message", "should_retry", "delay_seconds", "retry_after", "stage"):
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
    pm = update_card(store, cust, card)
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
        with _webhooks(store, params, default_drop=False):
            refund = create_refund(store, {"charge": ch["id"]}, amount, reason, {})
    except StripeError as exc:
        return JSONResponse(exc.body(), exc.status)
    store.save()
    return JSONResponse({"refund": public(refund)})


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": {"type": "invalid_request_error", "message": message}}, status)


@contextmanager
def _webhooks(store: Store, params: dict[str, Any], *, default_drop: bool = True) -> Iterator[None]:
    """Events are recorded as Stripe records them; when dropped, none is delivered to any endpoint."""
    raw = str(params.get("drop_webhooks", "")).lower()
    drop = default_drop if raw == "" else raw in ("1", "true", "yes")
    if not drop:
        yield
        return
    deliver = store.on_event
    store.on_event = lambda event: 0
    try:
        yield
    finally:
        store.on_event = deliver


async def dashboard_cancel(request: Request) -> JSONResponse:
    """Cancel a subscription as in the Dashboard: now (default), or at the period end."""
    store = _store(request)
    sub = store.get("subscription", request.path_params["id"])
    if sub is None or sub["status"] in ("canceled", "incomplete_expired"):
        return _bad("No such live subscription.", 404)
    params = await _params(request)
    with _webhooks(store, params):
        if str(params.get("at_period_end", "")).lower() in ("1", "true", "yes"):
            previous = {"cancel_at_period_end": sub["cancel_at_period_end"]}
            sub["cancel_at_period_end"] = True
            sub["cancel_at"] = sub["items"]["data"][0]["current_period_end"]
            sub["canceled_at"] = store.now()
            store.emit("customer.subscription.updated", sub, previous)
        else:
            sub["canceled_at"] = store.now()
            cancel_now(store, sub, store.now())
    store.save()
    return JSONResponse({"subscription": public(sub)})


def _subscribe(store: Store, cust: JSON, params: dict[str, Any]) -> JSON | JSONResponse:
    price = store.get("price", str(params.get("price", "")))
    if price is None or price.get("recurring") is None:
        return _bad("Pass price= the id of a recurring price.")
    return dashboard_subscription(store, cust, price, int(params.get("quantity") or 1))


async def dashboard_create_subscription(request: Request) -> JSONResponse:
    """A subscription created in the Dashboard for a known customer (its default card is charged)."""
    store = _store(request)
    cust = store.get("customer", request.path_params["id"])
    if cust is None:
        return _bad("No such customer.", 404)
    params = await _params(request)
    with _webhooks(store, params):
        sub = _subscribe(store, cust, params)
    if isinstance(sub, JSONResponse):
        return sub
    store.save()
    return JSONResponse({"subscription": public(sub)})


async def invoice_uncollectible(request: Request) -> JSONResponse:
    """Mark an open invoice uncollectible (Stripe refuses it on a paid, void or draft invoice)."""
    store = _store(request)
    inv = store.get("invoice", request.path_params["id"])
    if inv is None:
        return _bad("No such invoice.", 404)
    if inv["status"] != "open":
        return _bad(f"Only an open invoice can be marked uncollectible (this one is {inv['status']}).")
    with _webhooks(store, await _params(request)):
        mark_uncollectible(store, inv)
    store.save()
    return JSONResponse({"invoice": public(inv)})


async def dashboard_delete_customer(request: Request) -> JSONResponse:
    store = _store(request)
    cust = store.get("customer", request.path_params["id"])
    if cust is None:
        return _bad("No such customer.", 404)
    with _webhooks(store, await _params(request)):
        delete_customer(store, cust)
    store.save()
    return JSONResponse({"id": cust["id"], "object": "customer", "deleted": True})


async def bulk_customers(request: Request) -> JSONResponse:
    """Many customers at once, each with a saved card, and every `subscribe_every`-th one (with price=) subscribed
    and its first invoice paid; no webhooks. Answers each customer with its subscription and that invoice (or
    nulls)."""
    store = _store(request)
    params = await _params(request)
    count = int(params.get("count") or 0)
    every = int(params.get("subscribe_every") or 1)
    if not 1 <= count <= 100_000 or every < 1:
        return _bad("Pass count= between 1 and 100000 (and subscribe_every= of at least 1).")
    made: list[JSON] = []
    with _webhooks(store, {"drop_webhooks": "true"}):
        for n in range(count):
            cust = store.add(shapes.customer(store.now(), email=f"bulk{n}@example.com"))
            store.emit("customer.created", cust)
            attach_card(store, cust, _card(store, params))
            sub: JSON | None = None
            if params.get("price") and n % every == 0:
                subscribed = _subscribe(store, cust, params)
                if isinstance(subscribed, JSONResponse):
                    return subscribed
                sub = subscribed
            invoice = store.get("invoice", sub["latest_invoice"]) if sub is not None else None
            made.append(
                {
                    "id": cust["id"],
                    "subscription": public(sub) if sub is not None else None,
                    "invoice": public(invoice) if invoice is not None else None,
                }
            )
    store.save()
    return JSONResponse({"customers": made})


ROUTES = [
    Route("/_sandbox/clock", clock, methods=["GET"]),
    Route("/_sandbox/clock/advance", advance, methods=["POST"]),
    Route("/_sandbox/reset", reset, methods=["POST"]),
    Route("/_sandbox/state", state, methods=["GET"]),
    Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
    Route("/_sandbox/latency", latency, methods=["GET", "POST"]),
    Route("/_sandbox/requests", requests, methods=["GET"]),
    Route("/_sandbox/holds", holds, methods=["GET", "POST", "DELETE"]),
    Route("/_sandbox/holds/{id}/wait", hold_wait, methods=["POST"]),
    Route("/_sandbox/holds/{id}/release", hold_release, methods=["POST"]),
    Route("/_sandbox/webhooks/flush", flush, methods=["POST"]),
    Route("/_sandbox/webhooks/deliveries", deliveries, methods=["GET"]),
    Route("/_sandbox/checkout_sessions/{id}/pay", pay_session, methods=["POST"]),
    Route("/_sandbox/customers/{id}/card", set_card, methods=["POST"]),
    Route("/_sandbox/invoices/{id}/dashboard_refund", dashboard_refund, methods=["POST"]),
    Route("/_sandbox/subscriptions/{id}/dashboard_cancel", dashboard_cancel, methods=["POST"]),
    Route("/_sandbox/customers/{id}/dashboard_subscription", dashboard_create_subscription, methods=["POST"]),
    Route("/_sandbox/invoices/{id}/mark_uncollectible", invoice_uncollectible, methods=["POST"]),
    Route("/_sandbox/customers/{id}/dashboard_delete", dashboard_delete_customer, methods=["POST"]),
    Route("/_sandbox/bulk/customers", bulk_customers, methods=["POST"]),
]

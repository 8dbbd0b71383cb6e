"""POST /api/v1/webhooks/stripe: verify, store once with its job in the same transaction, answer fast.

The route is HTTP only (body size, status codes, problem+json like every /api error); payment/stripe/inbox.py
verifies and stores.

Stripe retries anything but a 2xx for days, so: a bad signature is a 400 (nothing stored), a database we cannot
reach is a 503 (Stripe retries later), and a duplicate delivery is a 200 that changes nothing.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from payment.api.problems import from_error, problem
from payment.errors import PaymentError
from payment.http import BodyTooLarge, read_limited
from payment.jobs.stripe_events import APPLY_TASK
from payment.runtime import services_of
from payment.stripe.inbox import store_and_defer, verify

log = logging.getLogger(__name__)


async def stripe_webhook(request: Request) -> JSONResponse:
    services = services_of(request)
    try:
        payload = await read_limited(request, services.settings.webhook_max_body_bytes)
    except BodyTooLarge:
        return problem(413, "payload_too_large", "The event body is too large.")
    try:
        event = verify(services.stripe, payload, request.headers.get("stripe-signature"))
    except PaymentError as exc:
        return from_error(exc)
    try:
        # the event and the job applying it, one statement (one round trip, one transaction)
        stored = await services.db.on_driver(lambda conn: store_and_defer(conn, event, payload, task=APPLY_TASK))
    except Exception as exc:  # database down or overloaded: a 5xx makes Stripe deliver it again later
        log.warning("stripe event %s not stored: %s", event["id"], type(exc).__name__)
        return problem(503, "unavailable", "Temporarily unable to record the event; please retry.")
    return JSONResponse({"received": True, "duplicate": not stored.created}, headers={"Cache-Control": "no-store"})


routes: list[BaseRoute] = [Route("/webhooks/stripe", stripe_webhook, methods=["POST"])]

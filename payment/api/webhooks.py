"""POST /api/v1/webhooks/stripe: verify, store once with its job in the same transaction, answer fast.

Stripe retries anything but a 2xx for days, so: a bad signature is a 400 (nothing stored), a database we cannot
reach is a 503 (Stripe retries later), and a duplicate delivery is a 200 that changes nothing.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from payment.errors import PaymentError
from payment.runtime import services_of
from payment.stripe.events import APPLY_TASK
from payment.stripe.webhooks import store_and_defer, verify

log = logging.getLogger(__name__)


class _TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _problem(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers={"Cache-Control": "no-store"})


async def stripe_webhook(request: Request) -> JSONResponse:
    services = services_of(request)
    try:
        payload = await _body(request, services.settings.webhook_max_body_bytes)
    except _TooLarge:
        return _problem(413, "payload_too_large", "The event body is too large.")
    try:
        event = verify(services.stripe, payload, request.headers.get("stripe-signature"))
    except PaymentError as exc:
        return _problem(exc.status_code, exc.code, exc.message)
    try:
        # the event and the job applying it, one statement (one round trip, one transaction)
        stored = await services.db.on_driver(lambda conn: store_and_defer(conn, event, payload, task=APPLY_TASK))
    except Exception as exc:  # database down or overloaded: a 5xx makes Stripe deliver it again later
        log.warning("stripe event %s not stored: %s", event["id"], type(exc).__name__)
        return _problem(503, "unavailable", "Temporarily unable to record the event; please retry.")
    return JSONResponse({"received": True, "duplicate": not stored.created}, headers={"Cache-Control": "no-store"})


routes: list[BaseRoute] = [Route("/webhooks/stripe", stripe_webhook, methods=["POST"])]

"""POST /api/v1/webhooks/stripe: verify, store once with its job in the same transaction, answer fast.

The route is HTTP only (body size, status codes, problem+json like every /api error); payment/stripe/inbox.py
verifies and reads the event, payment/stripe/batching.py stores concurrent deliveries together.

Stripe retries anything but a 2xx for days, so: a bad signature is a 400 (nothing stored), a database we cannot
reach is a 503 (Stripe retries later), and a duplicate delivery is a 200 that changes nothing.

It is the busiest endpoint and needs none of the page middleware (no session, no cookie, no CSRF, no HTML), so
`WebhookFastPath`, the outermost middleware, hands a POST to this path straight to `stripe_webhook` (a plain ASGI
app); any other method still goes through the router (405 problem+json).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from payment.api.problems import from_error, problem
from payment.errors import PaymentError
from payment.http import SECURITY_HEADERS
from payment.jobs.stripe_events import APPLY_TASK
from payment.runtime import Services
from payment.stripe.batching import DeliveryBatcher
from payment.stripe.inbox import delivery, verify

log = logging.getLogger(__name__)

PATH = "/api/v1/webhooks/stripe"

_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    *SECURITY_HEADERS,
]
_ANSWERS = {True: b'{"received":true,"duplicate":true}', False: b'{"received":true,"duplicate":false}'}


class _TooLarge(Exception):
    pass


async def _body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, read no further than `limit` bytes (a declared Content-Length over it is refused unread)."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _batcher(app: Any, services: Services) -> DeliveryBatcher:
    """The app's batcher, made on first use (inside the event loop that serves the app)."""
    batcher: DeliveryBatcher | None = getattr(app.state, "stripe_delivery_batcher", None)
    if batcher is None:
        batcher = DeliveryBatcher(services.db, task=APPLY_TASK)
        app.state.stripe_delivery_batcher = batcher
    return batcher


async def _answer(scope: Scope, receive: Receive) -> Response | bytes:
    app = scope["app"]
    services: Services = app.state.services
    try:
        payload = await _body(scope, receive, services.settings.webhook_max_body_bytes)
    except _TooLarge:
        return problem(413, "payload_too_large", "The event body is too large.")
    signature = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"stripe-signature"), None)
    try:
        event = verify(services.stripe, payload, signature)
        row = delivery(event, payload)
    except PaymentError as exc:
        return from_error(exc)
    try:
        # the event and the job applying it, one statement shared with concurrent deliveries (one commit)
        stored = await _batcher(app, services).store(row)
    except Exception as exc:  # database down or overloaded: a 5xx makes Stripe deliver it again later
        log.warning("stripe event %s not stored: %s", row.event_id, type(exc).__name__)
        return problem(503, "unavailable", "Temporarily unable to record the event; please retry.")
    return _ANSWERS[not stored.created]


class StripeWebhook:
    """The endpoint as a plain ASGI app (an instance, so Starlette's Route does not wrap it as a request handler)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = await _answer(scope, receive)
        if isinstance(answer, Response):
            answer.raw_headers.extend(SECURITY_HEADERS)  # what SecurityHeadersMiddleware adds to every answer
            await answer(scope, receive, send)
            return
        headers = [*_HEADERS, (b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


stripe_webhook = StripeWebhook()


class WebhookFastPath:
    """Sends POST /api/v1/webhooks/stripe straight to its endpoint, past the routers and the page middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST":
            await stripe_webhook(scope, receive, send)
            return
        await self.app(scope, receive, send)


routes: list[BaseRoute] = [Route("/webhooks/stripe", stripe_webhook, methods=["POST"])]

"""POST /api/v1/sessions served in front of the routers and the page middleware: the client API's busiest call.

Client apps open a billing session each time a user clicks "Billing", so this call is the one measured against a
bare Starlette + asyncpg endpoint (benchmarks/sessions_api.py). `ApiFastPath`, an outer middleware beside the
Stripe webhook's, hands a POST to this path straight to `sessions`, a plain ASGI endpoint, which runs the same
`client.open_session` as the routed handler (API key, media type, size limit, JSON, the model's checks, the
one-statement hot path on a kept driver connection, the ORM path for anything else: same codes, same bodies) and
answers with what the skipped middleware would have added:

- the security headers (`SecurityHeadersMiddleware`, HSTS in production);
- a 503 problem with Retry-After when the database is unreachable or the pool busy (`UnavailableMiddleware`);
- a query string holding a NUL is left to `RequestSanityMiddleware` (its 400 `bad_request`), as is every other
  method (the router's 405 `method_not_allowed`).

An unexpected error still reaches Starlette's outermost error middleware (a logged 500) and Sentry.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payment.api import models
from payment.api.client import open_session
from payment.http import (
    HSTS,
    RETRY_AFTER_BUSY_SECONDS,
    RETRY_AFTER_DOWN_SECONDS,
    SECURITY_HEADERS,
    BodyTooLarge,
    send_unavailable,
)
from payment.outage import is_outage, is_pool_wait
from payment.runtime import Services

log = logging.getLogger(__name__)

PATH = "/api/v1/sessions"


async def receive_limited(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, read no further than `limit` bytes (a declared Content-Length over it is refused unread);
    ClientDisconnect when the client goes away before sending all of it."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class SessionsEndpoint:
    """POST /api/v1/sessions as a plain ASGI app."""

    def __init__(self, *, hsts: bool) -> None:
        self.security = [*SECURITY_HEADERS, *([HSTS] if hsts else [])]
        self.created_headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
            *self.security,
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = scope["app"].state.services
        authorization = content_type = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        try:
            answer = await open_session(
                services, authorization, content_type, lambda limit: receive_limited(scope, receive, limit)
            )
        except ClientDisconnect:
            return  # nobody to answer; nothing was written
        except Exception as exc:
            if not is_outage(exc):
                raise
            await self._unavailable(scope, send, exc)
            return
        if isinstance(answer, Response):
            answer.raw_headers.extend(self.security)
            await answer(scope, receive, send)
            return
        body = models.Session(id=answer.id, url=answer.url, expires_at=answer.expires_at).json_bytes()
        headers = [*self.created_headers, (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _unavailable(self, scope: Scope, send: Send, exc: Exception) -> None:
        busy = is_pool_wait(exc)
        log.warning(
            "POST %s answered 503: the database is %s (%s)", PATH, "busy" if busy else "unreachable", type(exc).__name__
        )

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], *self.security]
            await send(message)

        await send_unavailable(scope, with_headers, RETRY_AFTER_BUSY_SECONDS if busy else RETRY_AFTER_DOWN_SECONDS)


def _nul_in_query(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    return b"%00" in query or b"\x00" in query


class ApiFastPath:
    """Sends POST /api/v1/sessions straight to its endpoint, past the routers and the page middleware."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.sessions = SessionsEndpoint(hsts=hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST" and not _nul_in_query(scope):
            await self.sessions(scope, receive, send)
            return
        await self.app(scope, receive, send)

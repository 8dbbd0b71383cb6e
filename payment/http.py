"""HTTP plumbing shared by every adapter: security headers, the size-limited body reader, and a 503 instead of a
500 when the database is unreachable or too busy."""

from __future__ import annotations

import json
import logging
import re

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payment.outage import is_outage, is_pool_wait

log = logging.getLogger(__name__)

# /billing/<token>/...: the token is a bearer credential, never written to a log (static files are not tokens)
_BILLING_TOKEN = re.compile(r"^/billing/(?!static/)[^/?#]+")


def redact_path(path: str) -> str:
    """The path as logs may show it: `/billing/<redacted>/subscribe` instead of the billing session's token."""
    return _BILLING_TOKEN.sub("/billing/<redacted>", path)


# how long clients are told to wait: a busy pool frees up in seconds, an unreachable database takes longer
RETRY_AFTER_BUSY_SECONDS = 2
RETRY_AFTER_DOWN_SECONDS = 10

UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Please try again in a moment</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1f2937}</style>
</head><body><main data-testid="unavailable">
<h1>Please try again in a moment</h1>
<p>We are busy right now and could not finish this request. Nothing was changed. Please try again in a few
seconds.</p>
<p lang="th">ขณะนี้ระบบมีผู้ใช้งานจำนวนมาก กรุณาลองใหม่อีกครั้งในอีกสักครู่</p>
</main></body></html>
"""

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeadersMiddleware:
    """Adds the headers every page should carry (pure ASGI, so streaming responses pass through)."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        # production is HTTPS only (BASE_URL must be https://): browsers should never try plain HTTP again
        self.headers = [*SECURITY_HEADERS, *([HSTS] if hsts else [])]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in self.headers if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    """The request body is (or says it is) larger than the limit; nothing past the limit was read."""


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, read no further than `limit` bytes (a declared Content-Length over it is refused unread)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class UnavailableMiddleware:
    """Turns "database unreachable / pool exhausted" into a 503 with Retry-After: problem+json under /api, a friendly
    page elsewhere. One warning line is logged (no traceback, no SQL); any other error is left to the 500 path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started or not is_outage(exc):
                raise
            busy = is_pool_wait(exc)
            log.warning(
                "%s %s answered 503: the database is %s (%s)",
                scope.get("method"),
                redact_path(scope.get("path", "")),
                "busy" if busy else "unreachable",
                type(exc).__name__,
            )
            await send_unavailable(scope, send, RETRY_AFTER_BUSY_SECONDS if busy else RETRY_AFTER_DOWN_SECONDS)


async def send_unavailable(scope: Scope, send: Send, retry_after: int) -> None:
    path = scope.get("path", "")  # the full path, also inside a mounted app
    if path.startswith("/api"):
        body = json.dumps(
            {
                "type": "https://payment.aquoris.ai/problems/unavailable",
                "title": "Service unavailable",
                "status": 503,
                "code": "unavailable",
                "detail": f"The service is busy or its database unreachable; retry in {retry_after} s.",
            }
        ).encode()
        media = b"application/problem+json"
    else:
        body, media = UNAVAILABLE_PAGE.encode(), b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", media),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# PostgreSQL's bigint: a larger id in a path can name no row (and must not reach the database as a parameter)
MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"^[0-9]+$")


class RequestSanityMiddleware:
    """Refuses, before any route runs, what no route can serve: a NUL character in the query (PostgreSQL text cannot
    hold it) is a 400, an all-digit admin path segment beyond bigint is a 404."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope.get("path", "")
            query: bytes = scope.get("query_string", b"")
            if b"%00" in query or b"\x00" in query:  # filters and searches go to PostgreSQL as text
                await send_refusal(scope, send, 400, "bad_request", "The address contains a NUL character.")
                return
            # admin ids only: the API's externalUserId may well be a long number
            if path.startswith("/admin/") and any(
                _DIGITS.match(part) and int(part) > MAX_ID for part in path.split("/") if len(part) > 18
            ):
                await send_refusal(scope, send, 404, "not_found", "No such record.")
                return
        await self.app(scope, receive, send)


async def send_refusal(scope: Scope, send: Send, status: int, code: str, detail: str) -> None:
    if scope.get("path", "").startswith("/api"):
        body = json.dumps(
            {
                "type": f"https://payment.aquoris.ai/problems/{code}",
                "status": status,
                "code": code,
                "title": "Bad request" if status == 400 else "Not found",
                "detail": detail,
            }
        ).encode()
        media = b"application/problem+json"
    else:
        body = (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{detail}</title></head>'
            f"<body><main><h1>{detail}</h1><p>Check the address and try again.</p></main>"
            f"</body></html>"
        ).encode()
        media = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", media),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

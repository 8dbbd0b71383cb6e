"""One delivery attempt: sign per Standard Webhooks, check the address, POST with timeouts, keep an excerpt."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks.webhooks import Webhook

from payment.app_webhooks.addresses import AddressRefused, Resolver, resolve_destination, system_resolver
from payment.outbox.delivery import Claimed, Outcome

EXCERPT_BYTES = 512
CONNECT_TIMEOUT = 5.0
USER_AGENT = "Aquoris-Payment-Webhooks/1"


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent (compact, stable key order)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def signature_header(secrets: list[str], message_id: str, at: datetime, body: bytes) -> str:
    """`webhook-signature`: one `v1,<base64>` per active secret, space-separated (both during a rotation)."""
    text = body.decode()
    return " ".join(Webhook(secret).sign(message_id, at, text) for secret in secrets)


def _excerpt(raw: bytes) -> str:
    return raw[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def _pinned(url: str, address: str) -> tuple[str, str]:
    """The URL with its host replaced by the checked address, and the Host header to send."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if ":" in address else address
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host_header


async def post(
    url: str,
    secrets: list[str],
    message: Claimed,
    *,
    allow_private: bool,
    timeout: float,
    resolver: Resolver = system_resolver,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Outcome:
    """POST one message to an endpoint; any 2xx is success, anything else (also a timeout) is a failure."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host or parts.scheme not in ("http", "https"):
        return Outcome(ok=False, error="The endpoint URL is not an http(s) URL.")
    if not secrets:
        return Outcome(
            ok=False,
            error="The endpoint has no signing secret that can be read (SECRET_KEY changed?); rotate its secret.",
        )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    started = time.monotonic()
    try:
        address = await resolve_destination(host, port, allow_private=allow_private, resolver=resolver)
    except AddressRefused as exc:
        return Outcome(ok=False, error=exc.message)
    pinned_url, host_header = _pinned(url, address)
    body = body_bytes(message.payload)
    at = clock()
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": host_header,
        "webhook-id": message.message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature_header(secrets, message.message_id, at, body),
    }
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    try:
        async with asyncio.timeout(timeout):
            async with httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
                follow_redirects=False,
                trust_env=False,
            ) as client:
                request = client.build_request("POST", pinned_url, content=body, headers=headers, extensions=extensions)
                response = await client.send(request, stream=True)
                try:
                    raw = b""
                    async for chunk in response.aiter_raw():
                        raw += chunk
                        if len(raw) >= EXCERPT_BYTES:
                            break
                finally:
                    await response.aclose()
    except TimeoutError:
        return Outcome(ok=False, duration_ms=_ms(started), error=f"No answer within {timeout:g} s.")
    except httpx.HTTPError as exc:
        return Outcome(
            ok=False, duration_ms=_ms(started), error=f"Could not reach the endpoint ({type(exc).__name__})."
        )
    return Outcome(
        ok=200 <= response.status_code < 300,
        status_code=response.status_code,
        duration_ms=_ms(started),
        error=None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}: {_excerpt(raw)}".strip(),
    )


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)

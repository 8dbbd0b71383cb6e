"""Browser errors from the billing pages and the admin, forwarded to Sentry through our own origin.

`/api/client-errors.js` (loaded by both surfaces) posts each uncaught error and unhandled rejection here; the
endpoint bounds the size and the rate, scrubs the report like the server's own events, tags it (component
"browser", the surface, the release and environment of this deployment) and hands it to the server's Sentry client.
Without SENTRY_DSN the reports are accepted and dropped.
"""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import sentry_sdk
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from payment.api.problems import problem
from payment.observability import Scrubber, secret_values
from payment.runtime import services_of

if TYPE_CHECKING:
    from sentry_sdk._types import Event

SCRIPT = (Path(__file__).parent / "static" / "client-errors.js").read_bytes()
MAX_BYTES = 16 * 1024
PER_CLIENT_PER_MINUTE = 10
ALL_CLIENTS_PER_MINUTE = 300
_SURFACES = ("billing", "admin")
_KINDS = ("error", "unhandledrejection")


class Limiter:
    """In-process sliding windows: per client address and for everyone (a flood cannot exhaust the Sentry quota)."""

    def __init__(self, per_client: int, overall: int, window: float = 60.0, max_clients: int = 10_000) -> None:
        self.per_client, self.overall, self.window, self.max_clients = per_client, overall, window, max_clients
        self.hits: dict[str, deque[float]] = {}
        self.all: deque[float] = deque()

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        for hits in (self.all, self.hits.get(client)):
            while hits and hits[0] <= now - self.window:
                hits.popleft()
        if len(self.hits) > self.max_clients:
            self.hits = {k: v for k, v in self.hits.items() if v}
        mine = self.hits.setdefault(client, deque())
        if len(mine) >= self.per_client or len(self.all) >= self.overall:
            return False
        mine.append(now)
        self.all.append(now)
        return True


limiter = Limiter(PER_CLIENT_PER_MINUTE, ALL_CLIENTS_PER_MINUTE)


async def script(request: Request) -> Response:
    return Response(
        SCRIPT,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def _text(report: dict[str, Any], key: str, limit: int) -> str:
    value = report.get(key)
    return value[:limit] if isinstance(value, str) else ""


async def client_errors(request: Request) -> Response:
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
        return problem(403, "forbidden", "Reports are accepted from this site's own pages only.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BYTES:
        return problem(413, "payload_too_large", f"A report is at most {MAX_BYTES} bytes.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BYTES:
            return problem(413, "payload_too_large", f"A report is at most {MAX_BYTES} bytes.")
    try:
        report = json.loads(body)
    except ValueError:
        report = None
    if not isinstance(report, dict):
        return problem(400, "bad_request", "A report is a JSON object.")
    if not limiter.allow(request.client.host if request.client else "unknown"):
        return problem(
            429, "rate_limited", "Too many error reports; later ones are dropped.", headers={"Retry-After": "60"}
        )
    if sentry_sdk.get_client().is_active():
        settings = services_of(request).settings
        surface = report.get("surface") if report.get("surface") in _SURFACES else "billing"
        kind = report.get("kind") if report.get("kind") in _KINDS else "error"
        event: dict[str, Any] = {
            "level": "error",
            "platform": "javascript",
            "logger": "browser",
            "exception": {
                "values": [
                    {
                        "type": _text(report, "type", 100) or "Error",
                        "value": _text(report, "message", 1000),
                        "mechanism": {"type": f"onerror.{kind}", "handled": False},
                    }
                ]
            },
            # `request` is filled by the server's integration with this report's request; the page goes in extra
            "extra": {
                "page": _text(report, "url", 500),
                "stack": _text(report, "stack", 6000),
                "user_agent": request.headers.get("user-agent", "")[:300],
            },
        }
        event = Scrubber(secret_values(settings)).event(event)
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("component", "browser")
            scope.set_tag("surface", surface)
            scope.set_tag("kind", kind)
            sentry_sdk.capture_event(cast("Event", event))
    return Response(status_code=204)


routes = [Route("/client-errors", client_errors, methods=["POST"]), Route("/client-errors.js", script, methods=["GET"])]

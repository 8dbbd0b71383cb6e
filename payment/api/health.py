"""GET /api/health: is the database answering? Bounded by a short timeout, never hangs. It also says whether end
users' mail can go out (`mail`: `ok`, or `not_configured` with the reason), without failing the check for it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from payment.runtime import services_of

HEALTH_TIMEOUT_SECONDS = 2.0


async def health(request: Request) -> JSONResponse:
    services = services_of(request)
    ok = await services.db.ping(timeout=HEALTH_TIMEOUT_SECONDS)
    body = {"status": "ok" if ok else "degraded", "database": "ok" if ok else "unreachable"}
    warning = services.settings.mail_warning
    body["mail"] = "ok" if warning is None else "not_configured"
    if warning is not None:
        body["mail_problem"] = warning
    return JSONResponse(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


routes = [Route("/health", health, methods=["GET"])]

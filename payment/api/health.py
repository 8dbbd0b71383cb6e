"""GET /api/health: is the database answering? Bounded by a short timeout, never hangs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from payment.runtime import services_of

HEALTH_TIMEOUT_SECONDS = 2.0


async def health(request: Request) -> JSONResponse:
    ok = await services_of(request).db.ping(timeout=HEALTH_TIMEOUT_SECONDS)
    body = {"status": "ok" if ok else "degraded", "database": "ok" if ok else "unreachable"}
    return JSONResponse(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


routes = [Route("/health", health, methods=["GET"])]

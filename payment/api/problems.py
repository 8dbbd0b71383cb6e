"""RFC 9457 problem details: the one shape every /api error takes, with a stable machine-readable `code`.

The Stripe webhook's errors take it too. Only messages written for clients go out; never a database error or a trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from payment.errors import PaymentError

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://payment.aquoris.ai/problems/"

# HTTP status -> short human title (RFC 9457 `title`: same for every occurrence of the problem type).
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid request body",
    429: "Too many requests",
    500: "Internal error",
    502: "Upstream error",
    503: "Service unavailable",
}


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ApiProblem(PaymentError):
    """An API-level failure (bad media type, oversized body, ...) carrying its own status and code."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, status_code, code=code)
        self.errors = errors or []
        self.headers = headers or {}


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response with `type`, `title`, `status`, `detail`, `code` and optional field `errors`."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    all_headers = {"Cache-Control": "no-store", **(headers or {})}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=all_headers)


def from_error(exc: PaymentError) -> JSONResponse:
    """Translate a domain error; its message was written to be shown."""
    if isinstance(exc, ApiProblem):
        return problem(exc.status_code, exc.code, exc.message, errors=exc.errors, headers=exc.headers)
    errors = [FieldError(exc.field, exc.message)] if exc.field else None
    headers = {"WWW-Authenticate": 'Bearer realm="aquoris-payment"'} if exc.status_code == 401 else None
    return problem(exc.status_code, exc.code, exc.message, errors=errors, headers=headers)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own HTTP errors (no such path, a method the route does not take): problem+json under /api, as
    every other /api error; elsewhere Starlette's plain answer as before."""
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if path == "/api" or path.startswith("/api/"):
        return problem(
            exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), exc.detail, headers=dict(exc.headers or {})
        )
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)

"""The Starlette app: Stripe-like API dispatch (auth, idempotency, faults, expand), pages and control routes."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from payment.stripe.version import API_VERSION

from . import control, pages
from . import resources as _resources  # noqa: F401  (registers routes)
from .api import ROUTES, Config, Ctx, Handler, Hold
from .billing import run_due
from .errors import StripeError
from .forms import decode, get_list
from .listing import expand
from .store import JSON, Store, new_id, public
from .webhooks import Dispatcher

NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer "
    "auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY') or HTTP Basic auth with the key as the username "
    "(e.g. 'curl -u YOUR_SECRET_KEY:')."
)


def _masked(key: str) -> str:
    return (key[:8] + "*" * 4 + key[-4:]) if len(key) > 12 else key


def api_key_of(header: str) -> str | None:
    """The API key of an Authorization header, sent as Bearer or as the user of HTTP Basic auth (as Stripe takes it);
    None when the header is neither."""
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() == "bearer":
        return credential
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credential, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def _auth_error(header: str | None) -> StripeError | None:
    key = api_key_of(header) if header and header.strip() else ""
    if key == "":
        return StripeError(401, NO_KEY)
    if key is None or not key.isprintable():
        # An unreadable header is not a key: never echo it (it may be an encoded secret).
        return StripeError(401, "Invalid API Key provided. " + NO_KEY.split(". ", 1)[1])
    if not key.startswith("sk_test_") or len(key) <= len("sk_test_"):
        return StripeError(401, f"Invalid API Key provided: {_masked(key)}")
    return None


def _version_error(headers: Any) -> StripeError | None:
    """Stripe answers in the version a request names; the sandbox knows only the pinned one, so it refuses others
    rather than answer in shapes the caller did not ask for."""
    asked = headers.get("stripe-version")
    if asked is None or asked == API_VERSION:
        return None
    return StripeError(
        400, f"The sandbox answers only in Stripe API version {API_VERSION}; this request asked for {asked!r}."
    )


def _take_fault(store: Store, method: str, path: str, *, executing: bool = False) -> JSON | None:
    """The next fault for this request: one of stage `request` (the default) fails it before Stripe runs the
    endpoint, so nothing is saved under its idempotency key; one of stage `execution` fails it once the endpoint
    has begun, and Stripe saves that answer (500s included) for the key's retries."""
    for fault in store.faults:
        if (fault.get("stage") == "execution") != executing:
            continue
        if fault.get("method", method).upper() == method and path.startswith(fault.get("path_prefix", "/v1/")):
            fault["times"] = int(fault.get("times", 1)) - 1
            if fault["times"] <= 0:
                store.faults.remove(fault)
            return fault
    return None


def _take_hold(config: Config, method: str, path: str) -> Hold | None:
    for hold in config.holds:
        if not hold.parked.is_set() and hold.method == method and path.startswith(hold.path_prefix):
            return hold
    return None


def _fault_error(fault: JSON) -> StripeError:
    status = int(fault.get("status", 500))
    default_type = {402: "card_error", 429: "rate_limit_error", 401: "invalid_request_error"}.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    headers = {}
    if "should_retry" in fault:
        headers["Stripe-Should-Retry"] = "true" if str(fault["should_retry"]).lower() in ("true", "1") else "false"
    if fault.get("retry_after") not in (None, ""):
        headers["Retry-After"] = str(fault["retry_after"])
    return StripeError(
        status,
        str(fault.get("message") or "An unknown error occurred (injected by the sandbox)."),
        type_=str(fault.get("type") or default_type),
        code=fault.get("code"),
        headers=headers,
    )


def _nothing_due(store: Store) -> bool:
    """No time-driven action is due yet: the earliest one the last run found is still ahead, and nothing changed
    since (every request but an API GET forgets it: `ForgetNextDue`)."""
    return store.next_due_at is not None and store.now() < store.next_due_at


class ForgetNextDue:
    """ASGI middleware: a request that may change objects (anything but an API GET: API writes, /_sandbox controls,
    hosted pages) forgets the next due time, before it runs and once it has answered, so the next API GET scans
    again. API GETs change nothing but what run_due does, which records the next due time itself."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"] == "GET" and scope["path"].startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        self.store.next_due_at = None
        try:
            await self.app(scope, receive, send)
        finally:
            self.store.next_due_at = None


def api_endpoint(handler: Handler, name: str = "") -> Any:
    async def endpoint(request: Request) -> Response:
        store: Store = request.app.state.store
        config: Config = request.app.state.config
        config.requests[name] += 1
        request_id = new_id("req", 14)
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        if config.latency_seconds:
            await asyncio.sleep(config.latency_seconds)
        hold = _take_hold(config, request.method, request.url.path)
        if hold is not None:
            await hold.park(request.url.path)
        try:
            error = _auth_error(request.headers.get("authorization")) or _version_error(request.headers)
            if error:
                raise error
            fault = _take_fault(store, request.method, request.url.path)
            if fault:
                if fault.get("delay_seconds"):
                    await asyncio.sleep(float(fault["delay_seconds"]))
                raise _fault_error(fault)
            body = (await request.body()).decode() if request.method == "POST" else ""
            pairs = parse_qsl(request.url.query, keep_blank_values=True) + parse_qsl(body, keep_blank_values=True)
            params = decode(pairs)
            key = request.headers.get("idempotency-key") if request.method == "POST" else None
            fingerprint = hashlib.sha256(f"{request.method} {request.url.path}?{sorted(pairs)}".encode()).hexdigest()
            if key:
                saved = store.idempotency.get(key)
                if saved is not None:
                    if saved["fingerprint"] != fingerprint:
                        raise StripeError(
                            400,
                            "Keys for idempotent requests can only be used with the same "
                            f"parameters they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.",
                            type_="idempotency_error",
                        )
                    replay = {**headers, "Idempotent-Replayed": "true", "Original-Request": saved["request_id"]}
                    return Response(
                        saved["body"], status_code=saved["status"], headers=replay, media_type="application/json"
                    )
            if request.method != "GET" or not _nothing_due(store):
                run_due(store, retry_days=config.retry_days)
            store.current_request = {"id": request_id, "idempotency_key": key}
            ctx = Ctx(store, config, params, dict(request.path_params), request.method, request.url.path)
            status = 200
            try:
                failing = _take_fault(store, request.method, request.url.path, executing=True)
                if failing:
                    raise _fault_error(failing)
                result = expand(store, public(handler(ctx)), [str(p) for p in get_list(params, "expand")])
                content = json.dumps(result, indent=2).encode()
            except StripeError as exc:
                status, content = exc.status, json.dumps(exc.body(), indent=2).encode()
            finally:
                store.current_request = {"id": None, "idempotency_key": None}
            # as Stripe: the answer of a request whose endpoint began is the key's answer, whatever its status
            if key:
                store.idempotency[key] = {
                    "fingerprint": fingerprint,
                    "status": status,
                    "body": content,
                    "request_id": request_id,
                }
            if request.method != "GET":
                store.save()
            return Response(content, status_code=status, headers=headers, media_type="application/json")
        except StripeError as exc:
            response = exc.response()
            response.headers.update(headers)
            return response

    return endpoint


async def unknown_route(request: Request) -> Response:
    config: Config = request.app.state.config
    if config.latency_seconds:
        await asyncio.sleep(config.latency_seconds)
    message = f"Unrecognized request URL ({request.method}: {request.url.path})."
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error"}},
        status_code=404,
        headers={"Request-Id": new_id("req", 14), "Stripe-Version": API_VERSION},
    )


def api_routes() -> list[BaseRoute]:
    return [
        Route(path, api_endpoint(handler, f"{method} {path}"), methods=[method]) for method, path, handler in ROUTES
    ]


def create_sandbox_app(
    *,
    base_url: str,
    webhook_endpoints: list[tuple[str, str]] | tuple[()] = (),
    state_file: str | None = None,
    retry_base_seconds: float = 1.0,
    max_attempts: int = 6,
    retry_days: tuple[int, ...] = (3, 5, 7),
    tick_seconds: float = 1.0,
    latency_ms: float = 0.0,
) -> Starlette:
    """The sandbox as an ASGI app. `base_url` is the public URL of this app (for hosted page links); `latency_ms`
    is added to every API answer (Stripe's own latency, for benchmarks), not to hosted pages or /_sandbox."""
    if latency_ms < 0:
        raise ValueError("latency_ms cannot be negative")
    config = Config(
        latency_seconds=latency_ms / 1000,
        startup_latency_seconds=latency_ms / 1000,
        base_url=base_url.rstrip("/"),
        retry_days=tuple(retry_days),
        retry_base_seconds=retry_base_seconds,
        max_attempts=max_attempts,
        webhook_endpoints=list(webhook_endpoints),
    )
    store = Store(state_file)
    dispatcher = Dispatcher(store, config)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(tick_seconds)
            if run_due(store, retry_days=config.retry_days):
                store.save()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await dispatcher.start()
        task = asyncio.create_task(ticker())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await dispatcher.stop()

    routes: list[BaseRoute] = [
        *control.ROUTES,
        *pages.ROUTES,
        *api_routes(),
        Route("/v1/{rest:path}", unknown_route, methods=["GET", "POST", "DELETE"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(ForgetNextDue, store=store)])
    app.state.store = store
    app.state.config = config
    app.state.dispatcher = dispatcher
    return app

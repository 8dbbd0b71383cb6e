"""The only module that imports the stripe SDK.

Every call is async, goes to Stripe (or the sandbox when STRIPE_API_BASE is set), returns plain dicts, and turns
the SDK's errors into `payment.errors.StripeError` with a message safe to show an admin or end user.
"""

from __future__ import annotations

import contextlib
import copy
import json
import ssl
import urllib.request
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlencode, urlsplit

import anyio
import httpx
import stripe
from stripe._encode import _api_encode

from payment.config import Settings
from payment.errors import StripeError
from payment.stripe import http1
from payment.stripe.signature import is_signed
from payment.stripe.version import API_VERSION

T = TypeVar("T")
Params = dict[str, Any]

# Stripe's own codes -> words for an admin or end user.
_PLAIN_WORDS = {
    "card_declined": "The card was declined.",
    "expired_card": "The card has expired.",
    "insufficient_funds": "The card has insufficient funds.",
    "charge_already_refunded": "This payment has already been refunded in full.",
    "amount_too_large": "The refund is larger than what remains to refund.",
    "resource_missing": "Stripe does not know this object (was it deleted, or is it from another account?).",
    "idempotency_error": "This request was already sent with other values.",
}


def _plain(exc: Exception) -> StripeError:
    code = getattr(exc, "code", None)
    status = getattr(exc, "http_status", None)
    if isinstance(exc, stripe.APIConnectionError):
        return StripeError(
            "Stripe could not be reached (network). Nothing was changed; try again.", code="stripe_unreachable"
        )
    if isinstance(exc, stripe.AuthenticationError):
        return StripeError("Stripe refused our API key; check STRIPE_SECRET_KEY.", code="stripe_auth")
    if isinstance(exc, stripe.RateLimitError):
        limited = StripeError("Stripe is rate limiting us; try again in a moment.", code="stripe_rate_limited")
        limited.retry_after = _retry_after(exc)
        return limited
    if isinstance(code, str) and code in _PLAIN_WORDS:
        return StripeError(_PLAIN_WORDS[code], code=code)
    if isinstance(status, int) and status >= 500:
        return StripeError("Stripe had an internal error. Nothing was changed; try again.", code="stripe_unavailable")
    message = getattr(exc, "user_message", None) or "Stripe refused the request."
    if isinstance(exc, stripe.InvalidRequestError) and getattr(exc, "_message", None):
        message = f"Stripe refused the request: {exc._message}"
    return StripeError(message, code=code if isinstance(code, str) else "stripe_error")


def _retry_after(exc: Exception) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    try:
        value = float(headers.get("Retry-After") or headers.get("retry-after") or "")
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def _as_dict(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return data


class Unfetched(Exception):
    """A read the snapshot being applied does not hold: the caller ends its transaction, makes the read (outside
    any transaction) and applies again."""

    def __init__(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__(f"Stripe read {getattr(fn, '__qualname__', fn)} not fetched")
        self.fn, self.args, self.kwargs = fn, args, kwargs


@dataclass
class Snapshot:
    """The Stripe reads one apply needs, made before its transaction, and the fetch ticket taken before them (a
    database sequence: a snapshot under a larger ticket was asked for later, so it is not older)."""

    ticket: int
    answers: dict[str, dict[str, Any] | bytes | str | StripeError] = field(default_factory=dict)


_READS = ("retrieve_async", "list_async")


class RawRead:
    """A GET of Stripe's API answered with its JSON body as sent: no SDK objects are built for what we
    only read, and a snapshot keeps the body, so each use parses a fresh copy (faster than a deep copy)."""

    def __init__(self, client: stripe.StripeClient, path: str, reads: DirectReads | None = None) -> None:
        self.client, self.path, self.reads = client, path, reads
        self.__qualname__ = f"GET {path}"

    async def __call__(self, *ids: str, params: Params | None = None) -> bytes | str:
        path = self.path.format(*(quote(str(i), safe="") for i in ids))
        requestor = self.client._requestor
        body: object
        if self.reads is not None:
            body, code, headers = await self.reads.get(path, params)
        else:
            # the SDK's raw request (its retries, headers and API version) without its parse of a good answer: the
            # public raw_request_async parses every body once more, into OrderedDicts we would not read
            body, code, headers = await requestor.request_raw_async(
                "get", path, params=params, base_address="api", api_mode="V1", usage=["raw_read"]
            )
        if not 200 <= code < 300:
            requestor._interpret_response(body, code, headers, "V1")  # raises Stripe's error
        return cast(bytes | str, body)


def _decoded(body: bytes, encoding: bytes) -> bytes:
    """A body sent with Content-Encoding gzip or deflate, as httpx would decode it."""
    if encoding == b"gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body)
    try:
        return zlib.decompress(body)
    except zlib.error:  # a raw deflate stream, without the zlib header
        return zlib.decompress(body, -zlib.MAX_WBITS)


_NO_HEADERS: Mapping[str, str] = {}


class DirectReads:
    """Stripe GETs on the gateway's own kept-alive HTTP/1.1 connections (payment/stripe/http1.py), the SDK's work
    done once: the headers the SDK sends (its user agents, our key, the pinned Stripe-Version) and the address are
    built when the gateway is, so a read pays for no httpx URL, Request or Client models, no SDK requestor and no
    httpcore/h11 machinery. What a read does is the SDK's: its retries (`max_network_retries`, on a connection error
    or the answers `_should_retry` names, after its backoff), the same timeout (connect, read, wait for a
    connection), the same APIConnectionError for a network failure; an error answer is turned into Stripe's error
    by the SDK (`RawRead`)."""

    def __init__(
        self,
        http: PooledHTTPXClient,
        base: str,
        headers: Mapping[str, str],
        *,
        size: int,
        timeout: float,
        max_network_retries: int,
    ) -> None:
        url = urlsplit(base)
        self._http, self._max_retries, self._prefix = http, max_network_retries, url.path
        default_port = {"http": 80, "https": 443}[url.scheme]
        hostname = url.hostname or ""
        port = url.port or default_port
        host = hostname.encode("idna") if port == default_port else f"{hostname}:{port}".encode("idna")
        # httpx's own headers first, as it sent them (a body it can decode: stdlib's gzip and deflate)
        lines = [
            (b"Host", host),
            (b"Accept", b"*/*"),
            (b"Accept-Encoding", b"gzip, deflate"),
            (b"Connection", b"keep-alive"),
            *((name.encode(), value.encode()) for name, value in headers.items()),
        ]
        self._head_end = b" HTTP/1.1\r\n" + b"".join(name + b": " + value + b"\r\n" for name, value in lines) + b"\r\n"
        self._pool = http1.Pool(
            hostname,
            port,
            ssl_context=http._verify if url.scheme == "https" else None,
            size=max(1, size),
            timeout=timeout,
            keepalive=KEEPALIVE_SECONDS,
        )

    def target(self, path: str, params: Params | None) -> bytes:
        """The request target, its query encoded as the SDK encodes it (brackets left as they are)."""
        target = self._prefix + path
        if params:
            # the SDK's own encoder, as its requestor calls it (lists indexed, dicts nested, booleans as true/false)
            query = urlencode(list(_api_encode(params))).replace("%5B", "[").replace("%5D", "]")
            target = f"{target}?{query}"
        return target.encode("ascii")

    async def get(self, path: str, params: Params | None = None) -> tuple[bytes, int, Mapping[str, str]]:
        """GET `path`: its body, status and headers (case-insensitive when Stripe's error is built from them)."""
        head = b"GET " + self.target(path, params) + self._head_end
        http, retries = self._http, 0
        while True:
            answer: tuple[bytes, int, Mapping[str, str]] | None = None
            failure: stripe.APIConnectionError | None = None
            try:
                answer = await self._send(head)
            except stripe.APIConnectionError as exc:
                failure = exc
            if not http._should_retry(answer, failure, retries, self._max_retries):
                if answer is None:
                    assert failure is not None
                    raise failure
                return answer
            retries += 1
            await anyio.sleep(http._sleep_time_seconds(retries))

    async def _send(self, head: bytes) -> tuple[bytes, int, Mapping[str, str]]:
        try:
            status, raw, body = await self._pool.request(head)
        except Exception as exc:
            self._http._handle_request_error(exc)  # the SDK's APIConnectionError (retried)
        encoding, hint = b"", False
        for name, value in raw:
            lowered = name.lower()
            if lowered == b"content-encoding":
                encoding = value.lower()
            elif lowered == b"stripe-should-retry":
                hint = True
        if encoding and encoding != b"identity":
            try:
                body = _decoded(body, encoding)
            except zlib.error as exc:
                self._http._handle_request_error(exc)
        if 200 <= status < 300 and not hint:
            return body, status, _NO_HEADERS
        return body, status, httpx.Headers(raw)

    async def aclose(self) -> None:
        await self._pool.aclose()


def _fresh(answer: dict[str, Any] | bytes | str) -> dict[str, Any]:
    """A copy of a snapshot's answer the caller may change."""
    found: dict[str, Any] = copy.deepcopy(answer) if isinstance(answer, dict) else json.loads(answer)
    return found


def _read_key(fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return f"{getattr(fn, '__qualname__', fn)} {json.dumps([args, kwargs], sort_keys=True, default=str)}"


# Connections per pool: httpcore walks every connection of a pool (idle ones included) for each request it
# assigns, so one pool of 64 costs a worker more CPU per read than eight pools of 8.
CONNECTIONS_PER_POOL = 8
MAX_POOLS = 8
# an idle connection is closed after this long: a quiet process keeps none open
KEEPALIVE_SECONDS = 30.0


class PooledHTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx client, on up to MAX_POOLS httpx clients of a few connections each: a request goes to the
    pool with the fewest requests in flight, so `size` reads may be in flight on kept-alive connections while
    each pool stays small."""

    def __init__(self, size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        pools = max(1, min(MAX_POOLS, -(-size // CONNECTIONS_PER_POOL)))
        per_pool = max(1, -(-size // pools))
        self._verify = ssl.create_default_context(cafile=stripe.ca_bundle_path)
        self._limits = httpx.Limits(
            max_connections=per_pool, max_keepalive_connections=per_pool, keepalive_expiry=KEEPALIVE_SECONDS
        )
        # the SDK made an async client of its own: ours replace it (it never opened a connection)
        self._pools = [self._new_pool() for _ in range(pools)]
        self._busy = [0] * pools

    def _new_pool(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=self._verify, limits=self._limits)

    async def _on_least_busy(self, send: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
        index = min(range(len(self._pools)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            return await send(self._pools[index])
        finally:
            self._busy[index] -= 1

    async def request_async(self, method: str, url: str, headers: Any, post_data: Any = None) -> tuple[bytes, int, Any]:
        args, kwargs = self._get_request_args_kwargs(method, url, headers, post_data)
        try:
            response = await self._on_least_busy(lambda client: client.request(*args, **kwargs))
        except Exception as exc:
            self._handle_request_error(exc)
        return response.content, response.status_code, response.headers

    async def request_stream_async(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[Any, int, Any]:
        args, kwargs = self._get_request_args_kwargs(method, url, headers, post_data)
        try:
            response = await self._on_least_busy(
                lambda client: client.send(client.build_request(*args, **kwargs), stream=True)
            )
        except Exception as exc:
            self._handle_request_error(exc)
        return response.aiter_bytes(), response.status_code, response.headers

    async def close_async(self) -> None:
        """Close every kept-alive connection; like a disposed engine, the client stays usable (fresh pools)."""
        closing, self._pools = self._pools, [self._new_pool() for _ in self._pools]
        for client in closing:
            await client.aclose()


def _environment_proxies() -> bool:
    """Whether the environment names a proxy (urllib's reading of it, the one httpx makes)."""
    return any(key in ("http", "https", "all") for key in urllib.request.getproxies())


class StripeGateway:
    """A thin async facade over the SDK calls the service makes.

    `recording(snapshot)` and `replaying(snapshot)` are views on the same client for the worker: the first makes
    reads and keeps their answers (or errors) in the snapshot, outside any transaction; the second answers reads
    from the snapshot only (so a transaction never waits for Stripe), raises `Unfetched` for one it lacks, and
    refuses writes. `fetch_ticket` tells a mapper which snapshot it is applying (None: a live read)."""

    snapshot: Snapshot | None = None
    replay: bool = False

    def __init__(self, settings: Settings, *, max_network_retries: int = 2, timeout: float = 20.0) -> None:
        base = settings.stripe_api_base
        addresses: Any = {"api": base, "connect": base, "files": base} if base else None
        http_client = PooledHTTPXClient(settings.stripe_http_pool_size, timeout=timeout, allow_sync_methods=True)
        self._http = http_client
        self.client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses=addresses,
            http_client=http_client,
            max_network_retries=max_network_retries,
            # explicit, so an SDK upgrade cannot move the shapes we read (see payment/stripe/reader.py)
            stripe_version=API_VERSION,
        )
        self.webhook_secrets = settings.webhook_secrets
        self._reads: DirectReads | None = None
        api_base = base or stripe.api_base
        # with a proxy named in the environment (HTTP(S)_PROXY, ALL_PROXY) reads stay on the SDK's httpx, which
        # applies it (and NO_PROXY)
        if not _environment_proxies():
            headers = self.client._requestor.request_headers(
                "get", "V1", {"api_key": settings.stripe_secret_key, "stripe_version": API_VERSION}
            )
            self._reads = DirectReads(
                http_client,
                api_base,
                headers,
                size=settings.stripe_http_pool_size,
                timeout=timeout,
                max_network_retries=max_network_retries,
            )

    async def aclose(self) -> None:
        """Close Stripe's kept-alive connections (on the process's shutdown; a later call opens new ones)."""
        if self._reads is not None:
            await self._reads.aclose()
        await self._http.close_async()
        self._http.close()  # type: ignore[no-untyped-call]

    def recording(self, snapshot: Snapshot) -> StripeGateway:
        view = copy.copy(self)
        view.snapshot, view.replay = snapshot, False
        return view

    def replaying(self, snapshot: Snapshot) -> StripeGateway:
        view = copy.copy(self)
        view.snapshot, view.replay = snapshot, True
        return view

    @property
    def fetch_ticket(self) -> int | None:
        """The fetch ticket of the snapshot being applied; None when reads go to Stripe as they are made."""
        return self.snapshot.ticket if self.snapshot is not None and self.replay else None

    async def fetch(self, missing: Unfetched) -> None:
        """Make a read the snapshot lacked (on a recording view), keeping its answer or its error."""
        # an error is kept in the snapshot too: applying again meets it where the mapping made the read
        with contextlib.suppress(StripeError):
            if self.snapshot is not None and not self.replay:  # kept as sent: nobody reads the answer here
                key = _read_key(missing.fn, missing.args, missing.kwargs)
                await self._record(self.snapshot, key, missing.fn, missing.args, missing.kwargs)
            else:
                await self._call(missing.fn, *missing.args, **missing.kwargs)

    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
        snapshot = self.snapshot
        if snapshot is None:
            live = await self._live(fn, *args, **kwargs)
            return live if isinstance(live, dict) else json.loads(live)
        key = _read_key(fn, args, kwargs)
        if self.replay:
            if not isinstance(fn, RawRead) and getattr(fn, "__name__", "") not in _READS:
                raise RuntimeError(f"a Stripe write ({getattr(fn, '__qualname__', fn)}) while applying a snapshot")
            if key not in snapshot.answers:
                raise Unfetched(fn, args, kwargs)
            answer = snapshot.answers[key]
            if isinstance(answer, StripeError):
                raise answer
            return _fresh(answer)  # a mapping may change what it reads; the next round reads it afresh
        return _fresh(await self._record(snapshot, key, fn, args, kwargs))

    async def _record(
        self,
        snapshot: Snapshot,
        key: str,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> dict[str, Any] | bytes | str:
        """A live read kept in the snapshot under `key` (its answer as sent, or its error)."""
        try:
            found = await self._live(fn, *args, **kwargs)
        except StripeError as exc:
            snapshot.answers[key] = exc
            raise
        snapshot.answers[key] = found
        return found

    async def _live(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> dict[str, Any] | bytes | str:
        """One call to Stripe: an SDK object as a dict, or a RawRead's body as sent."""
        try:
            found = await fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise _plain(exc) from exc
        return found if isinstance(found, bytes | str) else _as_dict(found)

    def _get(self, path: str) -> RawRead:
        return RawRead(self.client, path, self._reads)

    @staticmethod
    def _options(idempotency_key: str | None) -> Any:
        return {"idempotency_key": idempotency_key} if idempotency_key else None

    # customers
    async def create_customer(self, params: Params, *, idempotency_key: str | None = None) -> dict[str, Any]:
        return await self._call(
            self.client.v1.customers.create_async, params=params, options=self._options(idempotency_key)
        )

    async def retrieve_customer(self, customer_id: str) -> dict[str, Any]:
        return await self._call(self._get("/v1/customers/{}"), customer_id)

    # checkout and portal
    async def create_checkout_session(self, params: Params, *, idempotency_key: str | None = None) -> dict[str, Any]:
        return await self._call(
            self.client.v1.checkout.sessions.create_async, params=params, options=self._options(idempotency_key)
        )

    async def retrieve_checkout_session(self, session_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.checkout.sessions.retrieve_async, session_id)

    async def expire_checkout_session(self, session_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.checkout.sessions.expire_async, session_id)

    async def create_portal_session(self, *, customer: str, return_url: str, configuration: str) -> dict[str, Any]:
        """A portal session on `configuration` (never the account's default: see payment/billing/portal.py)."""
        return await self._call(
            self.client.v1.billing_portal.sessions.create_async,
            params={"customer": customer, "return_url": return_url, "configuration": configuration},
        )

    async def list_portal_configurations(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.billing_portal.configurations.list_async, params=params)

    async def create_portal_configuration(self, params: Params, *, idempotency_key: str) -> dict[str, Any]:
        return await self._call(
            self.client.v1.billing_portal.configurations.create_async,
            params=params,
            options=self._options(idempotency_key),
        )

    async def list_subscriptions(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.subscriptions.list_async, params=params)

    # subscriptions
    async def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        """The subscription with its discounts and their coupons (the terms its next invoices get)."""
        return await self._call(
            self._get("/v1/subscriptions/{}"),
            subscription_id,
            params={"expand": ["discounts.source.coupon"]},
        )

    async def update_subscription(
        self, subscription_id: str, params: Params, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        return await self._call(
            self.client.v1.subscriptions.update_async,
            subscription_id,
            params=params,
            options=self._options(idempotency_key),
        )

    async def cancel_subscription(self, subscription_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        return await self._call(
            self.client.v1.subscriptions.cancel_async, subscription_id, options=self._options(idempotency_key)
        )

    async def retrieve_payment_method(self, payment_method_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.payment_methods.retrieve_async, payment_method_id)

    # coupons and promotion codes
    async def create_coupon(self, params: Params, *, idempotency_key: str) -> dict[str, Any]:
        return await self._call(
            self.client.v1.coupons.create_async, params=params, options=self._options(idempotency_key)
        )

    async def create_promotion_code(self, params: Params, *, idempotency_key: str) -> dict[str, Any]:
        return await self._call(
            self.client.v1.promotion_codes.create_async, params=params, options=self._options(idempotency_key)
        )

    async def retrieve_promotion_code(self, promotion_code_id: str) -> dict[str, Any]:
        """The promotion code with its coupon expanded (`promotion.coupon`): its limits and the coupon's validity."""
        return await self._call(
            self.client.v1.promotion_codes.retrieve_async, promotion_code_id, params={"expand": ["promotion.coupon"]}
        )

    async def update_promotion_code(self, promotion_code_id: str, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.promotion_codes.update_async, promotion_code_id, params=params)

    # plan changes: invoice previews and subscription schedules
    async def create_invoice_preview(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.invoices.create_preview_async, params=params)

    async def create_subscription_schedule(
        self, params: Params, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        return await self._call(
            self.client.v1.subscription_schedules.create_async, params=params, options=self._options(idempotency_key)
        )

    async def retrieve_subscription_schedule(self, schedule_id: str) -> dict[str, Any]:
        return await self._call(self._get("/v1/subscription_schedules/{}"), schedule_id)

    async def update_subscription_schedule(
        self, schedule_id: str, params: Params, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        return await self._call(
            self.client.v1.subscription_schedules.update_async,
            schedule_id,
            params=params,
            options=self._options(idempotency_key),
        )

    async def release_subscription_schedule(self, schedule_id: str, *, idempotency_key: str) -> dict[str, Any]:
        return await self._call(
            self.client.v1.subscription_schedules.release_async, schedule_id, options=self._options(idempotency_key)
        )

    # invoices, charges, refunds
    async def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]:
        """The invoice with its invoice payments (since basil the only place its charge and payment intent are)."""
        return await self._call(self._get("/v1/invoices/{}"), invoice_id, params={"expand": ["payments"]})

    async def pay_invoice(self, invoice_id: str, params: Params, *, idempotency_key: str) -> dict[str, Any]:
        """Charge an open invoice now (`POST /v1/invoices/{id}/pay`); a decline raises StripeError(card_declined...)."""
        return await self._call(
            self.client.v1.invoices.pay_async, invoice_id, params=params, options=self._options(idempotency_key)
        )

    async def void_invoice(self, invoice_id: str, *, idempotency_key: str) -> dict[str, Any]:
        return await self._call(
            self.client.v1.invoices.void_invoice_async, invoice_id, options=self._options(idempotency_key)
        )

    async def list_invoice_payments(self, params: Params) -> dict[str, Any]:
        return await self._call(self._get("/v1/invoice_payments"), params=params)

    async def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        return await self._call(self._get("/v1/charges/{}"), charge_id)

    async def retrieve_charge_with_refunds(self, charge_id: str) -> dict[str, Any]:
        """The charge with its refunds embedded (includable since 2022-11-15), so mapping it calls Stripe no more."""
        return await self._call(self._get("/v1/charges/{}"), charge_id, params={"expand": ["refunds"]})

    async def list_charges(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.charges.list_async, params=params)

    async def create_refund(self, params: Params, *, idempotency_key: str | None = None) -> dict[str, Any]:
        return await self._call(
            self.client.v1.refunds.create_async, params=params, options=self._options(idempotency_key)
        )

    # products and prices (seeding the demo)
    async def create_product(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.products.create_async, params=params)

    async def create_price(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.prices.create_async, params=params)

    async def retrieve_price(self, price_id: str) -> dict[str, Any]:
        return await self._call(self._get("/v1/prices/{}"), price_id)

    # events
    async def list_events(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.events.list_async, params=params)

    # lookups that make each event self-sufficient
    async def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        return await self._call(self._get("/v1/payment_intents/{}"), payment_intent_id)

    async def list_invoices(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.invoices.list_async, params=params)

    async def list_refunds(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.refunds.list_async, params=params)

    async def list_checkout_sessions(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.checkout.sessions.list_async, params=params)

    def verify_webhook(self, payload: bytes, signature: str, *, tolerance: int = 300) -> bool:
        """Whether `signature` signs this exact body with one of our secrets within `tolerance` seconds (the body is
        parsed by the caller, as JSON, without building SDK objects: the webhook endpoint's hot path). The check is
        ours (payment/stripe/signature.py, the SDK's rules) over the bytes, without decoding the body to text."""
        return is_signed(payload, signature, self.webhook_secrets, tolerance=tolerance)

    # a plan's product and price, created once per admin submission (the key makes a double submit one call)
    async def create_product_once(self, params: Params, *, idempotency_key: str) -> dict[str, Any]:
        return await self._call(
            self.client.v1.products.create_async, params=params, options=self._options(idempotency_key)
        )

    async def create_price_once(self, params: Params, *, idempotency_key: str) -> dict[str, Any]:
        return await self._call(
            self.client.v1.prices.create_async, params=params, options=self._options(idempotency_key)
        )

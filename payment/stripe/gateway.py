"""The only module that imports the stripe SDK.

Every call is async, goes to Stripe (or the sandbox when STRIPE_API_BASE is set), returns plain dicts, and turns
the SDK's errors into `payment.errors.StripeError` with a message safe to show an admin or end user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import stripe

from payment.config import Settings
from payment.errors import StripeError
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
        return StripeError("Stripe is rate limiting us; try again in a moment.", code="stripe_rate_limited")
    if isinstance(code, str) and code in _PLAIN_WORDS:
        return StripeError(_PLAIN_WORDS[code], code=code)
    if isinstance(status, int) and status >= 500:
        return StripeError("Stripe had an internal error. Nothing was changed; try again.", code="stripe_unavailable")
    message = getattr(exc, "user_message", None) or "Stripe refused the request."
    if isinstance(exc, stripe.InvalidRequestError) and getattr(exc, "_message", None):
        message = f"Stripe refused the request: {exc._message}"
    return StripeError(message, code=code if isinstance(code, str) else "stripe_error")


def _as_dict(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return data


class StripeGateway:
    """A thin async facade over the SDK calls the service makes."""

    def __init__(self, settings: Settings, *, max_network_retries: int = 2, timeout: float = 20.0) -> None:
        base = settings.stripe_api_base
        addresses: Any = {"api": base, "connect": base, "files": base} if base else None
        self.client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses=addresses,
            http_client=stripe.HTTPXClient(timeout=timeout, allow_sync_methods=True),
            max_network_retries=max_network_retries,
            # explicit, so an SDK upgrade cannot move the shapes we read (see payment/stripe/reader.py)
            stripe_version=API_VERSION,
        )
        self.webhook_secret = settings.stripe_webhook_secret

    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return _as_dict(await fn(*args, **kwargs))
        except stripe.StripeError as exc:
            raise _plain(exc) from exc

    @staticmethod
    def _options(idempotency_key: str | None) -> Any:
        return {"idempotency_key": idempotency_key} if idempotency_key else None

    # customers
    async def create_customer(self, params: Params, *, idempotency_key: str | None = None) -> dict[str, Any]:
        return await self._call(
            self.client.v1.customers.create_async, params=params, options=self._options(idempotency_key)
        )

    async def retrieve_customer(self, customer_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.customers.retrieve_async, customer_id)

    # checkout and portal
    async def create_checkout_session(self, params: Params, *, idempotency_key: str | None = None) -> dict[str, Any]:
        return await self._call(
            self.client.v1.checkout.sessions.create_async, params=params, options=self._options(idempotency_key)
        )

    async def retrieve_checkout_session(self, session_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.checkout.sessions.retrieve_async, session_id)

    async def expire_checkout_session(self, session_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.checkout.sessions.expire_async, session_id)

    async def create_portal_session(self, *, customer: str, return_url: str) -> dict[str, Any]:
        return await self._call(
            self.client.v1.billing_portal.sessions.create_async, params={"customer": customer, "return_url": return_url}
        )

    # subscriptions
    async def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.subscriptions.retrieve_async, subscription_id)

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
        return await self._call(self.client.v1.subscription_schedules.retrieve_async, schedule_id)

    async def update_subscription_schedule(
        self, schedule_id: str, params: Params, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        return await self._call(
            self.client.v1.subscription_schedules.update_async,
            schedule_id,
            params=params,
            options=self._options(idempotency_key),
        )

    async def release_subscription_schedule(self, schedule_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.subscription_schedules.release_async, schedule_id)

    # invoices, charges, refunds
    async def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]:
        """The invoice with its invoice payments (since basil the only place its charge and payment intent are)."""
        return await self._call(self.client.v1.invoices.retrieve_async, invoice_id, params={"expand": ["payments"]})

    async def void_invoice(self, invoice_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.invoices.void_invoice_async, invoice_id)

    async def list_invoice_payments(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.invoice_payments.list_async, params=params)

    async def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.charges.retrieve_async, charge_id)

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
        return await self._call(self.client.v1.prices.retrieve_async, price_id)

    # events
    async def list_events(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.events.list_async, params=params)

    def construct_event(self, payload: bytes, signature: str, *, tolerance: int = 300) -> dict[str, Any]:
        """Verify a webhook's Stripe-Signature over the raw body; ValueError when it does not hold."""
        try:
            event = stripe.Webhook.construct_event(payload, signature, self.webhook_secret, tolerance=tolerance)
        except stripe.SignatureVerificationError as exc:
            raise ValueError("bad Stripe signature") from exc
        return _as_dict(event)

    # lookups that make each event self-sufficient
    async def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.payment_intents.retrieve_async, payment_intent_id)

    async def list_invoices(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.invoices.list_async, params=params)

    async def list_refunds(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.refunds.list_async, params=params)

    async def list_checkout_sessions(self, params: Params) -> dict[str, Any]:
        return await self._call(self.client.v1.checkout.sessions.list_async, params=params)

    def verify_webhook(self, payload: bytes, signature: str, *, tolerance: int = 300) -> bool:
        """Whether `signature` signs this exact body with our secret within `tolerance` seconds (the body is
        parsed by the caller, as JSON, without building SDK objects: the webhook endpoint's hot path)."""
        try:
            stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature, self.webhook_secret, tolerance)
        except (stripe.SignatureVerificationError, UnicodeDecodeError):
            return False
        return True

    # a plan's product and price, created once per admin submission (the key makes a double submit one call)
    async def create_product_once(self, params: Params, *, idempotency_key: str) -> dict[str, Any]:
        return await self._call(
            self.client.v1.products.create_async, params=params, options=self._options(idempotency_key)
        )

    async def create_price_once(self, params: Params, *, idempotency_key: str) -> dict[str, Any]:
        return await self._call(
            self.client.v1.prices.create_async, params=params, options=self._options(idempotency_key)
        )

"""Stripe calls for promotion codes read before Checkout and the card-only billing portal.

They go through the gateway's one client and its error mapping (`StripeGateway._call`), so this module imports no
SDK and every Stripe error becomes a `StripeError` as everywhere else. They live beside the gateway, not in it, only
because `gateway.py` is being changed elsewhere at the same time; they belong there and should move in.
"""

from __future__ import annotations

from typing import Any

from payment.stripe.gateway import StripeGateway

Params = dict[str, Any]


async def retrieve_promotion_code(gateway: StripeGateway, promotion_code_id: str) -> dict[str, Any]:
    """The promotion code with its coupon expanded (`promotion.coupon`): its limits and the coupon's validity."""
    return await gateway._call(
        gateway.client.v1.promotion_codes.retrieve_async,
        promotion_code_id,
        params={"expand": ["promotion.coupon"]},
    )


async def list_portal_configurations(gateway: StripeGateway, params: Params) -> dict[str, Any]:
    return await gateway._call(gateway.client.v1.billing_portal.configurations.list_async, params=params)


async def create_portal_configuration(
    gateway: StripeGateway, params: Params, *, idempotency_key: str
) -> dict[str, Any]:
    return await gateway._call(
        gateway.client.v1.billing_portal.configurations.create_async,
        params=params,
        options={"idempotency_key": idempotency_key},
    )


async def create_portal_session(
    gateway: StripeGateway, *, customer: str, return_url: str, configuration: str
) -> dict[str, Any]:
    return await gateway._call(
        gateway.client.v1.billing_portal.sessions.create_async,
        params={"customer": customer, "return_url": return_url, "configuration": configuration},
    )

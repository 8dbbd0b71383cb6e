"""Paid Stripe subscriptions in the sandbox, mirrored as our rows, so operations tests start from real Stripe state."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from payment.invoices.stripe_sync import upsert_from_stripe as upsert_invoice
from payment.models import Customer, Invoice, Plan, Subscription
from payment.stripe.gateway import StripeGateway
from payment.subscriptions.stripe_sync import upsert_from_stripe as upsert_subscription
from tests.support import factories
from tests.support.stripe import SANDBOX_KEY

_n = count(1)


@dataclass
class StripeSetup:
    customer: Customer
    plan: Plan
    subscription: Subscription
    invoice: Invoice
    stripe_subscription: dict[str, Any]


def sandbox_control(sandbox_url: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = httpx.request(
        method,
        f"{sandbox_url}/_sandbox/{path}",
        timeout=30,
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        **kwargs,
    )
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def inject_fault(
    sandbox_url: str, *, method: str, path_prefix: str, status: int = 500, times: int = 1, **extra: str
) -> None:
    """The sandbox answers the next matching request(s) with this error instead."""
    sandbox_control(
        sandbox_url,
        "POST",
        "faults",
        data={"method": method, "path_prefix": path_prefix, "status": str(status), "times": str(times), **extra},
    )


async def stripe_price(gateway: StripeGateway, *, amount: int, currency: str = "thb") -> str:
    product = await gateway.create_product({"name": f"Aquoris Pro {next(_n)}"})
    price = await gateway.create_price(
        {"product": product["id"], "currency": currency, "unit_amount": amount, "recurring": {"interval": "month"}}
    )
    return str(price["id"])


async def paid_stripe_subscription(
    session: AsyncSession,
    gateway: StripeGateway,
    sandbox_url: str,
    *,
    customer: Customer | None = None,
    plan: Plan | None = None,
    amount: int = 29900,
    currency: str = "thb",
) -> StripeSetup:
    """Subscribe through a sandbox Checkout paid with a test card, and record the rows the webhooks would."""
    if plan is None:
        plan = await factories.create_plan(
            session,
            price_cents=amount,
            currency=currency,
            stripe_price_id=await stripe_price(gateway, amount=amount, currency=currency),
        )
    assert plan.stripe_price_id is not None
    if customer is None:
        customer = await factories.create_customer(session)
    if customer.stripe_customer_id is None:
        created = await gateway.create_customer({"email": customer.email or "x@example.com"})
        customer.stripe_customer_id = str(created["id"])
        await session.flush()
    checkout = await gateway.create_checkout_session(
        {
            "mode": "subscription",
            "customer": customer.stripe_customer_id,
            "success_url": "http://app.test/ok",
            "cancel_url": "http://app.test/no",
            "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
        }
    )
    paid = sandbox_control(
        sandbox_url, "POST", f"checkout_sessions/{checkout['id']}/pay", data={"card": "4242424242424242"}
    )
    stripe_sub = paid["subscription"]
    # the rows the webhooks would write, through the same mappings they use
    sub, _ = await upsert_subscription(
        session,
        gateway,
        await gateway.retrieve_subscription(stripe_sub["id"]),
        actor="stripe",
        customer=customer,
        plan_hint=plan,
    )
    stripe_invoice = await gateway.retrieve_invoice(str(stripe_sub["latest_invoice"]))
    invoice, _ = await upsert_invoice(session, gateway, stripe_invoice, actor="stripe")
    return StripeSetup(customer, plan, sub, invoice, stripe_sub)

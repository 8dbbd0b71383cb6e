"""A paid plan's Stripe Price: checked against the plan on save, created for the admin on request, and re-checked
for drift (archived, or changed in Stripe's dashboard) so the pricing page never shows one amount while Checkout
charges another.

These functions call Stripe and take no database session: adapters call them before (or after) a transaction,
never inside one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from payment.errors import StripeError, ValidationError
from payment.payments.service import format_money
from payment.stripe.gateway import StripeGateway


class PricedPlan(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def slug(self) -> str: ...
    @property
    def price_cents(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def interval(self) -> str: ...
    @property
    def stripe_price_id(self) -> str | None: ...


def price_problems(plan: PricedPlan, price: dict[str, Any]) -> list[str]:
    """How Stripe's price differs from the plan ([] when it fits): active, recurring, same currency, amount and
    interval (every `interval_count` of 1)."""
    problems: list[str] = []
    if not price.get("active", False):
        problems.append("it is archived (inactive) in Stripe")
    recurring = price.get("recurring") or None
    if recurring is None:
        problems.append("it is a one-time price, not a recurring one")
    else:
        interval, count = recurring.get("interval"), int(recurring.get("interval_count") or 1)
        if interval != plan.interval or count != 1:
            every = f"every {count} {interval}s" if count != 1 else f"every {interval}"
            problems.append(f"it bills {every}, the plan every {plan.interval}")
    currency = str(price.get("currency") or "").lower()
    if currency != plan.currency:
        problems.append(f"it is in {currency.upper() or 'no currency'}, the plan in {plan.currency.upper()}")
    amount = price.get("unit_amount")
    if currency == plan.currency and amount != plan.price_cents:
        shown = "no fixed amount" if amount is None else format_money(int(amount), currency)
        problems.append(f"it charges {shown}, the plan shows {format_money(plan.price_cents, plan.currency)}")
    return problems


async def verify(gateway: StripeGateway, plan: PricedPlan) -> None:
    """A paid plan's Stripe price exists and matches it, or a ValidationError on the Stripe Price ID field."""
    if plan.price_cents == 0 or not plan.stripe_price_id:
        return
    try:
        price = await gateway.retrieve_price(plan.stripe_price_id)
    except StripeError as exc:
        if exc.code == "resource_missing":
            raise ValidationError(
                f"Stripe has no price {plan.stripe_price_id} (check the id, and that it comes "
                "from the same Stripe account and mode as STRIPE_SECRET_KEY).",
                field="stripe_price_id",
            ) from None
        raise ValidationError(
            f"The Stripe price could not be checked: {exc.message}", field="stripe_price_id"
        ) from None
    problems = price_problems(plan, price)
    if problems:
        raise ValidationError(
            f"Stripe price {plan.stripe_price_id} does not match this plan: " + "; ".join(problems) + ".",
            field="stripe_price_id",
        )


async def create_for(gateway: StripeGateway, plan: PricedPlan, *, idempotency_key: str) -> str:
    """Create a Stripe product named after the plan and a recurring price with its amount, currency and interval;
    returns the new price id. The key makes a repeated submission reuse the same product and price."""
    if plan.price_cents == 0:
        raise ValidationError("A free plan has no Stripe price to create.", field="stripe_price_id")
    product = await gateway.create_product_once(
        {"name": plan.name, "metadata": {"aquoris_plan": plan.slug}}, idempotency_key=f"{idempotency_key}-product"
    )
    price = await gateway.create_price_once(
        {
            "product": product["id"],
            "unit_amount": plan.price_cents,
            "currency": plan.currency,
            "recurring": {"interval": plan.interval},
            "metadata": {"aquoris_plan": plan.slug},
        },
        idempotency_key=f"{idempotency_key}-price",
    )
    return str(price["id"])


@dataclass(frozen=True)
class PriceCheck:
    plan_id: int
    problem: str | None  # None: the price fits the plan


async def drift(gateway: StripeGateway, plan_id: int, plan: PricedPlan) -> PriceCheck:
    """Whether a saved paid plan's Stripe price still fits it (for the warning on the plans pages)."""
    try:
        await verify(gateway, plan)
    except ValidationError as exc:
        return PriceCheck(plan_id, exc.message)
    return PriceCheck(plan_id, None)

"""A Stripe account that drifted from our books in every way the check knows, made through the sandbox's control
API with the webhooks dropped (as when an endpoint is misconfigured or an operator works in Stripe's Dashboard)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from payment.models import Customer, Drift, Invoice, Plan
from payment.runtime import Services
from tests.support.stripe import FAILING_CARD, World

DROP = {"drop_webhooks": "true"}


@dataclass
class Drifted:
    plan: Plan
    canceled: Customer  # subscription canceled in Stripe
    refunded: Customer  # invoice refunded in Stripe
    subscribed: Customer  # a second subscription created in Stripe
    uncollectible: Customer  # failed renewal marked uncollectible in Stripe
    stripe_ids: dict[str, str]  # what -> the Stripe object that drifted

    @property
    def customer_ids(self) -> list[int]:
        return [c.id for c in (self.canceled, self.refunded, self.subscribed, self.uncollectible)]


async def linked(services: Services, customer: Customer) -> Customer:
    async with services.db.session() as session:
        found = await session.get(Customer, customer.id)
        assert found is not None and found.stripe_customer_id is not None
        return found


async def make_drifts(world: World) -> Drifted:
    """Four customers subscribe (their webhooks applied); a month later one renewal fails (applied too); then each
    drifts through the control API with no webhook delivered."""
    plan = await world.plan(amount=29900)
    people = [await world.customer() for _ in range(4)]
    checkouts = [await world.subscribe(c, plan) for c in people]
    await world.set_card(checkouts[3]["customer"], FAILING_CARD)
    await world.advance(31)
    await world.apply_all(await world.events())
    canceled, refunded, subscribed, uncollectible = [await linked(world.services, c) for c in people]
    async with world.services.db.session() as session:
        paid = await session.scalar(
            select(Invoice).where(Invoice.customer_id == refunded.id, Invoice.status == "paid").order_by(Invoice.id)
        )
        failed = await session.scalar(
            select(Invoice).where(Invoice.customer_id == uncollectible.id, Invoice.status == "payment_failed")
        )
    assert paid is not None and paid.stripe_invoice_id and failed is not None and failed.stripe_invoice_id
    await world.control("POST", f"subscriptions/{checkouts[0]['subscription']}/dashboard_cancel", data=DROP)
    refund = await world.control("POST", f"invoices/{paid.stripe_invoice_id}/dashboard_refund", data={**DROP})
    made = await world.control(
        "POST",
        f"customers/{subscribed.stripe_customer_id}/dashboard_subscription",
        data={"price": plan.stripe_price_id},
    )
    await world.control("POST", f"invoices/{failed.stripe_invoice_id}/mark_uncollectible", data=DROP)
    return Drifted(
        plan,
        canceled,
        refunded,
        subscribed,
        uncollectible,
        {
            "subscription_differs": checkouts[0]["subscription"],
            "refund_missing": refund["refund"]["id"],
            "subscription_missing": made["subscription"]["id"],
            "invoice_differs": failed.stripe_invoice_id,
        },
    )


async def open_drifts(services: Services, customer_ids: list[int]) -> list[Drift]:
    """This test's open drifts (the module's database also holds earlier tests' customers)."""
    async with services.db.session() as session:
        return list(
            (
                await session.scalars(
                    select(Drift).where(Drift.state == "open", Drift.customer_id.in_(customer_ids)).order_by(Drift.id)
                )
            ).all()
        )

"""A client app, a customer with a Stripe subscription and its open renewal invoice; what the Stripe sync writes."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import httpx
from sqlalchemy import select

from payment.models import App, Customer, DunningCase, Invoice, OutboxMessage, Plan, Subscription, utcnow
from payment.runtime import Services
from tests.support import factories

RETRY_AT = datetime(2031, 1, 7, 2, 30, tzinfo=UTC)  # Stripe's next retry, as the sync stores it


async def renewal(
    services: Services, *, email: str, locale: str | None = None, grace_days: int = 7
) -> tuple[App, str, Plan, Customer, Subscription, Invoice]:
    async with services.db.transaction() as session:
        app, key = await factories.create_app(session)
        app.grace_days = grace_days
        plan = await factories.create_plan(session, app_id=app.id, name="Vega Pro")
        customer = await factories.create_customer(session, email=email)
        customer.locale = locale
        sub = await factories.create_subscription(session, customer, plan)
        invoice = await factories.create_invoice(session, customer, subscription=sub, status="open")
    return app, key, plan, customer, sub, invoice


async def fail(services: Services, invoice_id: int, attempt: int, *, past_due: bool = True) -> None:
    """What the Stripe sync writes for `invoice.payment_failed` (and the subscription going past due)."""
    async with services.db.transaction() as session:
        invoice = await session.get_one(Invoice, invoice_id)
        invoice.status, invoice.attempt_count = "payment_failed", attempt
        invoice.last_payment_error = "Your card has insufficient funds."
        invoice.next_payment_attempt_at = RETRY_AT
        if past_due:
            (await session.get_one(Subscription, invoice.subscription_id)).status = "past_due"


async def pay(services: Services, invoice_id: int) -> None:
    async with services.db.transaction() as session:
        invoice = await session.get_one(Invoice, invoice_id)
        invoice.status, invoice.paid_at = "paid", utcnow()
        (await session.get_one(Subscription, invoice.subscription_id)).status = "active"


async def entitlement(client: httpx.AsyncClient, key: str, customer: Customer) -> dict[str, object]:
    response = await client.get(
        f"/api/v1/customers/{quote(customer.external_user_id, safe='')}/subscription",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def emails(services: Services, customer: Customer) -> list[OutboxMessage]:
    async with services.db.session() as session:
        return list(
            (
                await session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.kind == "email", OutboxMessage.target == f"customer:{customer.id}")
                    .order_by(OutboxMessage.position)
                )
            ).all()
        )


async def case(services: Services, invoice_id: int) -> DunningCase:
    async with services.db.session() as session:
        return (await session.scalars(select(DunningCase).where(DunningCase.invoice_id == invoice_id))).one()

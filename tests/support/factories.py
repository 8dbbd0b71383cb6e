"""Factories: rows made through the services where a service exists, so tests start from valid states."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from payment.apps import service as apps
from payment.models import AdminUser, App, Customer, Invoice, Plan, Subscription, utcnow
from payment.plans.service import PlanInput
from payment.plans.service import create_plan as create_plan_service
from payment.security import hash_password

_n = count(1)
SECRET = "dev-insecure-secret-key-change-me-0123456789"


async def create_app(
    session: AsyncSession,
    *,
    slug: str | None = None,
    name: str = "Test App",
    return_url: str = "https://app.example.com/settings",
) -> tuple[App, str]:
    issued = await apps.create_app(
        session, slug=slug or f"app-{next(_n)}", name=name, return_url=return_url, secret_key=SECRET, actor="test"
    )
    return issued.app, issued.api_key


async def create_plan(
    session: AsyncSession,
    *,
    slug: str | None = None,
    price_cents: int = 29900,
    currency: str = "thb",
    interval: str = "month",
    app_id: int | None = None,
    stripe_price_id: str | None = None,
    **extra: Any,
) -> Plan:
    n = next(_n)
    if price_cents > 0 and stripe_price_id is None:
        stripe_price_id = f"price_test{n}"
    return await create_plan_service(
        session,
        PlanInput(
            slug=slug or f"plan-{n}",
            name=extra.pop("name", f"Plan {n}"),
            price_cents=price_cents,
            currency=currency,
            interval=interval,
            stripe_price_id=stripe_price_id,
            app_id=app_id,
            **extra,
        ),
        actor="test",
    )


async def create_customer(
    session: AsyncSession,
    *,
    external_user_id: str | None = None,
    email: str | None = None,
    stripe_customer_id: str | None = None,
) -> Customer:
    n = next(_n)
    customer = Customer(
        external_user_id=external_user_id or f"user-{n}",
        email=email or f"user{n}@example.com",
        stripe_customer_id=stripe_customer_id,
    )
    session.add(customer)
    await session.flush()
    return customer


async def create_subscription(
    session: AsyncSession,
    customer: Customer,
    plan: Plan,
    *,
    status: str = "active",
    source: str = "stripe",
    start: datetime | None = None,
    days: int = 30,
    **extra: Any,
) -> Subscription:
    start = start or utcnow()
    if source == "stripe":
        extra.setdefault("stripe_subscription_id", f"sub_test{next(_n)}")
    sub = Subscription(
        customer_id=customer.id,
        plan_id=plan.id,
        status=status,
        source=source,
        current_period_start=start,
        current_period_end=start + timedelta(days=days),
        **extra,
    )
    session.add(sub)
    await session.flush()
    return sub


async def create_invoice(
    session: AsyncSession,
    customer: Customer,
    *,
    amount_cents: int = 29900,
    currency: str = "thb",
    source: str = "stripe",
    status: str = "paid",
    subscription: Subscription | None = None,
    **extra: Any,
) -> Invoice:
    n = next(_n)
    if source == "stripe":
        extra.setdefault("stripe_invoice_id", f"in_test{n}")
        extra.setdefault("payment_method", "card")
    else:
        extra.setdefault("reference_number", f"REF-{n}")
        extra.setdefault("payment_method", "bank_transfer")
    invoice = Invoice(
        customer_id=customer.id,
        subscription_id=subscription.id if subscription else None,
        source=source,
        amount_cents=amount_cents,
        currency=currency,
        status=status,
        paid_at=utcnow() if status == "paid" else None,
        **extra,
    )
    session.add(invoice)
    await session.flush()
    return invoice


async def create_admin(
    session: AsyncSession,
    *,
    email: str | None = None,
    password: str = "correct-horse-1",
    active: bool = True,
    role: str = "owner",
) -> AdminUser:
    admin = AdminUser(
        email=email or f"admin{next(_n)}@example.com",
        name="Test Admin",
        password_hash=hash_password(password),
        is_active=active,
        role=role,
    )
    session.add(admin)
    await session.flush()
    return admin

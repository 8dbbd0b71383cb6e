"""Queueing an end-user notice: one outbox message (kind `email`) per (notice, object), in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.models import App, BillingSession, Customer, Plan, Subscription
from payment.outbox import service as outbox

KIND = "email"
PAYMENT_FAILED = "payment_failed"
GRACE_ENDING = "grace_ending"
ACCESS_BLOCKED = "access_blocked"
RECEIPT = "receipt"
SUBSCRIPTION_CANCELED = "subscription_canceled"
SUBSCRIPTION_ENDING = "subscription_ending"
TRIAL_ENDING = "trial_ending"
NOTICES = (
    PAYMENT_FAILED,
    GRACE_ENDING,
    ACCESS_BLOCKED,
    RECEIPT,
    SUBSCRIPTION_CANCELED,
    SUBSCRIPTION_ENDING,
    TRIAL_ENDING,
)
# notices whose button opens a fresh billing link (made when the mail is sent, so it is valid when read)
WITH_BILLING_LINK = (PAYMENT_FAILED, GRACE_ENDING, ACCESS_BLOCKED, TRIAL_ENDING)


def target_of(customer_id: int) -> str:
    """The outbox target of a customer's mailbox (prefixed: outbox targets of other kinds are bare ids)."""
    return f"customer:{customer_id}"


async def link_app_id(session: AsyncSession, customer: Customer, subscription: Subscription | None) -> int | None:
    """The app a billing link for this customer opens in: the plan's own app, else the app the customer last used
    the billing page from, else the first active app."""
    if subscription is not None:
        app_id = await session.scalar(select(Plan.app_id).where(Plan.id == subscription.plan_id))
        if app_id is not None:
            return int(app_id)
    last = await session.scalar(
        select(BillingSession.app_id)
        .where(BillingSession.customer_id == customer.id)
        .order_by(BillingSession.created_at.desc())
        .limit(1)
    )
    if last is not None:
        return int(last)
    first = await session.scalar(select(App.id).where(App.is_active).order_by(App.id).limit(1))
    return int(first) if first is not None else None


async def queue(
    session: AsyncSession, customer: Customer, notice: str, *, key: str, data: dict[str, Any], app_id: int | None = None
) -> bool:
    """Queue `notice` about object `key` for the customer; False when it was queued before (never twice) or the
    customer has no email address."""
    if notice not in NOTICES:
        raise ValueError(f"unknown notice {notice!r}")
    if not customer.email:
        return False
    ordering_key = f"customer:{customer.id}"
    position = await outbox.next_number(session, f"{KIND}:{ordering_key}")
    payload = {
        "notice": notice,
        "to": customer.email,
        "name": customer.name,
        "locale": customer.locale,
        "customerId": customer.id,
        "appId": app_id,
        "data": data,
    }
    return await outbox.add(
        session,
        kind=KIND,
        target=target_of(customer.id),
        dedupe_key=f"{notice}:{key}",
        event_type=notice,
        ordering_key=ordering_key,
        position=position,
        payload=payload,
    )

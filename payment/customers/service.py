"""Customers as admins look them up: search, and one customer's whole billing history."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from payment.errors import NotFound
from payment.listing import DEFAULT_PAGE_SIZE, Page, keyset_page
from payment.models import AuditLog, Customer, Invoice, Refund, Subscription, SubscriptionAdjustment
from payment.models.billing import LIVE_STATUSES

HISTORY_LIMIT = 200


async def get(session: AsyncSession, customer_id: int) -> Customer:
    """The customer with this id, or NotFound."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("This customer does not exist.")
    return customer


def search_conditions(term: str | None) -> list[ColumnElement[bool]]:
    """Match a term against the external user id, the email (both as substrings) or the Stripe customer id."""
    term = (term or "").strip()[:255]
    if not term:
        return []
    pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return [
        or_(
            Customer.external_user_id.ilike(pattern, escape="\\"),
            func.lower(Customer.email).like(pattern.lower(), escape="\\"),
            Customer.stripe_customer_id == term,
        )
    ]


async def search(
    session: AsyncSession,
    term: str | None,
    *,
    after: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    with_total: bool = True,
) -> Page[Customer]:
    """Customers matching the term, newest first, with the exact number of matches."""
    where = search_conditions(term)
    return await keyset_page(
        session,
        select(Customer),
        key=Customer.id,
        after=after,
        limit=limit,
        count_model=Customer if with_total else None,
        where=where,
    )


@dataclass(frozen=True)
class CustomerDetail:
    customer: Customer
    subscriptions: list[Subscription]
    live_subscription: Subscription | None
    invoices: list[Invoice]
    refunds: list[Refund]
    adjustments: list[SubscriptionAdjustment]
    audit: list[AuditLog]


async def detail(session: AsyncSession, customer_id: int) -> CustomerDetail:
    """One customer with their subscriptions, invoices, refunds, adjustments and audit history, newest first."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("No such customer.")
    subscriptions = list(
        (
            await session.execute(
                select(Subscription)
                .where(Subscription.customer_id == customer_id)
                .options(selectinload(Subscription.plan), selectinload(Subscription.pending_plan))
                .order_by(Subscription.id.desc())
                .limit(HISTORY_LIMIT)
            )
        )
        .scalars()
        .all()
    )
    invoices = list(
        (
            await session.execute(
                select(Invoice)
                .where(Invoice.customer_id == customer_id)
                .order_by(Invoice.id.desc())
                .limit(HISTORY_LIMIT)
            )
        )
        .scalars()
        .all()
    )
    refunds = list(
        (
            await session.execute(
                select(Refund)
                .join(Invoice, Refund.invoice_id == Invoice.id)
                .where(Invoice.customer_id == customer_id)
                .order_by(Refund.id.desc())
                .limit(HISTORY_LIMIT)
            )
        )
        .scalars()
        .all()
    )
    sub_ids = [s.id for s in subscriptions]
    adjustments = (
        list(
            (
                await session.execute(
                    select(SubscriptionAdjustment)
                    .where(SubscriptionAdjustment.subscription_id.in_(sub_ids))
                    .order_by(SubscriptionAdjustment.id.desc())
                    .limit(HISTORY_LIMIT)
                )
            )
            .scalars()
            .all()
        )
        if sub_ids
        else []
    )
    audit = await _audit_history(session, customer_id, sub_ids, [i.id for i in invoices], [r.id for r in refunds])
    live = next((s for s in subscriptions if s.status in LIVE_STATUSES), None)
    return CustomerDetail(
        customer=customer,
        subscriptions=subscriptions,
        live_subscription=live,
        invoices=invoices,
        refunds=refunds,
        adjustments=adjustments,
        audit=audit,
    )


async def _audit_history(
    session: AsyncSession, customer_id: int, sub_ids: list[int], invoice_ids: list[int], refund_ids: list[int]
) -> list[AuditLog]:
    """Audit rows about the customer or any of their subscriptions, invoices and refunds."""
    entities = [
        ("customer", [customer_id]),
        ("subscription", sub_ids),
        ("invoice", invoice_ids),
        ("refund", refund_ids),
    ]
    conditions = [
        and_(AuditLog.entity_type == kind, AuditLog.entity_id.in_([str(i) for i in ids]))
        for kind, ids in entities
        if ids
    ]
    stmt = select(AuditLog).where(or_(*conditions)).order_by(AuditLog.id.desc()).limit(HISTORY_LIMIT)
    return list((await session.execute(stmt)).scalars().all())

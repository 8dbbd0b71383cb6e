"""Read queries behind the admin lists of billing records and the audit trail, filtered and keyset-paginated.

Filters arrive as plain strings from a query string; unknown values are ignored rather than failing the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import ColumnElement, Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from payment.listing import DEFAULT_PAGE_SIZE, Page, keyset_page
from payment.models import AuditLog, Customer, Invoice, Plan, Refund, Subscription
from payment.models.base import CURRENCIES
from payment.models.billing import (
    INVOICE_SOURCES,
    INVOICE_STATUSES,
    REFUND_STATUSES,
    SUBSCRIPTION_SOURCES,
    SUBSCRIPTION_STATUSES,
)
from payment.models.dashboard import DashboardSubscriptionTotal

Filters = Mapping[str, str]

# what the subscriptions list shows of each row
SUBSCRIPTION_LIST_COLUMNS = (
    Subscription.id,
    Subscription.customer_id,
    Customer.email.label("customer_email"),
    Customer.external_user_id.label("customer_external_user_id"),
    Plan.name.label("plan_name"),
    Subscription.status,
    Subscription.source,
    Subscription.current_period_end,
    Subscription.cancel_at,
    Subscription.cancel_at_period_end,
    Subscription.created_at,
)


def _int(raw: str | None) -> int | None:
    return int(raw) if raw is not None and raw.strip().isdigit() and len(raw.strip()) < 19 else None


def _choice(raw: str | None, allowed: tuple[str, ...]) -> str | None:
    return raw if raw in allowed else None


def subscription_filters(filters: Filters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if status := _choice(filters.get("status"), SUBSCRIPTION_STATUSES):
        where.append(Subscription.status == status)
    if (plan_id := _int(filters.get("plan"))) is not None:
        where.append(Subscription.plan_id == plan_id)
    if source := _choice(filters.get("source"), SUBSCRIPTION_SOURCES):
        where.append(Subscription.source == source)
    if (customer_id := _int(filters.get("customer"))) is not None:
        where.append(Subscription.customer_id == customer_id)
    return where


async def list_subscriptions(
    session: AsyncSession,
    filters: Filters,
    *,
    after: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    with_total: bool = True,
) -> Page[Row[Any]]:
    """Subscriptions matching the filters (status, plan, source, customer), newest first, as rows of the columns
    the list shows (`SUBSCRIPTION_LIST_COLUMNS`: one Core query joining customer and plan, no ORM objects). Without
    a customer filter the exact total comes from the dashboard's running totals (kept by triggers in each writing
    transaction), a few rows instead of a count over every subscription."""
    stmt = (
        select(*SUBSCRIPTION_LIST_COLUMNS)
        .join(Customer, Customer.id == Subscription.customer_id)
        .join(Plan, Plan.id == Subscription.plan_id)
    )
    where = subscription_filters(filters)
    from_totals = with_total and _int(filters.get("customer")) is None
    page = await keyset_page(
        session,
        stmt,
        key=Subscription.id,
        after=after,
        limit=limit,
        count_model=Subscription if with_total and not from_totals else None,
        where=where,
        columns=True,
    )
    if not from_totals:
        return page
    return replace(page, total=await _subscriptions_counted(session, filters))


async def _subscriptions_counted(session: AsyncSession, filters: Filters) -> int:
    """Subscriptions with this status, plan and source (each optional), from `dashboard_subscription_totals`."""
    conditions: list[ColumnElement[bool]] = []
    if status := _choice(filters.get("status"), SUBSCRIPTION_STATUSES):
        conditions.append(DashboardSubscriptionTotal.status == status)
    if (plan_id := _int(filters.get("plan"))) is not None:
        conditions.append(DashboardSubscriptionTotal.plan_id == plan_id)
    if source := _choice(filters.get("source"), SUBSCRIPTION_SOURCES):
        conditions.append(DashboardSubscriptionTotal.source == source)
    total = await session.scalar(
        select(func.coalesce(func.sum(DashboardSubscriptionTotal.subscriptions), 0)).where(*conditions)
    )
    return int(total or 0)


def invoice_filters(filters: Filters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if status := _choice(filters.get("status"), INVOICE_STATUSES):
        where.append(Invoice.status == status)
    if source := _choice(filters.get("source"), INVOICE_SOURCES):
        where.append(Invoice.source == source)
    if currency := _choice(filters.get("currency"), CURRENCIES):
        where.append(Invoice.currency == currency)
    if (customer_id := _int(filters.get("customer"))) is not None:
        where.append(Invoice.customer_id == customer_id)
    return where


async def list_invoices(
    session: AsyncSession,
    filters: Filters,
    *,
    after: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    with_total: bool = True,
) -> Page[Invoice]:
    """Invoices matching the filters (status, source, currency, customer), newest first."""
    stmt = select(Invoice).options(selectinload(Invoice.customer))
    return await keyset_page(
        session,
        stmt,
        key=Invoice.id,
        after=after,
        limit=limit,
        count_model=Invoice if with_total else None,
        where=invoice_filters(filters),
    )


def refund_filters(filters: Filters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if status := _choice(filters.get("status"), REFUND_STATUSES):
        where.append(Refund.status == status)
    if currency := _choice(filters.get("currency"), CURRENCIES):
        where.append(Refund.currency == currency)
    if (invoice_id := _int(filters.get("invoice"))) is not None:
        where.append(Refund.invoice_id == invoice_id)
    return where


async def list_refunds(
    session: AsyncSession,
    filters: Filters,
    *,
    after: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    with_total: bool = True,
) -> Page[Refund]:
    """Refunds matching the filters (status, currency, invoice), newest first."""
    stmt = select(Refund).options(selectinload(Refund.invoice).selectinload(Invoice.customer))
    return await keyset_page(
        session,
        stmt,
        key=Refund.id,
        after=after,
        limit=limit,
        count_model=Refund if with_total else None,
        where=refund_filters(filters),
    )


def audit_filters(filters: Filters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    for name, column in (
        ("actor", AuditLog.actor),
        ("action", AuditLog.action),
        ("entity_type", AuditLog.entity_type),
        ("entity_id", AuditLog.entity_id),
    ):
        value = (filters.get(name) or "").strip()
        if value:
            where.append(column == value[:255])
    return where


async def list_audit(
    session: AsyncSession,
    filters: Filters,
    *,
    after: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    with_total: bool = True,
) -> Page[AuditLog]:
    """Audit rows matching the filters (actor, action, entity type and id), newest first."""
    return await keyset_page(
        session,
        select(AuditLog),
        key=AuditLog.id,
        after=after,
        limit=limit,
        count_model=AuditLog if with_total else None,
        where=audit_filters(filters),
    )

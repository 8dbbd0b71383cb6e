"""Subscriptions, invoices and refunds: read-only lists (changes go through the customer page's actions)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from admin_views.audit_text import actor_emails
from admin_views.documents import WithDocuments
from admin_views.formatting import status_badge
from admin_views.keyset import FilterSpec, KeysetModelView, plain_choices
from payment.customers import records
from payment.listing import Page
from payment.models import Invoice, Plan, Refund, Subscription
from payment.models.base import CURRENCIES
from payment.models.billing import (
    INVOICE_SOURCES,
    INVOICE_STATUSES,
    REFUND_STATUSES,
    SUBSCRIPTION_SOURCES,
    SUBSCRIPTION_STATUSES,
)


class SubscriptionView(KeysetModelView, model=Subscription):
    name = "Subscription"
    name_plural = "Subscriptions"
    icon = "fa-solid fa-repeat"
    list_headers = ("ID", "Customer", "Plan", "Status", "Source", "Current period ends", "Cancels", "Created")
    row_template = "admin/rows/subscription.html"
    column_formatters_detail = {Subscription.status: lambda row, _attribute: status_badge(row.status)}
    details_template = "admin/subscription_details.html"
    export_kind = "subscriptions"
    filter_names = ("status", "plan", "source", "customer")

    async def filter_specs(self, session: AsyncSession) -> list[FilterSpec]:
        plans = (await session.execute(select(Plan.id, Plan.name, Plan.slug).order_by(Plan.sort_order, Plan.id))).all()
        return [
            FilterSpec("status", "Status", plain_choices(SUBSCRIPTION_STATUSES)),
            FilterSpec("plan", "Plan", [(str(p.id), f"{p.name} ({p.slug})") for p in plans]),
            FilterSpec("source", "Source", plain_choices(SUBSCRIPTION_SOURCES)),
        ]

    async def fetch(
        self, session: AsyncSession, filters: dict[str, str], *, after: int | None, limit: int, with_total: bool
    ) -> Page[Any]:
        return await records.list_subscriptions(session, filters, after=after, limit=limit, with_total=with_total)


class InvoiceView(WithDocuments, KeysetModelView, model=Invoice):
    name = "Invoice"
    name_plural = "Invoices"
    icon = "fa-solid fa-file-invoice-dollar"
    list_headers = ("ID", "Customer", "Amount", "Refunded", "Status", "Source", "Method / reference", "Paid")
    row_template = "admin/rows/invoice.html"
    column_formatters_detail = {Invoice.status: lambda row, _attribute: status_badge(row.status)}
    details_template = "admin/record_with_documents.html"
    export_kind = "invoices"
    filter_names = ("status", "source", "currency", "customer")

    async def filter_specs(self, session: AsyncSession) -> list[FilterSpec]:
        return [
            FilterSpec("status", "Status", plain_choices(INVOICE_STATUSES)),
            FilterSpec("source", "Source", plain_choices(INVOICE_SOURCES)),
            FilterSpec("currency", "Currency", [(c, c.upper()) for c in CURRENCIES]),
        ]

    async def fetch(
        self, session: AsyncSession, filters: dict[str, str], *, after: int | None, limit: int, with_total: bool
    ) -> Page[Any]:
        return await records.list_invoices(session, filters, after=after, limit=limit, with_total=with_total)


class RefundView(WithDocuments, KeysetModelView, model=Refund):
    name = "Refund"
    name_plural = "Refunds"
    icon = "fa-solid fa-rotate-left"
    list_headers = ("ID", "Invoice", "Customer", "Amount", "Status", "Reason", "Also cancel", "By", "Created")
    row_template = "admin/rows/refund.html"
    column_formatters_detail = {Refund.status: lambda row, _attribute: status_badge(row.status)}
    details_template = "admin/record_with_documents.html"
    document_key = "refund_id"
    export_kind = "refunds"
    filter_names = ("status", "currency", "invoice")

    async def filter_specs(self, session: AsyncSession) -> list[FilterSpec]:
        return [
            FilterSpec("status", "Status", plain_choices(REFUND_STATUSES)),
            FilterSpec("currency", "Currency", [(c, c.upper()) for c in CURRENCIES]),
        ]

    async def row_context(self, session: AsyncSession, rows: list[Any]) -> dict[str, Any]:
        return {"actor_names": await actor_emails(session, (row.created_by or "" for row in rows))}

    async def fetch(
        self, session: AsyncSession, filters: dict[str, str], *, after: int | None, limit: int, with_total: bool
    ) -> Page[Any]:
        return await records.list_refunds(session, filters, after=after, limit=limit, with_total=with_total)

"""Subscriptions, invoices and refunds: read-only lists (changes go through the customer page's actions)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from admin_views.audit_text import actor_emails
from admin_views.documents import WithDocuments
from admin_views.formatting import status_badge, when
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
    cancels_on,
)


def detail_url_prefix(request: Request, identity: str) -> str:
    """The details page's URL of a row of `identity` without its id: url_for once per page, not twice per row."""
    url = str(request.url_for("admin:details", identity=identity, pk="0"))
    return url[:-1]


class SubscriptionView(KeysetModelView, model=Subscription):
    name = "Subscription"
    name_plural = "Subscriptions"
    icon = "fa-solid fa-repeat"
    list_headers = ("ID", "Customer", "Plan", "Status", "Source", "Current period ends", "Cancels", "Created")
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

    def render_rows(self, request: Request, rows: list[Any]) -> Markup:
        """The subscriptions list's rows (records.SUBSCRIPTION_LIST_COLUMNS), every value escaped once here."""
        subscription_url = escape(detail_url_prefix(request, "subscription"))
        customer_url = escape(detail_url_prefix(request, "customer"))
        html = []
        for row in rows:
            ends_on = cancels_on(row.status, row.cancel_at, row.cancel_at_period_end, row.current_period_end)
            html.append(
                f'<tr data-row-id="{row.id}">'
                f'<td><a href="{subscription_url}{row.id}">#{row.id}</a></td>'
                f'<td><a href="{customer_url}{row.customer_id}">'
                f"{escape(row.customer_email or row.customer_external_user_id)}</a></td>"
                f"<td>{escape(row.plan_name)}</td>"
                f"<td>{status_badge(row.status)}</td>"
                f"<td>{escape(row.source)}</td>"
                f"<td>{when(row.current_period_end)}</td>"
                f"<td>{f'cancels on {when(ends_on)}' if ends_on else ''}</td>"
                f"<td>{when(row.created_at)}</td>"
                "</tr>\n"
            )
        return Markup("".join(html))  # noqa: S704 (every text value is escaped above; ids are ints, times digits)


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

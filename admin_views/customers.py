"""Customers: search, and the detail page that other admin features hang their actions on.

The detail page lives at /admin/customer/details/{id}. Its template includes, when they exist,
`operations/customer_actions.html` (context: customer, live_subscription), `operations/subscription_actions.html`
per subscription row (context: subscription) and `operations/invoice_actions.html` per invoice row (context: invoice).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request

from admin_views import dunning
from admin_views.audit_text import actor_emails
from admin_views.keyset import FilterSpec, KeysetModelView
from payment.customers import service as customers
from payment.errors import NotFound
from payment.listing import Page
from payment.models import Customer
from payment.runtime import services_of

AUDIT_PAGE_SIZE = 20


class CustomerView(KeysetModelView, model=Customer):
    name = "Customer"
    name_plural = "Customers"
    icon = "fa-solid fa-users"
    list_headers = ("ID", "External user id", "Email", "Name", "Stripe customer", "Created")
    row_template = "admin/rows/customer.html"
    filter_names = ("q",)
    details_template = "admin/customer_detail.html"
    empty_message = "No customer matches this search."
    export_kind = "customers"

    async def filter_specs(self, session: AsyncSession) -> list[FilterSpec]:
        return [FilterSpec("q", "Search: external user id, email or Stripe id")]

    async def fetch(
        self, session: AsyncSession, filters: dict[str, str], *, after: int | None, limit: int, with_total: bool
    ) -> Page[Any]:
        return await customers.search(session, filters.get("q"), after=after, limit=limit, with_total=with_total)

    async def details_context(self, request: Request) -> dict[str, Any]:
        raw = str(request.path_params.get("pk", ""))
        if not raw.isdigit():
            raise HTTPException(status_code=404, detail="No such customer.")
        raw_page = str(request.query_params.get("audit_page", "1"))
        audit_page = int(raw_page) if raw_page.isdigit() and 0 < len(raw_page) < 6 else 1
        async with services_of(request).db.session() as session:
            try:
                bundle = await customers.detail(session, int(raw))
            except NotFound as exc:
                raise HTTPException(status_code=404, detail=exc.message) from None
            actors = (
                [row.actor for row in bundle.audit]
                + [r.created_by or "" for r in bundle.refunds]
                + [a.actor for a in bundle.adjustments]
            )
            names = await actor_emails(session, actors)
            extra = await dunning.customer_context(session, bundle.customer.id)
        pages = max(1, -(-len(bundle.audit) // AUDIT_PAGE_SIZE))
        audit_page = min(audit_page, pages)
        shown = bundle.audit[(audit_page - 1) * AUDIT_PAGE_SIZE : audit_page * AUDIT_PAGE_SIZE]
        return {
            **extra,
            "customer": bundle.customer,
            "live_subscription": bundle.live_subscription,
            "subscriptions": bundle.subscriptions,
            "invoices": bundle.invoices,
            "refunds": bundle.refunds,
            "adjustments": bundle.adjustments,
            "audit_rows": shown,
            "audit_page": audit_page,
            "audit_pages": pages,
            "actor_names": names,
        }

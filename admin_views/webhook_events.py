"""Admin: the "Webhook events" list (read-only, status filter, error) and the Retry action (POST + CSRF)."""

from __future__ import annotations

import logging
from typing import Any

from sqladmin import Admin, expose
from sqladmin.flash import flash
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from admin_views.access import guard
from admin_views.auth import current_admin_actor
from admin_views.keyset import FilterSpec, KeysetModelView, plain_choices
from admin_views.transactions import admin_transaction
from payment.admins.permissions import Permission
from payment.errors import PaymentError
from payment.jobs import stripe_events
from payment.listing import Page
from payment.models import StripeEvent
from payment.models.ops import EVENT_STATUSES
from payment.runtime import Services, services_of
from payment.stripe import events
from payment.stripe.handlers import HANDLED_TYPES
from payment.stripe.version import API_VERSION

log = logging.getLogger(__name__)


class WebhookEventView(KeysetModelView, model=StripeEvent):
    name = "Webhook event"
    name_plural = "Webhook events"
    identity = "stripe-event"
    icon = "fa-solid fa-plug-circle-bolt"
    list_headers = (
        "ID",
        "Stripe event",
        "Type",
        "API version",
        "Status",
        "Attempts",
        "Received",
        "Handled",
        "Last error",
        "",
    )
    row_template = "webhook_events/row.html"
    details_template = "webhook_events/details.html"
    filter_names = ("status", "type")
    empty_message = "No webhook events match these filters."

    async def filter_specs(self, session: AsyncSession) -> list[FilterSpec]:
        # the types we act on (a DISTINCT over the whole table would not scale)
        return [
            FilterSpec("status", "Status", plain_choices(EVENT_STATUSES)),
            FilterSpec("type", "Type", [(t, t) for t in HANDLED_TYPES]),
        ]

    async def row_context(self, session: AsyncSession, rows: list[Any]) -> dict[str, Any]:
        # an event of another version is still applied (we re-read the object), but admins should see it
        return {"pinned_api_version": API_VERSION}

    async def fetch(
        self, session: AsyncSession, filters: dict[str, str], *, after: int | None, limit: int, with_total: bool
    ) -> Page[Any]:
        return await events.list_events(session, filters, after=after, limit=limit, with_total=with_total)

    @expose("/retry/{pk:int}", methods=["POST"])
    async def retry(self, request: Request) -> Response:
        """Retry: POST only (the CSRF middleware has checked the token), one service call, back to the event."""
        await guard(request, Permission.RETRY_WEBHOOK)
        services = services_of(request)
        pk = int(request.path_params["pk"])
        try:
            async with admin_transaction(services.db, request.url.path) as session:
                await events.retry(session, pk, actor=current_admin_actor(request))
        except PaymentError as exc:
            flash(request, exc.message, "error")
        else:
            # enqueued after the commit: a job must never run before the row says "pending"
            queued = await stripe_events.enqueue_event(services, pk)
            flash(
                request,
                "The event will be applied again shortly."
                if queued
                else "The event is pending again; the queue is unreachable, so the periodic sweep will apply it.",
                "success" if queued else "warning",
            )
        target = request.url_for("admin:details", identity=self.identity, pk=pk)
        return RedirectResponse(str(target), status_code=303)


def register(admin: Admin, services: Services) -> None:
    """Add this module's views to the admin."""
    admin.add_view(WebhookEventView)

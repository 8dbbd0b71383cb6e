"""Admin: the Reconciliation screen (every drift between our books and Stripe's, filtered by kind and state) and
"Run check now". Each row's "Take Stripe's" and "Ignore…" are operations (admin_views/drift_operations.py)."""

from __future__ import annotations

import json
from typing import Any

from sqladmin import Admin, BaseView, expose
from sqladmin.flash import Flash
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from admin_views.access import guard, refuse
from admin_views.auth import client_ip, current_admin_actor
from payment.admins.permissions import Permission, PermissionDenied
from payment.listing import parse_after
from payment.models.reconciliation import DRIFT_KINDS, DRIFT_STATES
from payment.reconciliation import service as reconciliation
from payment.reconciliation.check import request_check
from payment.runtime import Services, services_of

STATE_LABELS = {"open": "Open", "fixed": "Fixed", "ignored": "Ignored"}
QUEUED = {
    "queued": ("success", "The check will run in a moment; reload this page to see what it finds."),
    "already_queued": ("info", "A check is already waiting to run."),
    "unreachable": ("warning", "The job queue is unreachable; the nightly check still runs."),
}


def show(values: dict[str, Any]) -> list[tuple[str, str]]:
    """A drift's compared fields as (name, value) lines."""
    return [
        (k.replace("_", " "), "—" if v is None else v if isinstance(v, str) else json.dumps(v))
        for k, v in values.items()
    ]


class ReconciliationView(BaseView):
    name = "Reconciliation"
    identity = "reconciliation"
    icon = "fa-solid fa-scale-balanced"

    @expose("/reconciliation/check", methods=["POST"], identity="reconciliation-check")
    async def check_now(self, request: Request) -> Response:
        await guard(request, Permission.RECONCILE)
        services = services_of(request)
        try:
            async with services.db.transaction() as session:
                await reconciliation.record_check_requested(
                    session, actor=current_admin_actor(request), ip=client_ip(request)
                )
        except PermissionDenied as denied:
            await refuse(request, denied)
        level, message = QUEUED[await request_check(services.jobs)]
        getattr(Flash, level)(request, message)
        return RedirectResponse(str(request.url_for("admin:view-reconciliation")), status_code=303)

    @expose("/reconciliation", methods=["GET"], identity="reconciliation")
    async def page(self, request: Request) -> Response:
        filters = {
            name: request.query_params[name]
            for name in ("kind", "state")
            if request.query_params.get(name, "") in (DRIFT_KINDS if name == "kind" else DRIFT_STATES)
        }
        async with services_of(request).db.session() as session:
            found = await reconciliation.list_drifts(
                session, filters, after=parse_after(request.query_params.get("after"))
            )
        context: dict[str, Any] = {
            "title": "Reconciliation",
            "rows": found.rows,
            "total": found.total,
            "next_after": found.next_after,
            "filters": filters,
            "state": filters.get("state", "open"),
            "kinds": [(k, reconciliation.KIND_LABELS[k]) for k in DRIFT_KINDS],
            "states": list(STATE_LABELS.items()),
            "kind_labels": reconciliation.KIND_LABELS,
            "show": show,
        }
        response: Response = await self.templates.TemplateResponse(request, "admin/reconciliation.html", context)
        response.headers["Cache-Control"] = "no-store"
        return response


def register(admin: Admin, services: Services) -> None:
    """Add the reconciliation screen."""
    admin.add_base_view(ReconciliationView)

"""Mount SQLAdmin at /admin with our authentication, CSRF, keyset lists and views."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jinja2
from sqladmin import Admin
from sqladmin.authentication import login_required
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from admin_views import (
    access,
    admin_users,
    apps,
    audit_log,
    coupons,
    customers,
    dashboard,
    documents,
    dunning,
    operations,
    password_links,
    plans,
    reconciliation,
    records,
    sellers,
    two_factor,
    webhook_events,
)
from admin_views.app_webhooks import register as register_app_webhooks
from admin_views.audit_text import actor_label, sentence
from admin_views.auth import BAD_CREDENTIALS, AdminAuth
from admin_views.csrf import install_template_globals
from admin_views.formatting import details_json, money, status_badge, status_label, when
from admin_views.headers import AdminHeadersMiddleware
from admin_views.keyset import KeysetModelView
from payment.errors import PaymentError
from payment.http import UnavailableMiddleware
from payment.runtime import Services

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


class AquorisAdmin(Admin):
    """SQLAdmin with keyset-paginated lists for our big tables and sign-out by POST only."""

    def __init__(self, app: Starlette, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        routes: list[BaseRoute] = []
        for route in self.admin.router.routes:
            if isinstance(route, Route) and route.name == "logout":
                # sign-out changes state: POST only (the CSRF middleware checks it); GET answers 405
                route = Route("/logout", endpoint=self.logout, name="logout", methods=["POST"])
            routes.append(route)
        routes.insert(0, Mount("/aquoris-static", app=StaticFiles(directory=STATIC), name="aquoris-static"))
        self.admin.router.routes = routes

    async def login(self, request: Request) -> Response:
        if request.method == "GET" or self.authentication_backend is None:
            return await super().login(request)
        outcome = await self.authentication_backend.login(request)
        if isinstance(outcome, Response):
            return outcome
        if not outcome:
            # the same words whether the email is unknown, the password wrong or the account inactive
            username = str((await request.form()).get("username", ""))[:320]
            return await self.templates.TemplateResponse(
                request, "sqladmin/login.html", {"error": BAD_CREDENTIALS, "username": username}, status_code=400
            )
        return RedirectResponse(request.url_for("admin:index"), status_code=302)

    @login_required
    async def list(self, request: Request) -> Response:
        model_view = self._find_model_view(request.path_params["identity"])
        if isinstance(model_view, KeysetModelView):
            can_list = await self._list(request)
            return await model_view.keyset_list(request, can_list=can_list)
        # the stock list (OFFSET + count) is fine for the small tables (apps, plans, admins)
        stock: Any = Admin.list.__wrapped__  # type: ignore[attr-defined]
        response: Response = await stock(self, request)
        return response


class _HideExpectedErrors(logging.Filter):
    """SQLAdmin logs every failed save with a traceback; a PaymentError is a form error, not a fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], PaymentError))


def install_filters(env: jinja2.Environment) -> None:
    """The admin templates' filters: money, times, status badges and audit rows as sentences."""
    env.filters["audit_sentence"] = sentence
    env.filters["actor_label"] = actor_label
    env.filters["status_badge"] = status_badge
    env.filters["status_label"] = status_label
    env.filters["money"] = money
    env.filters["when"] = when
    env.filters["details_json"] = details_json


def link_admin_first(app: Starlette) -> None:
    """Put the admin's mount first among the app's routes. An admin page builds dozens of links (the menu, each
    row); Starlette's url_for walks the routes in order and searches every route of an unnamed mount (/api,
    /billing) before it reaches "admin:...". The mounts' paths do not overlap, so which route serves a request is
    unchanged."""
    routes = app.router.routes
    mount = next(r for r in routes if isinstance(r, Mount) and r.name == "admin")
    routes.remove(mount)
    routes.insert(0, mount)


def mount_admin(app: Starlette, services: Services) -> Admin:
    auth = AdminAuth(services)
    admin = AquorisAdmin(
        app,
        session_maker=services.db.sessionmaker,
        base_url="/admin",
        title="Aquoris Payment",
        templates_dir=str(TEMPLATES),
        authentication_backend=auth,
    )
    auth.templates = admin.templates
    # the admin is its own Starlette app with its own 500 handler: the 503 for an unreachable or busy database
    # must sit inside it, around the session and sign-in middleware that already read the database
    admin.admin.add_middleware(UnavailableMiddleware)
    admin.admin.add_middleware(AdminHeadersMiddleware)
    # routes inside the mounted admin see the admin's Starlette as request.app
    admin.admin.state.services = services
    admin.admin.state.secret_key = services.settings.secret_key
    install_template_globals(admin.templates.env)
    access.install_template_globals(admin.templates.env)
    install_filters(admin.templates.env)
    # a deployed process never sees its templates change: no stat of each template file on every render
    admin.templates.env.auto_reload = not services.settings.is_deployed
    link_admin_first(app)
    sqladmin_log = logging.getLogger("sqladmin.application")
    if not any(isinstance(f, _HideExpectedErrors) for f in sqladmin_log.filters):
        sqladmin_log.addFilter(_HideExpectedErrors())
    for view in (
        customers.CustomerView,
        records.SubscriptionView,
        records.InvoiceView,
        records.RefundView,
        plans.PlanView,
        apps.AppView,
        admin_users.AdminUserView,
        audit_log.AuditLogView,
        sellers.SellerProfileView,
    ):
        admin.add_view(view)
    for module in (
        dashboard,
        webhook_events,
        operations,
        reconciliation,
        documents,
        dunning,
        two_factor,
        password_links,
        coupons,
    ):
        module.register(admin, services)
    register_app_webhooks(admin, services)
    return admin

"""The composition root: builds a process's Services and the one Starlette app (API, admin, billing pages).

The only module of `payment/` that imports the adapters `admin_views` and `billing_ui` (tests/test_layering.py);
everything else depends inward, so the import graph has no circle.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount

from admin_views.setup import mount_admin
from billing_ui.manage import routes as manage_routes
from billing_ui.routes import routes as billing_routes
from payment.api import client, client_errors, fastpath, health, problems, webhooks
from payment.app_webhooks import capture
from payment.audit.chain import chain_key
from payment.config import Settings, load_settings
from payment.db import Database
from payment.dunning import capture as dunning
from payment.http import RequestSanityMiddleware, SecurityHeadersMiddleware, UnavailableMiddleware
from payment.jobs.app import create_job_app
from payment.observability import init_sentry
from payment.runtime import Services
from payment.serving import redact_access_log
from payment.stripe.gateway import StripeGateway

log = logging.getLogger(__name__)


def build_services(settings: Settings, *, null_pool: bool = False) -> Services:
    if settings.database_url is None:
        raise RuntimeError("DATABASE_URL is not set (the CLI starts the embedded PostgreSQL and sets it)")
    db = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        null_pool=null_pool,
        pool_timeout=settings.db_pool_timeout_seconds,
        audit_key=chain_key(settings.audit_chain_secret),
        behind_pgbouncer=settings.database_pooler == "pgbouncer",
    )
    # every transaction's subscription, invoice, refund and customer changes become client apps' webhooks
    capture.install()
    dunning.install()
    # dunning first: a case it opens is part of the entitlement the webhook capture then announces
    db.before_commit.append(dunning.record_changes)
    db.before_commit.append(capture.record_changes)
    return Services(settings=settings, db=db, stripe=StripeGateway(settings), jobs=create_job_app(settings))


def web_app() -> Starlette:
    """The app of one `payment serve --workers N` process: settings from the environment, Sentry on."""
    settings = load_settings()
    init_sentry(settings, component="web")
    redact_access_log()  # this process's own uvicorn.access logger
    return create_app(settings)


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Starlette:
    """Build the web app; the database must already exist and be migrated."""
    if services is None:
        services = build_services(settings or load_settings())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with services.jobs.open_async():
            yield
        await services.stripe.aclose()
        await services.db.dispose()

    app = Starlette(
        routes=[
            Mount(
                "/api",
                routes=[*health.routes, *client_errors.routes, Mount("/v1", routes=[*client.routes, *webhooks.routes])],
            ),
            Mount("/billing", routes=[*manage_routes, *billing_routes]),
        ],
        middleware=[
            # outermost: Stripe's deliveries skip the routers and the middleware made for pages
            Middleware(webhooks.WebhookFastPath),
            # and client apps' POST /api/v1/sessions (with the security headers and the 503 of the two below)
            Middleware(fastpath.ApiFastPath, hsts=services.settings.is_production),
            Middleware(SecurityHeadersMiddleware, hsts=services.settings.is_production),
            Middleware(RequestSanityMiddleware),
            Middleware(UnavailableMiddleware),
        ],
        exception_handlers={HTTPException: problems.http_error},
        lifespan=lifespan,
    )
    app.state.services = services
    mount_admin(app, services)
    return app

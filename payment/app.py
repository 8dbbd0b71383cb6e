"""The composition root: one Starlette app with the API, the admin and the billing pages.

Domain code in `payment/` never imports `admin_views` or `billing_ui`; only this module (and the CLI that runs it)
assembles the adapters.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from payment.api import client, client_errors, health, webhooks
from payment.config import Settings, load_settings
from payment.http import RequestSanityMiddleware, SecurityHeadersMiddleware, UnavailableMiddleware
from payment.runtime import Services, build_services

log = logging.getLogger(__name__)


def web_app() -> Starlette:
    """The app of one `payment serve --workers N` process: settings from the environment, Sentry on."""
    from payment.observability import init_sentry
    from payment.serving import redact_access_log

    settings = load_settings()
    init_sentry(settings, component="web")
    redact_access_log()  # this process's own uvicorn.access logger
    return create_app(settings)


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Starlette:
    """Build the web app; the database must already exist and be migrated."""
    if services is None:
        services = build_services(settings or load_settings())
    from admin_views.setup import mount_admin
    from billing_ui.routes import routes as billing_routes

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with services.jobs.open_async():
            yield
        await services.db.dispose()

    app = Starlette(
        routes=[
            Mount("/api", routes=[*health.routes, *client_errors.routes,
                                  Mount("/v1", routes=[*client.routes, *webhooks.routes])]),
            Mount("/billing", routes=billing_routes),
        ],
        middleware=[Middleware(SecurityHeadersMiddleware, hsts=services.settings.is_production),
                    Middleware(RequestSanityMiddleware),
                    Middleware(UnavailableMiddleware)],
        lifespan=lifespan,
    )
    app.state.services = services
    mount_admin(app, services)
    return app

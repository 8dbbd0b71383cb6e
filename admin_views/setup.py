"""Mount SQLAdmin at /admin with our authentication and views."""

from __future__ import annotations

from pathlib import Path

from sqladmin import Admin
from starlette.applications import Starlette

from admin_views import dashboard, operations, webhook_events
from admin_views.auth import AdminAuth
from payment.runtime import Services

TEMPLATES = Path(__file__).parent / "templates"


def mount_admin(app: Starlette, services: Services) -> Admin:
    admin = Admin(
        app,
        session_maker=services.db.sessionmaker,
        base_url="/admin",
        title="Aquoris Payment",
        templates_dir=str(TEMPLATES),
        authentication_backend=AdminAuth(services),
    )
    for module in (dashboard, webhook_events, operations):
        module.register(admin, services)
    return admin

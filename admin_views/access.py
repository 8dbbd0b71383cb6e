"""Roles in the admin: the signed-in admin's actor (with the role read from the database on this request), a
guard that refuses with a clear 403 page and an audit row, and `can(...)` for templates to hide what a role cannot do.

The services check the same table themselves (payment.admins.permissions.require); the guard here only lets the
admin refuse before showing a form, and turns a service's refusal into the same page.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from admin_views.auth import current_admin_actor
from payment.admins.permissions import Permission, PermissionDenied, allows
from payment.audit import service as audit
from payment.runtime import services_of

log = logging.getLogger(__name__)


def role_allows(request: HTTPConnection, permission: Permission | str) -> bool:
    admin = getattr(request.state, "admin", None)
    return admin is not None and allows(admin.role, Permission(permission))


async def refuse(request: HTTPConnection, denied: PermissionDenied) -> NoReturn:
    """Audit the refusal in its own transaction (the refused one rolled back) and answer 403 with the reason."""
    ip = request.client.host if request.client else None
    async with services_of(request).db.transaction() as session:
        await audit.record(
            session,
            actor=denied.actor,
            action="admin.forbidden",
            entity_type="permission",
            entity_id=denied.permission,
            details={"role": denied.role, "method": request.scope.get("method"), "path": request.url.path},
            ip=ip,
        )
    log.info("refused %s to %s (%s)", denied.permission, denied.actor, denied.role)
    raise HTTPException(status_code=403, detail=denied.message)


async def guard(request: HTTPConnection, permission: Permission) -> None:
    """Refuse the request (403 page + audit row) unless the signed-in admin's role allows the permission."""
    actor = current_admin_actor(request)
    if not allows(actor.role, permission):
        await refuse(request, PermissionDenied(actor, permission))


def install_template_globals(env: jinja2.Environment) -> None:
    """`{% if can("refund") %}` in admin templates: hide actions the signed-in admin's role cannot take."""

    @jinja2.pass_context
    def can(context: Any, permission: str) -> bool:
        return role_allows(context["request"], permission)

    env.globals["can"] = can

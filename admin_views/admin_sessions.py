"""Admin sessions on the admin users screen: each admin's signed-in browsers (created, last seen, IP, browser, second
factor, "this session") with "Sign out this session", and the same list as a page an admin opens for their own
account. The rules (who may see and end whose sessions) are in payment.admins.sessions."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape
from starlette.requests import Request

from admin_views.access import role_allows
from admin_views.auth import current_admin_id, current_session_id, session_lifetime
from admin_views.csrf import token_for
from admin_views.formatting import when
from payment.admins import sessions
from payment.admins.permissions import Permission
from payment.models import AdminSession, AdminUser, utcnow
from payment.runtime import services_of

FACTOR_LABELS = {"none": "password only", "totp": "password + code", "backup": "password + backup code"}


def may_manage(request: Request, admin_id: int) -> bool:
    """Whether the signed-in admin may see and end this admin's sessions (their own, or as a manager of admins)."""
    return admin_id == current_admin_id(request) or role_allows(request, Permission.MANAGE_ADMINS)


def revoke_form(request: Request, row: AdminSession, back: str) -> Markup:
    url = request.url_for("admin:view-admin-user-revoke_session", pk=row.admin_id, sid=row.id)
    return Markup(  # noqa: S704 (every interpolated value is escaped)
        f'<form method="post" action="{escape(url)}" class="d-inline">'
        f'<input type="hidden" name="csrf_token" value="{escape(token_for(request))}">'
        f'<input type="hidden" name="back" value="{escape(back)}">'
        f'<button type="submit" class="btn btn-sm btn-outline-danger" data-revoke-session="{row.id}">'
        "Sign out this session</button></form>"
    )


def session_line(request: Request, row: AdminSession, back: str) -> Markup:
    this = row.id == current_session_id(request)
    return Markup(  # noqa: S704 (every interpolated value is escaped)
        f'<li data-session="{row.id}"{" data-this-session" if this else ""}>'
        f"{escape(row.user_agent or 'unknown browser')} · {escape(row.ip or 'no IP')} · "
        f"since {escape(when(row.created_at))} · last seen {escape(when(row.last_seen_at))}"
        f" · {escape(FACTOR_LABELS.get(row.second_factor, row.second_factor))}"
        + (' <span class="badge bg-blue-lt">this session</span>' if this else "")
        + " "
    ) + revoke_form(request, row, back)


def live_rows(request: Request, admin: AdminUser) -> list[AdminSession]:
    lifetime, now = session_lifetime(services_of(request).settings), utcnow()
    return [row for row in admin.open_sessions if sessions.is_live(row, lifetime, now)]


def sign_ins_cell(admin: AdminUser, _attribute: Any, request: Request) -> Markup:
    """The admin users list's column: the last sign-in, then the live sessions (of the admins the signed-in admin
    may manage: their own, or everyone's for a manager of admins)."""
    last = Markup("{}").format(when(admin.last_login_at))
    if not may_manage(request, admin.id):
        return last
    rows = live_rows(request, admin)
    if not rows:
        return last + Markup('<div class="text-muted small">no live session</div>')
    items = Markup("").join(session_line(request, row, "list") for row in rows)
    return (
        last
        + Markup('<ul class="list-unstyled small mb-0" data-sessions-of="{}">').format(admin.email)
        + items
        + Markup("</ul>")
    )

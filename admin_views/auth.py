"""Admin sign-in against admin_users (bcrypt), kept in a signed, HttpOnly, SameSite=strict session cookie.

Sign-in is rate limited per client IP through the database (payment.ratelimit), so the limit holds across app
processes; every sign-in, refused sign-in and sign-out is audited.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqladmin.authentication import AuthenticationBackend
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response

from admin_views import csrf
from payment import ratelimit
from payment.admins import service as admins
from payment.admins import sessions
from payment.admins.permissions import AdminActor
from payment.config import Settings
from payment.models import utcnow
from payment.runtime import Services, services_of
from payment.security import verify_password

SESSION_COOKIE = "aquoris_admin"
STEPPED_UP = "stepped_up_at"
PENDING_ID = "pending_admin_id"
PENDING_AT = "pending_since"
TWO_FACTOR_SETUP = "/two-factor/setup"
ADMIN_ID = "admin_id"
# the random token of this browser's row in admin_sessions (payment.admins.sessions); the database keeps its hash
SESSION_TOKEN = "sid"
BAD_CREDENTIALS = "Invalid email or password."


def client_ip(conn: HTTPConnection) -> str | None:
    return conn.client.host if conn.client else None


def current_admin_id(request: HTTPConnection) -> int:
    """The signed-in admin's id (only call from authenticated admin routes)."""
    admin_id = request.session.get(ADMIN_ID)
    if not isinstance(admin_id, int):
        raise PermissionError("no admin is signed in")
    return admin_id


def current_session_id(request: HTTPConnection) -> int | None:
    """The id of this browser's admin session (set by authenticate on every signed-in request)."""
    session_id = getattr(request.state, "admin_session_id", None)
    return session_id if isinstance(session_id, int) else None


def session_lifetime(settings: Settings) -> sessions.Lifetime:
    return sessions.Lifetime(
        idle=timedelta(seconds=settings.admin_session_idle_seconds),
        absolute=timedelta(seconds=settings.admin_session_max_age),
    )


def user_agent(conn: HTTPConnection) -> str:
    return conn.headers.get("user-agent", "")


def start_session(request: Request, admin_id: int, token: str) -> None:
    """A fresh cookie at sign-in: nothing planted before it (fixation) survives, the CSRF token changes."""
    request.session.clear()
    request.session[ADMIN_ID] = admin_id
    request.session[SESSION_TOKEN] = token
    request.session[STEPPED_UP] = int(time.time())  # the password or code was just typed: fresh for step-up
    csrf.new_seed(request)


def current_admin_actor(request: HTTPConnection) -> AdminActor:
    """The audit actor for the signed-in admin, e.g. "admin:3", carrying the role loaded on this request."""
    admin = getattr(request.state, "admin", None)
    if admin is None:
        raise PermissionError("no admin is signed in")
    return AdminActor(admin.id, admin.role)


def begin_second_step(request: Request, admin_id: int) -> Response:
    """The password was right and the account has two-factor: only "passed the password" is kept (for a few
    minutes) until a code is given on /admin/two-factor."""
    request.session.clear()
    request.session[PENDING_ID] = admin_id
    request.session[PENDING_AT] = int(time.time())
    csrf.new_seed(request)
    return RedirectResponse(request.url_for("admin:two_factor"), status_code=302)


def rate_limit_message(retry_after: int) -> str:
    return (
        f"Too many sign-in attempts from your network. Wait {retry_after} seconds and try again "
        f"(the limit protects admin accounts from password guessing)."
    )


class AdminAuth(AuthenticationBackend):
    def __init__(self, services: Services) -> None:
        settings = services.settings
        # Our own middleware list instead of the base class's: the session must be configured (strict, secure in
        # production, expiring) and the CSRF check must run inside it, where the session is readable.
        self.middlewares = [
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret_key,
                session_cookie=SESSION_COOKIE,
                max_age=settings.admin_session_max_age,
                path="/admin",
                same_site="strict",
                https_only=settings.is_production,
            ),
            Middleware(csrf.CsrfMiddleware, max_age=settings.admin_session_max_age),
        ]
        self.services = services
        self.templates: Any = None  # the admin's Jinja templates, set by mount_admin

    async def login(self, request: Request) -> Response | bool:
        form = await request.form()
        email, password = str(form.get("username", "")), str(form.get("password", ""))
        ip = client_ip(request)
        services = services_of(request)
        async with services.db.transaction() as session:
            verdict = await ratelimit.hit(session, f"admin-login:{ip}", limit=services.settings.login_rate_limit)
            if not verdict.allowed:
                await admins.record_failed_sign_in(session, email, reason="rate_limited", ip=ip)
                return await self._rate_limited(request, verdict.retry_after_seconds, email)
            admin = await admins.find_by_email(session, email) if email.strip() else None
            ok = verify_password(password, admin.password_hash if admin else None)
            if not ok or admin is None or not admin.is_active:
                # one answer for unknown email, wrong password and inactive account: no account enumeration
                reason = "inactive" if ok and admin is not None else "bad_credentials"
                await admins.record_failed_sign_in(session, email, reason=reason, ip=ip)
                return False
            admin_id = admin.id
            if admin.has_two_factor:
                return begin_second_step(request, admin_id)
            token = await admins.record_sign_in(session, admin, ip=ip, user_agent=user_agent(request))
        start_session(request, admin_id, token)
        return True

    async def _rate_limited(self, request: Request, retry_after: int, email: str) -> Response:
        # the email typed stays in the form, so trying again later is one field, not two
        response: Response = await self.templates.TemplateResponse(
            request,
            "sqladmin/login.html",
            {"error": rate_limit_message(retry_after), "rate_limited": True, "username": email[:320]},
            status_code=429,
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    async def logout(self, request: Request) -> Response | bool:
        admin_id, token = request.session.get(ADMIN_ID), request.session.get(SESSION_TOKEN)
        if isinstance(admin_id, int):
            async with services_of(request).db.transaction() as session:
                await admins.record_sign_out(
                    session, admin_id, token if isinstance(token, str) else None, ip=client_ip(request)
                )
        request.session.clear()
        return False  # SQLAdmin then redirects to the login page

    async def authenticate(self, request: Request) -> bool | Response:
        admin_id, token = request.session.get(ADMIN_ID), request.session.get(SESSION_TOKEN)
        if not isinstance(admin_id, int) or not isinstance(token, str):
            request.session.clear()
            return False
        # checked on every request (one indexed lookup that also loads the admin) so a deactivated admin, or a
        # cookie of an ended session (sign-out, revoked, password change, idle or too old), is locked out at once
        async with services_of(request).db.transaction() as session:
            live = await sessions.find_live(
                session, token, lifetime=session_lifetime(self.services.settings), now=utcnow()
            )
        if live is None or live.admin.id != admin_id:
            request.session.clear()
            return False
        admin = request.state.admin = live.admin
        request.state.admin_session_id = live.session_id
        if (
            self.services.settings.admin_require_2fa
            and not admin.has_two_factor
            and not request.url.path.endswith(TWO_FACTOR_SETUP)
        ):
            # this deployment requires two-factor: nothing else until it is set up
            return RedirectResponse(request.url_for("admin:view-two_factor_setup"), status_code=303)
        return True

    async def get_user_id(self, request: Request) -> Any:
        return request.session.get(ADMIN_ID)

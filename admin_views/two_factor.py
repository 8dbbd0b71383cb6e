"""Two-factor pages: the second sign-in step, enrolment (QR drawn here, secret shown for typing, first code to
confirm, backup codes shown once) and the step-up check that money and key actions ask for.

The second step keeps only "this admin passed the password" in the session (not signed in yet) for a few minutes;
codes count against the same per-IP limit as passwords. Step-up freshness is the time of the last code (or
password, for admins without two-factor) entered in this session.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, urlsplit

from sqladmin import Admin, BaseView, expose
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from admin_views.auth import (
    PENDING_AT,
    PENDING_ID,
    STEPPED_UP,
    TWO_FACTOR_SETUP,
    client_ip,
    current_admin_actor,
    rate_limit_message,
    start_session,
    user_agent,
)
from admin_views.transactions import admin_transaction
from payment import ratelimit
from payment.admins import service as admins
from payment.admins import two_factor
from payment.audit import service as audit
from payment.errors import PaymentError
from payment.models import AdminUser
from payment.runtime import Services, services_of
from payment.security import verify_password

PENDING_MAX_AGE = 300
# a confirmation also lets the action it was asked for finish (form, confirm page) even with no general grace period
PASS_FOR = "step_up_pass"
PASS_SECONDS = 120


def mark_stepped_up(request: Request) -> None:
    request.session[STEPPED_UP] = int(time.time())


def step_up_redirect(request: Request, back_to: str) -> Response | None:
    """None when the admin confirmed their identity recently enough; else the way to the step-up page."""
    max_age = services_of(request).settings.admin_step_up_seconds
    last = request.session.get(STEPPED_UP)
    if isinstance(last, int) and time.time() - last < max_age:
        return None
    granted = request.session.get(PASS_FOR)
    if (
        isinstance(granted, list)
        and len(granted) == 2
        and granted[0] == urlsplit(back_to).path
        and isinstance(granted[1], int)
        and time.time() - granted[1] < PASS_SECONDS
    ):
        return None
    url = f"{request.url_for('admin:view-step_up')}?next={quote(back_to, safe='')}"
    return RedirectResponse(url, status_code=303)


def step_up_json(request: Request) -> Response | None:
    """For scripts (copy key): a 403 that says what to do, with the step-up page's address."""
    redirect = step_up_redirect(request, str(request.url_for("admin:list", identity="app")))
    if redirect is None:
        return None
    return JSONResponse(
        {
            "error": "Confirm it is you first (a fresh two-factor code or your password), then copy the key again.",
            "step_up": redirect.headers["location"],
        },
        status_code=403,
        headers={"Cache-Control": "no-store"},
    )


def _pending_admin_id(request: Request) -> int | None:
    admin_id, since = request.session.get(PENDING_ID), request.session.get(PENDING_AT)
    if not isinstance(admin_id, int) or not isinstance(since, int) or time.time() - since > PENDING_MAX_AGE:
        return None
    return admin_id


def _safe_next(raw: str | None, request: Request) -> str:
    """Only a path inside the admin (no open redirect)."""
    fallback = str(request.url_for("admin:index"))
    if not raw:
        return fallback
    parts = urlsplit(raw)
    if parts.path.startswith("/admin/") and (not parts.netloc or parts.netloc == request.url.netloc):
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return fallback


async def _render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> Response:
    templates: Any = request.app.state.admin_templates
    response: Response = await templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


async def second_step(request: Request) -> Response:
    """GET/POST /admin/two-factor: the code after the password."""
    admin_id = _pending_admin_id(request)
    if admin_id is None:
        return RedirectResponse(request.url_for("admin:login"), status_code=302)
    if request.method == "GET":
        return await _render(request, "admin/two_factor.html", {})
    code = str((await request.form()).get("code", ""))
    ip = client_ip(request)
    services = services_of(request)
    async with services.db.transaction() as session:
        verdict = await ratelimit.hit(session, f"admin-login:{ip}", limit=services.settings.login_rate_limit)
        admin = await session.get(AdminUser, admin_id)
        if not verdict.allowed or admin is None or not admin.is_active:
            reason = "rate_limited" if not verdict.allowed else "inactive"
            await admins.record_failed_sign_in(session, admin.email if admin else "", reason=reason, ip=ip)
            error = (
                rate_limit_message(verdict.retry_after_seconds)
                if not verdict.allowed
                else "This account cannot sign in."
            )
            return await _render(
                request, "admin/two_factor.html", {"error": error}, status_code=429 if not verdict.allowed else 400
            )
        method = await two_factor.check_code(session, admin_id, code, secret_key=services.settings.secret_key)
        if method is None:
            await admins.record_failed_sign_in(session, admin.email, reason="bad_code", ip=ip)
        else:
            token = await admins.record_sign_in(session, admin, ip=ip, user_agent=user_agent(request), method=method)
    if method is None:
        return await _render(
            request,
            "admin/two_factor.html",
            {
                "error": "That code is not valid (or was already used). Enter the current code from your app, or "
                "one of your backup codes."
            },
            status_code=400,
        )
    start_session(request, admin_id, token)
    return RedirectResponse(request.url_for("admin:index"), status_code=302)


class TwoFactorView(BaseView):
    """The menu entry opens the last exposed page in name order (SQLAdmin takes a BaseView's identity from it):
    `setup`, after `confirm_identity`."""

    name = "Two-factor sign-in"
    identity = "two_factor_setup"
    icon = "fa-solid fa-key"

    @expose("/step-up", methods=["GET", "POST"], identity="step_up")
    async def confirm_identity(self, request: Request) -> Response:
        admin: AdminUser = request.state.admin
        next_url = _safe_next(request.query_params.get("next"), request)
        context = {"next_url": next_url, "with_code": admin.has_two_factor}
        if request.method == "GET":
            return await _render(request, "admin/step_up.html", context)
        answer = str((await request.form()).get("code" if admin.has_two_factor else "password", ""))
        services = services_of(request)
        ip = client_ip(request)
        async with services.db.transaction() as session:
            verdict = await ratelimit.hit(session, f"admin-login:{ip}", limit=services.settings.login_rate_limit)
            if not verdict.allowed:
                ok = False
            elif admin.has_two_factor:
                ok = (
                    await two_factor.check_code(session, admin.id, answer, secret_key=services.settings.secret_key)
                    is not None
                )
            else:
                ok = verify_password(answer, admin.password_hash)
            await audit.record(
                session,
                actor=current_admin_actor(request),
                action="admin.stepped_up" if ok else "admin.step_up_failed",
                entity_type="admin_user",
                entity_id=admin.id,
                ip=ip,
                details={} if ok else {"reason": "rate_limited" if not verdict.allowed else "bad"},
            )
        if not ok:
            error = (
                rate_limit_message(verdict.retry_after_seconds)
                if not verdict.allowed
                else ("That code is not valid (or was already used)." if admin.has_two_factor else "Wrong password.")
            )
            return await _render(
                request,
                "admin/step_up.html",
                {**context, "error": error},
                status_code=429 if not verdict.allowed else 400,
            )
        mark_stepped_up(request)
        request.session[PASS_FOR] = [urlsplit(next_url).path, int(time.time())]
        return RedirectResponse(next_url, status_code=303)

    @expose(TWO_FACTOR_SETUP, methods=["GET", "POST"], identity="two_factor_setup")
    async def setup(self, request: Request) -> Response:
        services = services_of(request)
        actor = current_admin_actor(request)
        secret_key = services.settings.secret_key
        admin: AdminUser = request.state.admin
        if admin.has_two_factor:
            async with services.db.session() as session:
                left = await two_factor.backup_codes_left(session, admin.id)
            return await _render(request, "admin/two_factor_setup.html", {"enabled": True, "codes_left": left})
        error = None
        if request.method == "POST":
            code = str((await request.form()).get("code", ""))
            try:
                async with admin_transaction(services.db, request.url.path) as session:
                    codes = await two_factor.confirm_enrolment(
                        session, admin.id, code, secret_key=secret_key, actor=actor, ip=client_ip(request)
                    )
            except PaymentError as exc:
                error = exc.message
            else:
                mark_stepped_up(request)
                return await _render(request, "admin/backup_codes.html", {"codes": codes})
        async with services.db.transaction() as session:
            secret = two_factor.pending_secret(admin, secret_key) if error else None
            if secret is None:
                secret = await two_factor.start_enrolment(session, admin.id, secret_key=secret_key, actor=actor)
        uri = two_factor.provisioning_uri(secret, admin.email)
        return await _render(
            request,
            "admin/two_factor_setup.html",
            {"enabled": False, "secret": secret, "qr_svg": two_factor.qr_svg(uri), "error": error},
            status_code=400 if error else 200,
        )


def register(admin: Admin, services: Services) -> None:
    """The enrolment and step-up pages (signed in) and the second sign-in step (not signed in yet)."""
    admin.add_base_view(TwoFactorView)
    admin.admin.state.admin_templates = admin.templates
    admin.admin.router.routes.insert(
        0, Route("/two-factor", endpoint=second_step, name="two_factor", methods=["GET", "POST"])
    )

"""Admin users: list, create, deactivate/reactivate, change password; through payment.admins.service."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape
from sqladmin import expose
from sqladmin.flash import Flash
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from wtforms import Form, SelectField, StringField

from admin_views import admin_sessions
from admin_views.access import guard, role_allows
from admin_views.auth import current_admin_id, current_session_id, session_lifetime
from admin_views.csrf import token_for
from admin_views.formatting import when
from admin_views.service_views import FORM_CONTROL, FORM_SELECT, Actor, ServiceModelView, redirect_to_list, run_service
from admin_views.two_factor import step_up_redirect
from payment.admins import password_links, sessions, two_factor
from payment.admins import service as admins
from payment.admins.permissions import ROLE_HELP, ROLE_LABELS, Permission, Role
from payment.errors import PaymentError
from payment.models import AdminUser, utcnow
from payment.runtime import services_of

PASSWORD_HELP = "8 to 72 bytes (bcrypt's limit; accented and Thai letters take 2-3 bytes each)."


ROLE_CHOICES = [(role.value, f"{ROLE_LABELS[role]}: {ROLE_HELP[role]}") for role in Role]


class AdminCreateForm(Form):  # type: ignore[misc]
    email = StringField("Email", render_kw=FORM_CONTROL)
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.VIEWER.value, render_kw=FORM_SELECT)
    name = StringField(
        "Name",
        render_kw=FORM_CONTROL,
        description="Max 1024 characters. After saving you get a one-time link (valid 48 hours) for "
        "them to choose their own password.",
    )


def actions_cell(admin: AdminUser, _attribute: Any, request: Request) -> Markup:
    toggle_url = request.url_for("admin:view-admin-user-set_active", pk=admin.id)
    password_url = request.url_for("admin:view-admin-user-password", pk=admin.id)
    end_url = request.url_for("admin:view-admin-user-end_sessions", pk=admin.id)
    reset_url = request.url_for("admin:view-admin-user-reset_two_factor", pk=admin.id)
    link_url = request.url_for("admin:view-admin-user-password_link", pk=admin.id)
    badge = (
        '<span class="badge bg-green-lt">active</span>'
        if admin.is_active
        else '<span class="badge bg-secondary-lt">inactive</span>'
    )
    label, value = ("Deactivate", "0") if admin.is_active else ("Reactivate", "1")
    if not role_allows(request, Permission.MANAGE_ADMINS):
        return Markup(badge)  # noqa: S704 (a constant)
    role_url = request.url_for("admin:view-admin-user-role", pk=admin.id)
    options = "".join(
        f'<option value="{role.value}"{" selected" if role == admin.role else ""}>{ROLE_LABELS[role]}</option>'
        for role in Role
    )
    return (
        Markup(  # noqa: S704 (every interpolated value is escaped)
            f'<form method="post" action="{escape(role_url)}" class="d-inline-flex gap-1 me-2">'
            f'<input type="hidden" name="csrf_token" value="{escape(token_for(request))}">'
            f'<select name="role" class="form-select form-select-sm w-auto" aria-label="Role of {escape(admin.email)}">'
            f'{options}</select><button type="submit" class="btn btn-sm btn-outline-primary" '
            f'data-role-admin="{escape(admin.email)}">Change role</button></form>'
        )
        + Markup(  # noqa: S704 (every interpolated value is escaped)
            f'{badge} <form method="post" action="{escape(toggle_url)}" class="d-inline">'
            f'<input type="hidden" name="csrf_token" value="{escape(token_for(request))}">'
            f'<input type="hidden" name="active" value="{value}">'
            f'<button type="submit" class="btn btn-sm btn-outline-secondary" data-admin-email="{escape(admin.email)}">'
            f"{label}</button></form> "
            f'<a class="btn btn-sm btn-outline-primary" href="{escape(password_url)}">Change password</a>'
            f' <form method="post" action="{escape(link_url)}" class="d-inline">'
            f'<input type="hidden" name="csrf_token" value="{escape(token_for(request))}">'
            f'<button type="submit" class="btn btn-sm btn-outline-secondary" '
            f'data-password-link="{escape(admin.email)}">'
            "New set-password link</button></form>"
            + (
                f' <form method="post" action="{escape(reset_url)}" class="d-inline">'
                f'<input type="hidden" name="csrf_token" value="{escape(token_for(request))}">'
                f'<button type="submit" class="btn btn-sm btn-outline-warning" data-reset-2fa="{escape(admin.email)}">'
                "Reset two-factor</button></form>"
                if admin.has_two_factor
                else ""
            )
            + f' <form method="post" action="{escape(end_url)}" class="d-inline">'
            f'<input type="hidden" name="csrf_token" value="{escape(token_for(request))}">'
            f'<button type="submit" class="btn btn-sm btn-outline-danger" title="Sign this admin out in every browser">'
            "Sign out everywhere</button></form>"
        )
    )


def _flash_link(request: Request, email: str, token: str) -> None:
    url = request.url_for("admin:set_password", token=token)
    Flash.success(
        request, f"Send {email} this one-time link to choose their password (valid 48 hours, shown only now): {url}"
    )


class AdminUserView(ServiceModelView, model=AdminUser):
    name = "Admin user"
    name_plural = "Admin users"
    icon = "fa-solid fa-user-shield"
    write_permission = Permission.MANAGE_ADMINS
    can_edit = False
    column_list = [
        AdminUser.id,
        AdminUser.email,
        AdminUser.name,
        AdminUser.role,
        AdminUser.last_login_at,
        AdminUser.totp_enabled_at,
        AdminUser.is_active,
    ]
    column_labels = {
        AdminUser.is_active: "Status",
        AdminUser.last_login_at: "Last sign-in and live sessions",
        AdminUser.totp_enabled_at: "Two-factor",
    }
    column_formatters = {
        AdminUser.is_active: actions_cell,
        AdminUser.last_login_at: admin_sessions.sign_ins_cell,
        AdminUser.totp_enabled_at: lambda admin, _attribute: (
            f"on since {when(admin.totp_enabled_at)}" if admin.has_two_factor else "off"
        ),
    }
    column_details_exclude_list = [
        AdminUser.password_hash,
        AdminUser.totp_secret_encrypted,
        AdminUser.totp_last_step,
        AdminUser.password_token_hash,
        AdminUser.open_sessions,
    ]
    column_default_sort = [(AdminUser.id, False)]

    def list_query(self, request: Request) -> Select[AdminUser]:
        return select(AdminUser).options(selectinload(AdminUser.open_sessions))  # the sessions column, one query

    async def form_class(self, *, editing: bool) -> type[Form]:
        return AdminCreateForm

    async def insert_model(self, request: Request, data: dict[str, Any]) -> Any:
        async def create(session: AsyncSession, who: Actor) -> tuple[AdminUser, str]:
            admin = await admins.create_admin(
                session,
                email=data.get("email") or "",
                name=data.get("name") or "",
                password=None,
                role=data.get("role") or Role.VIEWER,
                actor=who.actor,
                ip=who.ip,
            )
            return admin, await password_links.issue(session, admin.id, actor=who.actor, ip=who.ip)

        try:
            admin, token = await run_service(request, create)
        except PaymentError as exc:
            request.state.error_field = exc.field
            raise
        _flash_link(request, admin.email, token)
        return admin

    @expose("/{pk:int}/password-link", methods=["POST"])
    async def password_link(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])

        async def issue(session: AsyncSession, who: Actor) -> tuple[str, str]:
            admin = await admins.get_admin(session, pk)
            return admin.email, await password_links.issue(session, pk, actor=who.actor, ip=who.ip)

        try:
            email, token = await run_service(request, issue)
        except PaymentError as exc:
            Flash.error(request, exc.message)
        else:
            _flash_link(request, email, token)
        return redirect_to_list(request, self.identity)

    @expose("/{pk:int}/role", methods=["POST"])
    async def role(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])
        role = str((await request.form()).get("role", ""))
        await guard(request, Permission.MANAGE_ADMINS)  # refuse a role before asking it to confirm its identity
        back = str(request.url_for("admin:list", identity=self.identity))
        if (stale := step_up_redirect(request, back)) is not None:
            return stale

        async def change(session: AsyncSession, who: Actor) -> str:
            admin = await admins.set_role(session, pk, role, actor=who.actor, ip=who.ip)
            return f"{admin.email} is now {ROLE_LABELS[Role(admin.role)].lower()}."

        try:
            Flash.success(request, await run_service(request, change))
        except PaymentError as exc:
            Flash.error(request, exc.message)
        return redirect_to_list(request, self.identity)

    @expose("/{pk:int}/reset-two-factor", methods=["POST"])
    async def reset_two_factor(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])

        async def reset(session: AsyncSession, who: Actor) -> str:
            return (await two_factor.reset(session, pk, actor=who.actor, ip=who.ip)).email

        try:
            email = await run_service(request, reset)
        except PaymentError as exc:
            Flash.error(request, exc.message)
        else:
            Flash.success(
                request, f"Two-factor sign-in is off for {email}; they sign in with their password and set it up again."
            )
        return redirect_to_list(request, self.identity)

    @expose("/{pk:int}/set-active", methods=["POST"])
    async def set_active(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])
        active = (await request.form()).get("active") == "1"

        async def change(session: AsyncSession, who: Actor) -> str:
            admin = await admins.set_active(
                session, pk, active, acting_admin_id=who.admin_id, actor=who.actor, ip=who.ip
            )
            return admin.email

        try:
            email = await run_service(request, change)
        except PaymentError as exc:
            Flash.error(request, exc.message)
        else:
            Flash.success(request, f"{email} is now {'active' if active else 'deactivated'}.")
        return redirect_to_list(request, self.identity)

    @expose("/{pk:int}/password", methods=["GET", "POST"])
    async def password(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])
        if pk != current_admin_id(request):
            await guard(request, Permission.MANAGE_ADMINS)
        async with services_of(request).db.session() as session:
            try:
                admin = await admins.get_admin(session, pk)
            except PaymentError as exc:
                return await self.templates.TemplateResponse(
                    request, "sqladmin/error.html", {"status_code": 404, "message": exc.message}, status_code=404
                )
        context: dict[str, Any] = {
            "target": admin,
            "title": "Change password",
            "help": PASSWORD_HELP,
            "model_view": self,
        }
        if request.method == "GET":
            return await self.templates.TemplateResponse(request, "admin/password.html", context)
        form = await request.form()
        password, confirm = str(form.get("password", "")), str(form.get("confirm", ""))
        if password != confirm:
            context["error"] = "The two passwords differ."
            return await self.templates.TemplateResponse(request, "admin/password.html", context, status_code=400)

        # one's own password: every other browser of this admin is signed out, this one stays
        keep = current_session_id(request) if pk == current_admin_id(request) else None

        async def change(session: AsyncSession, who: Actor) -> None:
            await admins.change_password(session, pk, password, actor=who.actor, ip=who.ip, keep_session=keep)

        try:
            await run_service(request, change)
        except PaymentError as exc:
            context["error"] = exc.message
            return await self.templates.TemplateResponse(request, "admin/password.html", context, status_code=400)
        Flash.success(request, f"Password changed for {admin.email}; every session of that admin has ended.")
        return redirect_to_list(request, self.identity)

    @expose("/{pk:int}/end-sessions", methods=["POST"])
    async def end_sessions(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])

        async def end(session: AsyncSession, who: Actor) -> str:
            return (await admins.end_sessions(session, pk, actor=who.actor, ip=who.ip)).email

        back = (await request.form()).get("back")
        try:
            email = await run_service(request, end)
        except PaymentError as exc:
            Flash.error(request, exc.message)
        else:
            Flash.success(request, f"Every session of {email} has ended.")
        return self._back(request, pk, back)

    def _back(self, request: Request, pk: int, back: object) -> Response:
        if back == "page":
            return RedirectResponse(request.url_for("admin:view-admin-user-sessions", pk=pk), status_code=303)
        return redirect_to_list(request, self.identity)

    @expose("/{pk:int}/sessions", methods=["GET"])
    async def sessions(self, request: Request) -> Response:
        """An admin's signed-in sessions: their own account page, or any admin's for a manager of admins."""
        pk = int(request.path_params["pk"])
        if pk != current_admin_id(request):
            await guard(request, Permission.MANAGE_ADMINS)
        services = services_of(request)
        lifetime = session_lifetime(services.settings)

        async def load(session: AsyncSession, who: Actor) -> tuple[AdminUser, list[Any]]:
            admin = await admins.get_admin(session, pk)
            rows = await sessions.live_sessions(session, pk, actor=who.actor, lifetime=lifetime, now=utcnow())
            return admin, rows

        try:
            target, rows = await run_service(request, load)
        except PaymentError as exc:
            return await self.templates.TemplateResponse(
                request, "sqladmin/error.html", {"status_code": 404, "message": exc.message}, status_code=404
            )
        context = {
            "target": target,
            "rows": rows,
            "this_session": current_session_id(request),
            "idle_minutes": services.settings.admin_session_idle_seconds // 60,
            "max_hours": round(services.settings.admin_session_max_age / 3600, 1),
            "factor_labels": admin_sessions.FACTOR_LABELS,
            "revoke_form": admin_sessions.revoke_form,
            "when": when,
            "title": "Signed-in sessions",
        }
        response: Response = await self.templates.TemplateResponse(request, "admin/sessions.html", context)
        response.headers["Cache-Control"] = "no-store"
        return response

    @expose("/{pk:int}/sessions/{sid:int}/revoke", methods=["POST"])
    async def revoke_session(self, request: Request) -> Response:
        """Sign out one session (audited; one's own, or anyone's for a manager of admins)."""
        pk, sid = int(request.path_params["pk"]), int(request.path_params["sid"])
        back = (await request.form()).get("back")

        async def revoke(session: AsyncSession, who: Actor) -> str:
            row = await sessions.revoke(session, sid, actor=who.actor, ip=who.ip)
            return row.user_agent or "unknown browser"

        try:
            browser = await run_service(request, revoke)
        except PaymentError as exc:
            Flash.error(request, exc.message)
        else:
            Flash.success(request, f"That session ({browser}) is signed out.")
        return self._back(request, pk, back)

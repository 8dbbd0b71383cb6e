"""Admin users: list, create, deactivate/reactivate, change password; through payment.admins.service."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape
from sqladmin import expose
from sqladmin.flash import Flash
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from wtforms import Form, PasswordField, StringField

from admin_views.auth import AdminAuth, current_admin_id
from admin_views.csrf import token_for
from admin_views.formatting import when
from admin_views.service_views import FORM_CONTROL, Actor, ServiceModelView, redirect_to_list, run_service
from payment.admins import service as admins
from payment.errors import PaymentError
from payment.models import AdminUser
from payment.runtime import services_of

PASSWORD_HELP = "8 to 72 bytes (bcrypt's limit; accented and Thai letters take 2-3 bytes each)."


class AdminCreateForm(Form):  # type: ignore[misc]
    email = StringField("Email", render_kw=FORM_CONTROL)
    name = StringField("Name", render_kw=FORM_CONTROL, description="Max 1024 characters.")
    password = PasswordField("Password", render_kw=FORM_CONTROL, description=PASSWORD_HELP)


def actions_cell(admin: AdminUser, attribute: Any, request: Request) -> Markup:
    toggle_url = request.url_for("admin:view-admin-user-set_active", pk=admin.id)
    password_url = request.url_for("admin:view-admin-user-password", pk=admin.id)
    end_url = request.url_for("admin:view-admin-user-end_sessions", pk=admin.id)
    badge = '<span class="badge bg-green-lt">active</span>' if admin.is_active else \
        '<span class="badge bg-secondary-lt">inactive</span>'
    label, value = ("Deactivate", "0") if admin.is_active else ("Reactivate", "1")
    return Markup(  # noqa: S704 (every interpolated value is escaped)
        f'{badge} <form method="post" action="{escape(toggle_url)}" class="d-inline">'
        f'<input type="hidden" name="csrf_token" value="{escape(token_for(request))}">'
        f'<input type="hidden" name="active" value="{value}">'
        f'<button type="submit" class="btn btn-sm btn-outline-secondary" data-admin-email="{escape(admin.email)}">'
        f'{label}</button></form> '
        f'<a class="btn btn-sm btn-outline-primary" href="{escape(password_url)}">Change password</a> '
        f'<form method="post" action="{escape(end_url)}" class="d-inline">'
        f'<input type="hidden" name="csrf_token" value="{escape(token_for(request))}">'
        f'<button type="submit" class="btn btn-sm btn-outline-danger" title="Sign this admin out in every browser">'
        f'Sign out everywhere</button></form>')


class AdminUserView(ServiceModelView, model=AdminUser):
    name = "Admin user"
    name_plural = "Admin users"
    icon = "fa-solid fa-user-shield"
    can_edit = False
    column_list = [AdminUser.id, AdminUser.email, AdminUser.name, AdminUser.role, AdminUser.last_login_at,
                   AdminUser.is_active]
    column_labels = {AdminUser.is_active: "Status", AdminUser.last_login_at: "Last sign-in"}
    column_formatters = {AdminUser.is_active: actions_cell,
                         AdminUser.last_login_at: lambda admin, attribute: when(admin.last_login_at)}
    column_details_exclude_list = [AdminUser.password_hash]
    column_default_sort = [(AdminUser.id, False)]

    async def form_class(self, *, editing: bool) -> type[Form]:
        return AdminCreateForm

    async def create_with(self, session: AsyncSession, data: dict[str, Any], who: Actor) -> Any:
        return await admins.create_admin(session, email=data.get("email") or "", name=data.get("name") or "",
                                         password=data.get("password") or "", actor=who.actor, ip=who.ip)

    @expose("/{pk:int}/set-active", methods=["POST"])
    async def set_active(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])
        active = (await request.form()).get("active") == "1"

        async def change(session: AsyncSession, who: Actor) -> str:
            admin = await admins.set_active(session, pk, active, acting_admin_id=who.admin_id, actor=who.actor,
                                            ip=who.ip)
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
        async with services_of(request).db.session() as session:
            try:
                admin = await admins.get_admin(session, pk)
            except PaymentError as exc:
                return await self.templates.TemplateResponse(
                    request, "sqladmin/error.html", {"status_code": 404, "message": exc.message}, status_code=404)
        context: dict[str, Any] = {"target": admin, "title": "Change password", "help": PASSWORD_HELP,
                                   "model_view": self}
        if request.method == "GET":
            return await self.templates.TemplateResponse(request, "admin/password.html", context)
        form = await request.form()
        password, confirm = str(form.get("password", "")), str(form.get("confirm", ""))
        if password != confirm:
            context["error"] = "The two passwords differ."
            return await self.templates.TemplateResponse(request, "admin/password.html", context, status_code=400)

        async def change(session: AsyncSession, who: Actor) -> int:
            return (await admins.change_password(session, pk, password, actor=who.actor, ip=who.ip)).session_generation

        try:
            generation = await run_service(request, change)
        except PaymentError as exc:
            context["error"] = exc.message
            return await self.templates.TemplateResponse(request, "admin/password.html", context, status_code=400)
        if pk == current_admin_id(request):
            AdminAuth.keep_this_session(request, generation)  # every other browser of this admin is signed out
        Flash.success(request, f"Password changed for {admin.email}; every session of that admin has ended.")
        return redirect_to_list(request, self.identity)

    @expose("/{pk:int}/end-sessions", methods=["POST"])
    async def end_sessions(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])

        async def end(session: AsyncSession, who: Actor) -> str:
            return (await admins.end_sessions(session, pk, actor=who.actor, ip=who.ip)).email

        try:
            email = await run_service(request, end)
        except PaymentError as exc:
            Flash.error(request, exc.message)
        else:
            Flash.success(request, f"Every session of {email} has ended.")
        return redirect_to_list(request, self.identity)

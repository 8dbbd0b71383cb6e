"""Apps: list (masked key with Copy and Rotate), create, edit; saves go through payment.apps.service."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape
from sqladmin import expose
from sqladmin.flash import Flash
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from wtforms import BooleanField, Form, IntegerField, SelectField, StringField
from wtforms.validators import Optional

from admin_views.access import guard, role_allows
from admin_views.csrf import token_for
from admin_views.formatting import when
from admin_views.service_views import FORM_CHECK, FORM_CONTROL, Actor, ServiceModelView, redirect_to_list, run_service
from admin_views.two_factor import step_up_json, step_up_redirect
from payment.admins.permissions import Permission
from payment.apps import service as apps
from payment.dunning import cases as dunning
from payment.errors import PaymentError
from payment.models import App
from payment.runtime import services_of
from payment.subscriptions import changes as plan_changes


class AppCreateForm(Form):  # type: ignore[misc]
    slug = StringField(
        "Slug",
        render_kw=FORM_CONTROL,
        description="Stable identifier client apps send, e.g. vega (max 128; a-z, 0-9, hyphens).",
    )
    name = StringField("Name", render_kw=FORM_CONTROL, description="Display name, e.g. Vega (max 1024).")
    return_url = StringField(
        "Return URL",
        render_kw=FORM_CONTROL,
        description="Where users go back to after billing; http:// or https:// only.",
    )
    logo_url = StringField(
        "Logo URL",
        render_kw=FORM_CONTROL,
        description="Optional https:// address of the app's logo, shown on its billing pages.",
    )


class AppEditForm(Form):  # type: ignore[misc]
    name = StringField("Name", render_kw=FORM_CONTROL, description="Display name (max 1024).")
    return_url = StringField("Return URL", render_kw=FORM_CONTROL, description="http:// or https:// only.")
    logo_url = StringField(
        "Logo URL",
        render_kw=FORM_CONTROL,
        description="Optional https:// address of the app's logo, shown on its billing pages.",
    )
    is_active = BooleanField("Active", render_kw=FORM_CHECK, description="An inactive app's API key is refused.")
    grace_days = IntegerField(
        "Grace days",
        render_kw=FORM_CONTROL,
        validators=[Optional()],
        description="Days of full access after a failed renewal while Stripe retries (0-60).",
    )
    after_grace = SelectField(
        "After the grace period",
        choices=[("blocked", "Blocked"), ("free", "Free plan")],
        render_kw=FORM_CONTROL,
        validate_choice=False,  # the service checks it
        description="What the entitlement API says once the grace period is over.",
    )
    allow_downgrade = BooleanField(
        "Offer downgrades",
        render_kw=FORM_CHECK,
        description="Users may change to a cheaper plan; it takes effect at the end of their period.",
    )
    allow_downgrade_from_yearly = BooleanField(
        "Offer downgrades from a yearly plan",
        render_kw=FORM_CHECK,
        description="Yearly subscribers may schedule a cheaper plan before their year ends (needs downgrades).",
    )
    allow_interval_change = BooleanField(
        "Offer monthly ↔ yearly changes",
        render_kw=FORM_CHECK,
        description="Users may switch between monthly and yearly billing (an upgrade applies at once).",
    )


def api_key_cell(app: App, _attribute: Any, request: Request) -> Markup:
    """The key masked, a Copy button (fetches it by POST) and a Rotate form."""
    copy_url = request.url_for("admin:view-app-copy_key", pk=app.id)
    rotate_url = request.url_for("admin:view-app-rotate_key", pk=app.id)
    confirm = f"Rotate the API key of {app.name}? The current key stops working at once."
    if not role_allows(request, Permission.REVEAL_API_KEY):
        return Markup(  # noqa: S704 (escaped)
            f'<code class="api-key-masked" data-app-slug="{escape(app.slug)}">{escape(app.api_key_hint)}</code>'
        )
    return Markup(  # noqa: S704 (every interpolated value is escaped)
        '<span class="d-inline-flex align-items-center gap-2 flex-wrap">'
        f'<code class="api-key-masked" data-app-slug="{escape(app.slug)}">{escape(app.api_key_hint)}</code>'
        f'<button type="button" class="btn btn-sm btn-outline-primary" data-copy-key-url="{escape(copy_url)}" '
        f'data-app-slug="{escape(app.slug)}">Copy key</button>'
        f'<form method="post" action="{escape(rotate_url)}" class="d-inline" data-confirm="{escape(confirm)}">'
        f'<input type="hidden" name="csrf_token" value="{escape(token_for(request))}">'
        f'<button type="submit" class="btn btn-sm btn-outline-danger" data-app-slug="{escape(app.slug)}">'
        "Rotate key</button></form></span>"
    )


class AppView(ServiceModelView, model=App):
    name = "App"
    name_plural = "Apps"
    icon = "fa-solid fa-cubes"
    write_permission = Permission.MANAGE_APPS
    column_list = [App.id, App.slug, App.name, App.return_url, App.api_key_hint, App.is_active, App.created_at]
    column_labels = {
        App.api_key_hint: "API key",
        App.return_url: "Return URL",
        App.is_active: "Active",
        App.created_at: "Created",
    }
    column_formatters = {App.api_key_hint: api_key_cell, App.created_at: lambda app, _attribute: when(app.created_at)}
    column_searchable_list = [App.slug, App.name]
    column_default_sort = [(App.id, False)]
    column_details_exclude_list = [App.api_key_hash, App.api_key_encrypted]

    async def form_class(self, *, editing: bool) -> type[Form]:
        return AppEditForm if editing else AppCreateForm

    async def get_form_data_for_edit(self, obj: Any) -> dict[str, Any]:
        return {
            "name": obj.name,
            "return_url": obj.return_url,
            "logo_url": obj.logo_url or "",
            "is_active": obj.is_active,
            "grace_days": obj.grace_days,
            "after_grace": obj.after_grace,
            "allow_downgrade": obj.allow_downgrade,
            "allow_downgrade_from_yearly": obj.allow_downgrade_from_yearly,
            "allow_interval_change": obj.allow_interval_change,
        }

    async def create_with(self, session: AsyncSession, data: dict[str, Any], who: Actor) -> Any:
        secret_key = self._settings().secret_key
        issued = await apps.create_app(
            session,
            slug=data.get("slug") or "",
            name=data.get("name") or "",
            return_url=data.get("return_url") or "",
            secret_key=secret_key,
            logo_url=data.get("logo_url") or None,
            actor=who.actor,
            ip=who.ip,
        )
        return issued.app

    async def update_with(self, session: AsyncSession, pk: int, data: dict[str, Any], who: Actor) -> Any:
        app = await apps.get_app(session, pk)
        app = await apps.update_app(
            session,
            app,
            name=data.get("name") or "",
            return_url=data.get("return_url") or "",
            is_active=bool(data.get("is_active")),
            logo_url=str(data.get("logo_url") or ""),
            actor=who.actor,
            ip=who.ip,
        )
        grace = data.get("grace_days")
        app = await dunning.set_grace_policy(
            session,
            app,
            grace_days=app.grace_days if grace is None else int(grace),
            after_grace=str(data.get("after_grace") or app.after_grace),
            actor=who.actor,
            ip=who.ip,
        )
        return await plan_changes.set_change_rules(
            session,
            app,
            allow_downgrade=bool(data.get("allow_downgrade")),
            allow_downgrade_from_yearly=bool(data.get("allow_downgrade_from_yearly")),
            allow_interval_change=bool(data.get("allow_interval_change")),
            actor=who.actor,
            ip=who.ip,
        )

    def _settings(self) -> Any:
        return self._admin_ref.admin.state.services.settings

    @expose("/{pk:int}/copy-key", methods=["POST"])
    async def copy_key(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])
        await guard(request, Permission.REVEAL_API_KEY)  # refuse a role before asking it to confirm its identity
        if (stale := step_up_json(request)) is not None:
            return stale
        secret_key = services_of(request).settings.secret_key

        async def copy(session: AsyncSession, who: Actor) -> str:
            app = await apps.get_app(session, pk)
            return await apps.copy_key(session, app, secret_key=secret_key, actor=who.actor, ip=who.ip)

        try:
            key = await run_service(request, copy)
        except PaymentError as exc:
            return JSONResponse(
                {"error": exc.message}, status_code=exc.status_code, headers={"Cache-Control": "no-store"}
            )
        return JSONResponse({"key": key}, headers={"Cache-Control": "no-store"})

    @expose("/{pk:int}/rotate-key", methods=["POST"])
    async def rotate_key(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])
        await guard(request, Permission.REVEAL_API_KEY)
        back = str(request.url_for("admin:list", identity=self.identity))
        if (stale := step_up_redirect(request, back)) is not None:
            return stale
        secret_key = services_of(request).settings.secret_key

        async def rotate(session: AsyncSession, who: Actor) -> str:
            app = await apps.get_app(session, pk)
            await apps.rotate_key(session, app, secret_key=secret_key, actor=who.actor, ip=who.ip)
            return app.name

        try:
            name = await run_service(request, rotate)
        except PaymentError as exc:
            Flash.error(request, exc.message)
        else:
            Flash.success(
                request,
                f"New API key issued for {name}; the old key no longer works. Copy the new key into the client app.",
            )
        return redirect_to_list(request, self.identity)

"""Plans: list, create, edit, deactivate; saves go through payment.plans.service."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape
from sqladmin import expose
from sqladmin.flash import Flash
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from wtforms import BooleanField, Form, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired

from admin_views.access import role_allows
from admin_views.csrf import token_for
from admin_views.formatting import money
from admin_views.service_views import (
    FORM_CHECK,
    FORM_CONTROL,
    FORM_SELECT,
    Actor,
    ServiceModelView,
    redirect_to_list,
    run_service,
)
from payment.admins.permissions import Permission
from payment.errors import PaymentError
from payment.models import App, Plan
from payment.plans import service as plans
from payment.plans.service import PlanInput

ALL_APPS = ""


class PlanForm(Form):  # type: ignore[misc]
    slug = StringField("Slug", render_kw=FORM_CONTROL, description="e.g. pro (max 128; a-z, 0-9, hyphens).")
    name = StringField("Name", render_kw=FORM_CONTROL, description="e.g. Aquoris PRO (max 1024).")
    description = TextAreaField("Description", render_kw={**FORM_CONTROL, "rows": 2})
    price_cents = IntegerField("Price (cents)", validators=[InputRequired("Enter the price in cents (0 for free).")],
                               render_kw=FORM_CONTROL, description="Minor units: 29900 = 299.00. 0 = a free plan.")
    currency = SelectField("Currency", choices=[("thb", "THB"), ("usd", "USD")], render_kw=FORM_SELECT)
    interval = SelectField("Interval", choices=[("month", "Monthly"), ("year", "Yearly")], render_kw=FORM_SELECT)
    stripe_price_id = StringField("Stripe Price ID", render_kw=FORM_CONTROL,
                                  description="price_... from Stripe for a paid plan; leave empty for a free plan.")
    features = TextAreaField("Features", render_kw={**FORM_CONTROL, "rows": 4},
                             description="One line per feature, shown on the pricing page.")
    sort_order = IntegerField("Sort order", default=0, validators=[InputRequired("Enter a sort order (e.g. 0).")],
                              render_kw=FORM_CONTROL, description="Lower comes first on the pricing page.")
    active = BooleanField("Active", default=True, render_kw=FORM_CHECK,
                          description="Inactive plans leave the pricing page; subscribers keep them.")


def price_cell(plan: Plan, _attribute: Any) -> str:
    return "Free" if plan.price_cents == 0 else money(plan.price_cents, plan.currency)


def active_cell(plan: Plan, _attribute: Any, request: Request) -> Markup:
    url = request.url_for("admin:view-plan-set_active", pk=plan.id)
    label, value, style = ("Deactivate", "0", "btn-outline-danger") if plan.active else ("Activate", "1",
                                                                                         "btn-outline-success")
    badge = '<span class="badge bg-green-lt">active</span>' if plan.active else \
        '<span class="badge bg-secondary-lt">inactive</span>'
    if not role_allows(request, Permission.MANAGE_PLANS):
        return Markup(badge)  # noqa: S704 (a constant)
    return Markup(  # noqa: S704 (every interpolated value is escaped)
        f'{badge} <form method="post" action="{escape(url)}" class="d-inline">'
        f'<input type="hidden" name="csrf_token" value="{escape(token_for(request))}">'
        f'<input type="hidden" name="active" value="{value}">'
        f'<button type="submit" class="btn btn-sm {style}" data-plan-slug="{escape(plan.slug)}">{label}</button>'
        '</form>')


def _input(data: dict[str, Any]) -> PlanInput:
    raw_app = data.get("app_id") or ALL_APPS
    features = str(data.get("features") or "").splitlines()
    return PlanInput(slug=str(data.get("slug") or ""), name=str(data.get("name") or ""),
                     price_cents=int(data.get("price_cents") or 0), currency=str(data.get("currency") or ""),
                     interval=str(data.get("interval") or ""), stripe_price_id=data.get("stripe_price_id") or None,
                     description=str(data.get("description") or ""), features=features,
                     sort_order=int(data.get("sort_order") or 0), active=bool(data.get("active")),
                     app_id=int(raw_app) if str(raw_app).isdigit() else None)


class PlanView(ServiceModelView, model=Plan):
    name = "Plan"
    name_plural = "Plans"
    icon = "fa-solid fa-tags"
    write_permission = Permission.MANAGE_PLANS
    column_list = [Plan.id, Plan.slug, Plan.name, Plan.price_cents, Plan.interval, Plan.stripe_price_id, Plan.app,
                   Plan.sort_order, Plan.active]
    column_labels = {Plan.price_cents: "Price", Plan.stripe_price_id: "Stripe Price ID", Plan.app: "App scope",
                     Plan.sort_order: "Sort"}
    column_formatters = {Plan.price_cents: price_cell, Plan.active: active_cell,
                         Plan.app: lambda plan, _attribute: plan.app.name if plan.app else "All apps"}
    column_default_sort = [(Plan.sort_order, False), (Plan.id, False)]
    non_link_related_fields = [Plan.app]

    async def form_class(self, *, editing: bool) -> type[Form]:
        async with self.session_maker() as session:
            rows = (await session.execute(select(App.id, App.name, App.slug).order_by(App.name))).all()
        choices = [(ALL_APPS, "All apps (suite-wide)"), *((str(a.id), f"{a.name} ({a.slug})") for a in rows)]

        class ScopedPlanForm(PlanForm):
            app_id = SelectField("App scope", choices=choices, default=ALL_APPS, render_kw=FORM_SELECT,
                                 description="Suite-wide plans show for every app.")

        return ScopedPlanForm

    async def get_form_data_for_edit(self, obj: Any) -> dict[str, Any]:
        return {"slug": obj.slug, "name": obj.name, "description": obj.description, "price_cents": obj.price_cents,
                "currency": obj.currency, "interval": obj.interval, "stripe_price_id": obj.stripe_price_id or "",
                "features": "\n".join(obj.features or []), "sort_order": obj.sort_order, "active": obj.active,
                "app_id": str(obj.app_id) if obj.app_id else ALL_APPS}

    async def create_with(self, session: AsyncSession, data: dict[str, Any], who: Actor) -> Any:
        return await plans.create_plan(session, _input(data), actor=who.actor, ip=who.ip)

    async def update_with(self, session: AsyncSession, pk: int, data: dict[str, Any], who: Actor) -> Any:
        plan = await plans.get_plan(session, pk)
        return await plans.update_plan(session, plan, _input(data), actor=who.actor, ip=who.ip)

    @expose("/{pk:int}/set-active", methods=["POST"])
    async def set_active(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])
        active = (await request.form()).get("active") == "1"

        async def change(session: AsyncSession, who: Actor) -> str:
            plan = await plans.get_plan(session, pk)
            await plans.set_active(session, plan, active, actor=who.actor, ip=who.ip)
            return plan.name

        try:
            name = await run_service(request, change)
        except PaymentError as exc:
            Flash.error(request, exc.message)
        else:
            Flash.success(request, f"{name} is now {'active' if active else 'inactive'}.")
        return redirect_to_list(request, self.identity)

"""Plans: list, create, edit, deactivate; saves go through payment.plans.service.

A paid plan's Stripe price is looked up (or created, when the admin asks) before the save's transaction opens, and
the plans list warns about plans whose Stripe price no longer matches them ("Check Stripe prices").
"""

from __future__ import annotations

import asyncio
import hashlib
from decimal import Decimal, InvalidOperation
from typing import Any

from markupsafe import Markup, escape
from sqladmin import expose
from sqladmin.flash import Flash
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from wtforms import BooleanField, Form, SelectField, StringField, TextAreaField
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
from payment.errors import PaymentError, ValidationError
from payment.models import App, Plan
from payment.plans import service as plans
from payment.plans import stripe_price
from payment.plans.service import PlanInput
from payment.runtime import services_of

ALL_APPS = ""
# a failed price check is a plan's form error or a list warning, never a long wait for the page
CHECKS_AT_ONCE = 4


class PlanForm(Form):  # type: ignore[misc]
    slug = StringField("Slug", render_kw=FORM_CONTROL, description="e.g. pro (max 128; a-z, 0-9, hyphens).")
    name = StringField("Name", render_kw=FORM_CONTROL, description="e.g. Aquoris PRO (max 1024).")
    description = TextAreaField("Description", render_kw={**FORM_CONTROL, "rows": 2})
    price = StringField(
        "Price",
        validators=[InputRequired("Enter the price, e.g. 299.00 (0 for a free plan).")],
        render_kw={**FORM_CONTROL, "inputmode": "decimal", "autocomplete": "off"},
        description="In baht or dollars with up to 2 decimals, e.g. 299.00. 0 = a free plan.",
    )
    currency = SelectField("Currency", choices=[("thb", "THB"), ("usd", "USD")], render_kw=FORM_SELECT)
    interval = SelectField("Interval", choices=[("month", "Monthly"), ("year", "Yearly")], render_kw=FORM_SELECT)
    stripe_price_id = StringField(
        "Stripe Price ID",
        render_kw=FORM_CONTROL,
        description="price_... from Stripe for a paid plan (checked against Stripe on "
        "save); leave empty for a free plan or to create it below.",
    )
    create_in_stripe = BooleanField(
        "Create the product and price in Stripe",
        default=False,
        render_kw=FORM_CHECK,
        description="For a paid plan with no Stripe Price ID yet: creates a product "
        "named after the plan and a recurring price of this amount, "
        "currency and interval in the Stripe account of this server.",
    )
    features = TextAreaField(
        "Features",
        render_kw={**FORM_CONTROL, "rows": 4},
        description="One line per feature, shown on the pricing page.",
    )
    sort_order = StringField(
        "Sort order",
        default="0",
        validators=[InputRequired("Enter a sort order (e.g. 0).")],
        render_kw={**FORM_CONTROL, "inputmode": "numeric"},
        description="Lower comes first on the pricing page.",
    )
    active = BooleanField(
        "Active",
        default=True,
        render_kw=FORM_CHECK,
        description="Inactive plans leave the pricing page; subscribers keep them.",
    )
    trial_days = StringField(
        "Trial days",
        default="0",
        render_kw={**FORM_CONTROL, "inputmode": "numeric"},
        description="Days free before the first charge (0 = no trial). One trial per customer and per card in "
        "each app.",
    )
    trial_requires_card = BooleanField(
        "Ask for a card to start the trial",
        default=True,
        render_kw=FORM_CHECK,
        description="Unticked: Checkout starts the trial without a card.",
    )
    trial_end_behavior = SelectField(
        "When a trial ends without a card",
        choices=[("cancel", "Cancel the subscription"), ("pause", "Pause it until a card is added")],
        default="cancel",
        render_kw=FORM_SELECT,
    )


def parse_price(text: str) -> int:
    """ "299.00" or "1,299.5" -> minor units (both our currencies have 2 decimals); "0" is a free plan."""
    cleaned = (text or "").strip().replace(",", "").replace(" ", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValidationError("Enter the price as a number, e.g. 299.00 (0 for a free plan).", field="price") from None
    if not value.is_finite():
        raise ValidationError("Enter the price as a number, e.g. 299.00 (0 for a free plan).", field="price")
    minor = value.scaleb(2)
    if minor != minor.to_integral_value():
        raise ValidationError("Prices have at most 2 decimals.", field="price")
    return int(minor)


def _whole(text: Any, label: str, field: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise ValidationError(f"{label} must be a whole number.", field=field) from None


def price_cell(plan: Plan, _attribute: Any) -> str:
    every = "month" if plan.interval == "month" else "year"
    return "Free" if plan.price_cents == 0 else f"{money(plan.price_cents, plan.currency)} / {every}"


def stripe_price_cell(plan: Plan, _attribute: Any) -> Markup:
    if not plan.stripe_price_id:
        return Markup("")
    warning = ""
    if plan.stripe_price_problem:
        warning = (
            f'<div class="text-warning text-wrap plan-price-drift" style="max-width: 14rem" '
            f'data-plan-slug="{escape(plan.slug)}">'
            f"⚠ {escape(plan.stripe_price_problem)}</div>"
        )
    return Markup(  # noqa: S704 (every interpolated value is escaped)
        f'<code class="d-inline-block small" style="max-width: 12rem; word-break: break-all">'
        f"{escape(plan.stripe_price_id)}</code>{warning}"
    )


def active_cell(plan: Plan, _attribute: Any, request: Request) -> Markup:
    url = request.url_for("admin:view-plan-set_active", pk=plan.id)
    label, value, style = (
        ("Deactivate", "0", "btn-outline-danger") if plan.active else ("Activate", "1", "btn-outline-success")
    )
    badge = (
        '<span class="badge bg-green-lt">Active</span>'
        if plan.active
        else '<span class="badge bg-secondary-lt">Inactive</span>'
    )
    question = (
        f"Take “{plan.name}” off the pricing page? Current subscribers keep it; nobody new can choose it."
        if plan.active
        else f"Show “{plan.name}” on the pricing page again, where anyone can choose it?"
    )
    if not role_allows(request, Permission.MANAGE_PLANS):
        return Markup(badge)  # noqa: S704 (a constant)
    return Markup(  # noqa: S704 (every interpolated value is escaped)
        f'{badge} <form method="post" action="{escape(url)}" class="d-inline" data-confirm="{escape(question)}">'
        f'<input type="hidden" name="csrf_token" value="{escape(token_for(request))}">'
        f'<input type="hidden" name="active" value="{value}">'
        f'<button type="submit" class="btn btn-sm {style}" data-plan-slug="{escape(plan.slug)}">{label}</button>'
        "</form>"
    )


def _input(data: dict[str, Any]) -> PlanInput:
    raw_app = data.get("app_id") or ALL_APPS
    features = str(data.get("features") or "").splitlines()
    return PlanInput(
        slug=str(data.get("slug") or ""),
        name=str(data.get("name") or ""),
        price_cents=parse_price(str(data.get("price") or "")),
        currency=str(data.get("currency") or ""),
        interval=str(data.get("interval") or ""),
        stripe_price_id=data.get("stripe_price_id") or None,
        description=str(data.get("description") or ""),
        features=features,
        sort_order=_whole(data.get("sort_order") or 0, "Sort order", "sort_order"),
        active=bool(data.get("active")),
        app_id=int(raw_app) if str(raw_app).isdigit() else None,
        trial_days=_whole(data.get("trial_days") or 0, "Trial days", "trial_days"),
        trial_requires_card=bool(data.get("trial_requires_card")),
        trial_end_behavior=str(data.get("trial_end_behavior") or "cancel"),
    )


def _creation_key(data: PlanInput) -> str:
    """The same form sent twice creates one product and price in Stripe."""
    text = "|".join((data.slug, data.name, str(data.price_cents), data.currency, data.interval))
    return "aquoris-plan-" + hashlib.sha256(text.encode()).hexdigest()[:32]


class PlanView(ServiceModelView, model=Plan):
    name = "Plan"
    name_plural = "Plans"
    icon = "fa-solid fa-tags"
    list_template = "admin/plan_list.html"
    # few enough columns to fit the page beside the sidebar, as the other lists do (no sideways scrolling)
    column_list = [Plan.slug, Plan.name, Plan.price_cents, Plan.stripe_price_id, Plan.app, Plan.sort_order, Plan.active]
    column_labels = {
        Plan.slug: "Slug",
        Plan.name: "Name",
        Plan.price_cents: "Price",
        Plan.interval: "Interval",
        Plan.stripe_price_id: "Stripe Price ID",
        Plan.app: "App scope",
        Plan.sort_order: "Sort",
        Plan.active: "Status",
    }
    write_permission = Permission.MANAGE_PLANS
    column_formatters = {
        Plan.price_cents: price_cell,
        Plan.active: active_cell,
        Plan.stripe_price_id: stripe_price_cell,
        Plan.app: lambda plan, _attribute: plan.app.name if plan.app else "All apps",
    }
    column_default_sort = [(Plan.sort_order, False), (Plan.id, False)]
    non_link_related_fields = [Plan.app]
    # a catalogue is short: one page that scrolls, like the other lists, instead of pages of 10
    page_size = 500
    page_size_options = [500]

    async def form_class(self, *, editing: bool) -> type[Form]:
        async with self.session_maker() as session:
            rows = (await session.execute(select(App.id, App.name, App.slug).order_by(App.name))).all()
        choices = [(ALL_APPS, "All apps (suite-wide)"), *((str(a.id), f"{a.name} ({a.slug})") for a in rows)]

        class ScopedPlanForm(PlanForm):
            app_id = SelectField(
                "App scope",
                choices=choices,
                default=ALL_APPS,
                render_kw=FORM_SELECT,
                description="Suite-wide plans show for every app.",
            )

        return ScopedPlanForm

    async def get_form_data_for_edit(self, obj: Any) -> dict[str, Any]:
        return {
            "slug": obj.slug,
            "name": obj.name,
            "description": obj.description,
            "price": str(Decimal(obj.price_cents).scaleb(-2)),
            "currency": obj.currency,
            "interval": obj.interval,
            "stripe_price_id": obj.stripe_price_id or "",
            "features": "\n".join(obj.features or []),
            "sort_order": str(obj.sort_order),
            "active": obj.active,
            "app_id": str(obj.app_id) if obj.app_id else ALL_APPS,
            "trial_days": str(obj.trial_days),
            "trial_requires_card": obj.trial_requires_card,
            "trial_end_behavior": obj.trial_end_behavior,
        }

    async def _priced(self, request: Request, data: dict[str, Any]) -> PlanInput:
        """The form as a PlanInput whose Stripe price exists and matches (created first when asked); runs before
        the save's transaction because it calls Stripe."""
        gateway = services_of(request).stripe
        raw = _input(data)
        if data.get("create_in_stripe"):
            if raw.stripe_price_id:
                raise ValidationError(
                    "Either enter a Stripe Price ID or tick “Create the product and price in Stripe”, not both.",
                    field="create_in_stripe",
                )
            if raw.price_cents == 0:
                raise ValidationError(
                    "A free plan has no Stripe price; untick “Create the product and price in Stripe”.",
                    field="create_in_stripe",
                )
            # every other field is checked before anything is created in Stripe
            base = PlanInput(**{**raw.__dict__, "stripe_price_id": "price_tocreate"}).validated()
            created = await stripe_price.create_for(gateway, base, idempotency_key=_creation_key(base))
            return PlanInput(**{**raw.__dict__, "stripe_price_id": created}).validated()
        checked = raw.validated()
        await stripe_price.verify(gateway, checked)
        return checked

    async def _save(self, request: Request, data: dict[str, Any], pk: int | None) -> Any:
        try:
            priced = await self._priced(request, data)
        except PaymentError as exc:
            request.state.error_field = "price" if exc.field == "price_cents" else exc.field
            raise

        async def save(session: AsyncSession, who: Actor) -> Plan:
            if pk is None:
                plan = await plans.create_plan(session, priced, actor=who.actor, ip=who.ip)
            else:
                plan = await plans.update_plan(
                    session, await plans.get_plan(session, pk), priced, actor=who.actor, ip=who.ip
                )
            await plans.record_price_check(session, plan.id, plans.price_fingerprint(plan), None)
            return plan

        try:
            plan = await run_service(request, save)
        except PaymentError as exc:
            request.state.error_field = "price" if exc.field == "price_cents" else exc.field
            raise
        Flash.success(
            request,
            f"Plan “{plan.name}” {'created' if pk is None else 'saved'}."
            + (f" Stripe price {plan.stripe_price_id} matches it." if plan.stripe_price_id else ""),
        )
        return plan

    async def insert_model(self, request: Request, data: dict[str, Any]) -> Any:
        return await self._save(request, data, None)

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        if not pk.isdigit():
            raise PaymentError("No such record.")
        return await self._save(request, data, int(pk))

    @expose("/check-prices", methods=["POST"])
    async def check_prices(self, request: Request) -> Response:
        """Compare every paid plan with its Stripe price now and keep the outcome for the list's warnings."""
        services = services_of(request)
        async with services.db.session() as session:
            paid = list(
                (
                    await session.execute(select(Plan).where(Plan.stripe_price_id.is_not(None)).order_by(Plan.id))
                ).scalars()
            )
        limit = asyncio.Semaphore(CHECKS_AT_ONCE)

        async def one(plan: Plan) -> stripe_price.PriceCheck:
            async with limit:
                return await stripe_price.drift(services.stripe, plan.id, plan)

        checks = await asyncio.gather(*(one(plan) for plan in paid))
        fingerprints = {plan.id: plans.price_fingerprint(plan) for plan in paid}

        async def record(session: AsyncSession, who: Actor) -> None:
            for check in checks:
                await plans.record_price_check(session, check.plan_id, fingerprints[check.plan_id], check.problem)

        await run_service(request, record)
        drifted = sum(1 for check in checks if check.problem)
        if drifted:
            Flash.error(
                request,
                f"{drifted} of {len(checks)} paid {'plan' if len(checks) == 1 else 'plans'} "
                "no longer match their Stripe price: see the warnings below.",
            )
        else:
            Flash.success(
                request,
                f"All {len(checks)} paid {'plan matches' if len(checks) == 1 else 'plans match'} their Stripe price.",
            )
        return redirect_to_list(request, self.identity)

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
            Flash.success(
                request,
                f"{name} is now active: the pricing page offers it."
                if active
                else f"{name} is now inactive: the pricing page no longer shows it; its subscribers keep it.",
            )
        return redirect_to_list(request, self.identity)

"""Admin: coupons and their promotion codes (list, create with a first code, deactivate a code). Every change is one
call in payment.promotions.service, which talks to Stripe outside any transaction."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqladmin import Admin, BaseView, expose
from sqladmin.flash import Flash
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from admin_views.access import guard, refuse
from admin_views.auth import client_ip, current_admin_actor
from admin_views.formatting import money
from admin_views.plans import parse_price
from payment.admins.permissions import Permission, PermissionDenied
from payment.apps import service as apps_service
from payment.errors import PaymentError, ValidationError
from payment.models import Coupon
from payment.promotions import service as promotions
from payment.runtime import Services, services_of

FIELDS = (
    "name",
    "percent_off",
    "amount_off",
    "currency",
    "duration",
    "duration_in_months",
    "app_id",
    "redeem_by",
    "max_redemptions",
    "code",
    "code_expires_at",
    "code_max_redemptions",
    "request_key",
)


def _whole(raw: str, label: str, field: str) -> int | None:
    text = raw.strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValidationError(f"{label} must be a whole number.", field=field)
    return int(text)


def _utc(raw: str, field: str) -> datetime | None:
    if not raw.strip():
        return None
    try:
        return datetime.fromisoformat(raw.strip()).replace(tzinfo=UTC)
    except ValueError:
        raise ValidationError("Enter a date and time (UTC).", field=field) from None


def parse_form(values: dict[str, str]) -> promotions.CouponInput:
    """The create form as a CouponInput (the service validates the rules)."""
    amount = values.get("amount_off", "").strip()
    app = values.get("app_id", "").strip()
    return promotions.CouponInput(
        name=values.get("name", ""),
        duration=values.get("duration", ""),
        percent_off=promotions.parse_percent(values.get("percent_off", "")),
        amount_off_cents=parse_price(amount) if amount else None,
        currency=values.get("currency") or None,
        duration_in_months=_whole(values.get("duration_in_months", ""), "Months", "duration_in_months"),
        app_id=int(app) if app.isdigit() else None,
        redeem_by=_utc(values.get("redeem_by", ""), "redeem_by"),
        max_redemptions=_whole(values.get("max_redemptions", ""), "Uses", "max_redemptions"),
        code=values.get("code", ""),
        code_expires_at=_utc(values.get("code_expires_at", ""), "code_expires_at"),
        code_max_redemptions=_whole(values.get("code_max_redemptions", ""), "Uses", "code_max_redemptions"),
    )


def terms(coupon: Coupon) -> str:
    """ "20% off for 3 months", "THB 50.00 off once"."""
    if coupon.percent_off is not None:
        what = f"{coupon.percent_off.normalize():f}% off"
    else:
        what = f"{money(coupon.amount_off_cents or 0, coupon.currency or '')} off"
    when = {"once": "once", "forever": "forever", "repeating": f"for {coupon.duration_in_months} months"}
    return f"{what} {when[coupon.duration]}"


class CouponsView(BaseView):
    name = "Coupons"
    identity = "coupons"
    icon = "fa-solid fa-ticket"

    async def _page(
        self, request: Request, *, values: dict[str, str] | None = None, error: PaymentError | None = None
    ) -> Response:
        async with services_of(request).db.session() as session:
            rows = await promotions.list_coupons(session)
            apps = await apps_service.all_apps(session)
        values = values or {"duration": "once", "currency": "thb"}
        values["request_key"] = secrets.token_hex(16)  # a new key per form shown: a resend of this form is one coupon
        response: Response = await self.templates.TemplateResponse(
            request,
            "coupons/list.html",
            {
                "title": "Coupons",
                "rows": [(c, codes, terms(c)) for c, codes in rows],
                "apps": apps,
                "values": values,
                "error": error.message if error else None,
                "error_field": getattr(error, "field", None),
            },
            status_code=422 if error else 200,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @expose("/coupons", methods=["GET"], identity="coupons")
    async def list_page(self, request: Request) -> Response:
        return await self._page(request)

    @expose("/coupons/add", methods=["POST"], identity="coupon-create")
    async def create(self, request: Request) -> Response:
        await guard(request, Permission.MANAGE_PROMOTIONS)
        form = await request.form()
        values = {k: str(form.get(k) or "") for k in FIELDS}
        services = services_of(request)
        try:
            coupon = await promotions.create_coupon(
                services.db,
                services.stripe,
                parse_form(values),
                request_key=values["request_key"] or secrets.token_hex(16),
                actor=current_admin_actor(request),
                ip=client_ip(request),
            )
        except PermissionDenied as denied:
            await refuse(request, denied)
        except PaymentError as exc:
            return await self._page(request, values=values, error=exc)
        Flash.success(request, f"Coupon “{coupon.name}” created with code {values['code'].strip()}.")
        return RedirectResponse(request.url_for("admin:view-coupons"), status_code=303)

    @expose("/promotion-codes/{pk:int}/deactivate", methods=["POST"], identity="promotion-code-deactivate")
    async def deactivate(self, request: Request) -> Response:
        await guard(request, Permission.MANAGE_PROMOTIONS)
        services = services_of(request)
        try:
            code = await promotions.deactivate_code(
                services.db,
                services.stripe,
                int(request.path_params["pk"]),
                actor=current_admin_actor(request),
                ip=client_ip(request),
            )
        except PermissionDenied as denied:
            await refuse(request, denied)
        except PaymentError as exc:
            Flash.error(request, exc.message)
        else:
            Flash.success(request, f"Code {code.code} no longer works at Checkout.")
        return RedirectResponse(request.url_for("admin:view-coupons"), status_code=303)


def register(admin: Admin, services: Services) -> None:
    admin.add_base_view(CouponsView)
    # SQLAdmin names a base view after the last exposed route it registered; the menu must open the list
    CouponsView.identity = "coupons"

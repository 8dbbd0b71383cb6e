"""Seller profiles (who issues tax documents): list, create, edit; saves go through payment.documents.sellers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from wtforms import BooleanField, FileField, Form, SelectField, StringField, TextAreaField

from admin_views.service_views import FORM_CHECK, FORM_CONTROL, FORM_SELECT, Actor, ServiceModelView
from payment.admins.permissions import Permission
from payment.documents import sellers
from payment.documents.sellers import LOGO_MAX_BYTES, SellerInput
from payment.models import App, SellerProfile

SUITE_WIDE = ""


async def _logo(value: Any) -> bytes | None:
    """The uploaded logo's bytes (at most one byte over the limit is read, so the service can refuse it)."""
    if value is None or not hasattr(value, "read"):
        return None
    try:
        data: bytes = await value.read(LOGO_MAX_BYTES + 1)
    finally:
        await value.close()
    return data or None


class SellerProfileView(ServiceModelView, model=SellerProfile):
    name = "Seller profile"
    name_plural = "Seller profiles"
    identity = "seller-profile"
    icon = "fa-solid fa-building"
    write_permission = Permission.MANAGE_DOCUMENTS
    column_list = [
        SellerProfile.id,
        SellerProfile.legal_name,
        SellerProfile.tax_id,
        SellerProfile.branch_code,
        SellerProfile.app,
        SellerProfile.vat_registered,
        SellerProfile.vat_rate_bp,
        SellerProfile.prices_include_vat,
    ]
    column_labels = {
        SellerProfile.legal_name: "Legal name",
        SellerProfile.tax_id: "Tax id",
        SellerProfile.branch_code: "Branch (00000 = head office)",
        SellerProfile.app: "App",
        SellerProfile.vat_registered: "VAT registered",
        SellerProfile.vat_rate_bp: "VAT rate (bp)",
        SellerProfile.prices_include_vat: "Prices include VAT",
    }
    column_formatters = {SellerProfile.app: lambda s, a: s.app.name if s.app else "All apps (suite-wide)"}
    column_details_exclude_list = [SellerProfile.logo]
    column_default_sort = [(SellerProfile.id, False)]

    async def form_class(self, *, editing: bool) -> type[Form]:
        async with services_of_admin(self).db.session() as session:
            apps = (await session.execute(select(App.id, App.name, App.slug).order_by(App.name))).all()
        choices = [(SUITE_WIDE, "All apps (suite-wide)"), *((str(a.id), f"{a.name} ({a.slug})") for a in apps)]

        class SellerForm(Form):  # type: ignore[misc]
            app_id = SelectField(
                "Issues documents for",
                choices=choices,
                default=SUITE_WIDE,
                render_kw=FORM_SELECT,
                description="An app's own profile wins over the suite-wide one for its plans.",
            )
            legal_name = StringField(
                "Legal name (Thai)", render_kw=FORM_CONTROL, description="As registered, e.g. บริษัท อควอริส จำกัด."
            )
            legal_name_en = StringField("Legal name (English)", render_kw=FORM_CONTROL)
            address = TextAreaField("Address (Thai)", render_kw={**FORM_CONTROL, "rows": 2})
            address_en = TextAreaField("Address (English)", render_kw={**FORM_CONTROL, "rows": 2})
            tax_id = StringField("Tax id", render_kw=FORM_CONTROL, description="13 digits; the last is a check digit.")
            branch_code = StringField(
                "Branch code",
                default="00000",
                render_kw=FORM_CONTROL,
                description="00000 for the head office, else the 5-digit branch number.",
            )
            vat_registered = BooleanField(
                "VAT registered",
                default=True,
                render_kw=FORM_CHECK,
                description="Unticked: documents are receipts without VAT.",
            )
            vat_rate_percent = StringField("VAT rate (%)", default="7", render_kw=FORM_CONTROL)
            prices_include_vat = BooleanField(
                "Prices include VAT", default=True, render_kw=FORM_CHECK, description="Stated on every document."
            )
            logo = FileField("Logo (PNG or JPEG, at most 512 KiB)", render_kw=FORM_CONTROL)
            remove_logo = BooleanField("Remove the current logo", render_kw=FORM_CHECK)

        return SellerForm

    async def get_form_data_for_edit(self, obj: Any) -> dict[str, Any]:
        return {
            "app_id": str(obj.app_id) if obj.app_id else SUITE_WIDE,
            "legal_name": obj.legal_name,
            "legal_name_en": obj.legal_name_en or "",
            "address": obj.address,
            "address_en": obj.address_en or "",
            "tax_id": obj.tax_id,
            "branch_code": obj.branch_code,
            "vat_registered": obj.vat_registered,
            "vat_rate_percent": f"{obj.vat_rate_bp / 100:g}",
            "prices_include_vat": obj.prices_include_vat,
        }

    async def _input(self, data: dict[str, Any]) -> SellerInput:
        raw_app = str(data.get("app_id") or SUITE_WIDE)
        return SellerInput(
            app_id=int(raw_app) if raw_app.isdigit() else None,
            legal_name=str(data.get("legal_name") or ""),
            legal_name_en=str(data.get("legal_name_en") or ""),
            address=str(data.get("address") or ""),
            address_en=str(data.get("address_en") or ""),
            tax_id=str(data.get("tax_id") or ""),
            branch_code=str(data.get("branch_code") or ""),
            vat_registered=bool(data.get("vat_registered")),
            vat_rate_percent=str(data.get("vat_rate_percent") or ""),
            prices_include_vat=bool(data.get("prices_include_vat")),
            logo=await _logo(data.get("logo")),
            remove_logo=bool(data.get("remove_logo")),
        )

    async def create_with(self, session: AsyncSession, data: dict[str, Any], who: Actor) -> Any:
        return await sellers.save_seller(session, await self._input(data), actor=who.actor, ip=who.ip)

    async def update_with(self, session: AsyncSession, pk: int, data: dict[str, Any], who: Actor) -> Any:
        return await sellers.save_seller(session, await self._input(data), seller_id=pk, actor=who.actor, ip=who.ip)


def services_of_admin(view: Any) -> Any:
    return view._admin_ref.admin.state.services

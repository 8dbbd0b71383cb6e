"""Seller profiles: who issues the documents, per app or suite-wide, and which one a given invoice belongs to."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import Permission, require
from payment.audit import service as audit
from payment.documents.rules import DEFAULT_VAT_RATE_BP, check_branch_code, check_tax_id
from payment.errors import Conflict, NotFound, ValidationError
from payment.models import App, Invoice, Plan, SellerProfile, Subscription

LOGO_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
LOGO_MAX_BYTES = 512 * 1024


@dataclass(frozen=True)
class SellerInput:
    legal_name: str
    address: str
    tax_id: str
    app_id: int | None = None
    legal_name_en: str = ""
    address_en: str = ""
    branch_code: str = ""
    vat_registered: bool = True
    vat_rate_percent: str = "7"
    prices_include_vat: bool = True
    logo: bytes | None = None
    """New logo bytes (PNG or JPEG); None keeps the current one."""
    remove_logo: bool = False


def _text(value: str, label: str, field: str, limit: int, *, required: bool) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise ValidationError(f"{label} is required.", field=field)
        return None
    if len(value) > limit:
        raise ValidationError(f"{label} must be at most {limit} characters.", field=field)
    return value


def _rate_bp(raw: str) -> int:
    """A VAT rate in percent ("7", "7.00") as basis points."""
    text = (raw or "").strip().rstrip("%").strip() or "7"
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)):
        raise ValidationError("VAT rate is a percentage such as 7 or 7.00.", field="vat_rate_percent")
    bp = int(whole) * 100 + int((frac or "0").ljust(2, "0"))
    if bp > 10000:
        raise ValidationError("VAT rate must be between 0 and 100 percent.", field="vat_rate_percent")
    return bp


def logo_mime(data: bytes) -> str:
    """The image type of an uploaded logo; only PNG and JPEG up to 512 KiB are accepted."""
    if len(data) > LOGO_MAX_BYTES:
        raise ValidationError("The logo must be at most 512 KiB.", field="logo")
    mime = next((m for magic, m in LOGO_TYPES.items() if data.startswith(magic)), None)
    if mime is None:
        raise ValidationError("The logo must be a PNG or JPEG image.", field="logo")
    try:  # a truncated or corrupt image would break every document's rendering later
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        raise ValidationError("The logo file is damaged; export it again as PNG or JPEG.", field="logo") from None
    return mime


async def get_seller(session: AsyncSession, seller_id: int) -> SellerProfile:
    seller = await session.get(SellerProfile, seller_id)
    if seller is None:
        raise NotFound("This seller profile does not exist.")
    return seller


async def save_seller(
    session: AsyncSession, data: SellerInput, *, seller_id: int | None = None, actor: str, ip: str | None = None
) -> SellerProfile:
    """A seller profile holds a legal name, an address and a valid 13-digit tax id; one per app plus at most one
    suite-wide. Documents already issued keep the details they were issued with."""
    require(actor, Permission.MANAGE_DOCUMENTS)
    legal_name = _text(data.legal_name, "Legal name", "legal_name", 1024, required=True)
    address = _text(data.address, "Address", "address", 2000, required=True)
    tax_id = check_tax_id(data.tax_id)
    branch_code = check_branch_code(data.branch_code)
    rate_bp = _rate_bp(data.vat_rate_percent) if data.vat_registered else DEFAULT_VAT_RATE_BP
    if data.app_id is not None and await session.get(App, data.app_id) is None:
        raise ValidationError("Choose an existing app, or none for a suite-wide seller.", field="app_id")
    clash = select(SellerProfile.id).where(
        SellerProfile.app_id.is_(None) if data.app_id is None else SellerProfile.app_id == data.app_id
    )
    if seller_id is not None:
        clash = clash.where(SellerProfile.id != seller_id)
    if (await session.execute(clash)).first() is not None:
        raise Conflict("That app (or the suite) already has a seller profile; edit that one.", field="app_id")
    seller = SellerProfile() if seller_id is None else await get_seller(session, seller_id)
    seller.app_id = data.app_id
    seller.legal_name = legal_name or ""
    seller.legal_name_en = _text(data.legal_name_en, "English name", "legal_name_en", 1024, required=False)
    seller.address = address or ""
    seller.address_en = _text(data.address_en, "English address", "address_en", 2000, required=False)
    seller.tax_id = tax_id
    seller.branch_code = branch_code
    seller.vat_registered = data.vat_registered
    seller.vat_rate_bp = rate_bp
    seller.prices_include_vat = data.prices_include_vat
    if data.logo:
        seller.logo_mime = logo_mime(data.logo)
        seller.logo = data.logo
    elif data.remove_logo:
        seller.logo, seller.logo_mime = None, None
    if seller_id is None:
        session.add(seller)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="seller.created" if seller_id is None else "seller.updated",
        entity_type="seller_profile",
        entity_id=seller.id,
        ip=ip,
        details={
            "legal_name": seller.legal_name,
            "tax_id": seller.tax_id,
            "app_id": seller.app_id,
            "branch_code": seller.branch_code,
            "vat_rate_bp": seller.vat_rate_bp,
        },
    )
    return seller


async def seller_for_invoice(session: AsyncSession, invoice: Invoice) -> SellerProfile | None:
    """The profile of the invoice's plan's app when it has one, else the suite-wide profile, else None."""
    app_id = None
    if invoice.subscription_id is not None:
        app_id = (
            await session.execute(
                select(Plan.app_id)
                .join(Subscription, Subscription.plan_id == Plan.id)
                .where(Subscription.id == invoice.subscription_id)
            )
        ).scalar_one_or_none()
    if app_id is not None:
        own = (await session.execute(select(SellerProfile).where(SellerProfile.app_id == app_id))).scalar_one_or_none()
        if own is not None:
            return own
    return (await session.execute(select(SellerProfile).where(SellerProfile.app_id.is_(None)))).scalar_one_or_none()


def snapshot(seller: SellerProfile) -> dict[str, Any]:
    """What a document prints of its seller, frozen at issue time (the profile may change later)."""
    logo = None
    if seller.logo and seller.logo_mime:
        logo = f"data:{seller.logo_mime};base64,{base64.b64encode(seller.logo).decode('ascii')}"
    return {
        "legal_name": seller.legal_name,
        "legal_name_en": seller.legal_name_en,
        "address": seller.address,
        "address_en": seller.address_en,
        "tax_id": seller.tax_id,
        "branch_code": seller.branch_code,
        "vat_registered": seller.vat_registered,
        "prices_include_vat": seller.prices_include_vat,
        "logo": logo,
    }

"""Coupons and their promotion codes: created by admins, mirrored at Stripe, deactivated.

Stripe is called outside any database transaction: the coupon and its first code are created at Stripe first
(idempotently, keyed by the admin's form), then stored with the audit row in one transaction. If that transaction
fails, the Stripe promotion code is deactivated again, so no code works at Checkout that admins cannot see.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from payment.admins.permissions import Permission, require
from payment.audit import service as audit
from payment.db import Database
from payment.errors import Conflict, NotFound, PaymentError, ValidationError
from payment.models import App, Coupon, PromotionCode, utcnow
from payment.models.base import CURRENCIES
from payment.models.promotions import COUPON_DURATIONS
from payment.stripe.gateway import StripeGateway

log = logging.getLogger(__name__)

CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_AMOUNT_CENTS = 100_000_000_000


def parse_percent(raw: str) -> Decimal | None:
    """ "20" or "12.5" -> Decimal; "" -> None; anything else a field error."""
    text = raw.strip().rstrip("%").strip()
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValidationError("Enter the percentage as a number, e.g. 20 or 12.5.", field="percent_off") from None
    if value.as_tuple().exponent < -2 or not 0 < value <= 100:  # type: ignore[operator]
        raise ValidationError(
            "A percentage is more than 0 and at most 100, with up to 2 decimals.", field="percent_off"
        )
    return value


@dataclass(frozen=True)
class CouponInput:
    name: str
    duration: str
    percent_off: Decimal | None = None
    amount_off_cents: int | None = None
    currency: str | None = None
    duration_in_months: int | None = None
    app_id: int | None = None
    redeem_by: datetime | None = None
    max_redemptions: int | None = None
    code: str = ""
    code_expires_at: datetime | None = None
    code_max_redemptions: int | None = None

    def validated(self, now: datetime) -> CouponInput:
        """The same input, normalised, or a ValidationError naming the first bad field."""
        name = self.name.strip()
        if not 1 <= len(name) <= 40:
            raise ValidationError("Give the coupon a name of 1 to 40 characters.", field="name")
        if (self.percent_off is None) == (self.amount_off_cents is None):
            raise ValidationError("Enter either a percentage or an amount off, not both.", field="percent_off")
        currency = (self.currency or "").strip().lower() or None
        if self.amount_off_cents is not None:
            if not 0 < self.amount_off_cents <= MAX_AMOUNT_CENTS:
                raise ValidationError("The amount off must be more than 0.", field="amount_off")
            if currency not in CURRENCIES:
                raise ValidationError("An amount off needs its currency: THB or USD.", field="currency")
        else:
            currency = None
        if self.duration not in COUPON_DURATIONS:
            raise ValidationError("Choose once, repeating or forever.", field="duration")
        months = self.duration_in_months if self.duration == "repeating" else None
        if self.duration == "repeating" and (months is None or not 1 <= months <= 36):
            raise ValidationError("A repeating coupon lasts 1 to 36 months.", field="duration_in_months")
        for when, field_name in ((self.redeem_by, "redeem_by"), (self.code_expires_at, "code_expires_at")):
            if when is not None and when <= now:
                raise ValidationError("That date has passed; choose a later one.", field=field_name)
        for limit, field_name in (
            (self.max_redemptions, "max_redemptions"),
            (self.code_max_redemptions, "code_max_redemptions"),
        ):
            if limit is not None and limit < 1:
                raise ValidationError("A limit of uses is at least 1 (leave it empty for none).", field=field_name)
        code = self.code.strip()
        if not CODE_RE.match(code):
            raise ValidationError(
                "The code is 1 to 64 letters, digits, dashes or underscores, e.g. SPRING20.", field="code"
            )
        return replace(self, name=name, currency=currency, duration_in_months=months, code=code)


def _coupon_params(data: CouponInput, request_key: str) -> dict[str, object]:
    params: dict[str, object] = {
        "name": data.name,
        "duration": data.duration,
        "metadata": {"app_id": str(data.app_id or ""), "aquoris_request": request_key},
    }
    if data.percent_off is not None:
        params["percent_off"] = str(data.percent_off)
    else:
        params.update(amount_off=data.amount_off_cents, currency=data.currency)
    if data.duration_in_months is not None:
        params["duration_in_months"] = data.duration_in_months
    if data.redeem_by is not None:
        params["redeem_by"] = int(data.redeem_by.timestamp())
    if data.max_redemptions is not None:
        params["max_redemptions"] = data.max_redemptions
    return params


async def _check_new(session: AsyncSession, data: CouponInput) -> None:
    if data.app_id is not None and await session.get(App, data.app_id) is None:
        raise NotFound("No such app.", field="app_id")
    taken = await session.scalar(select(PromotionCode.id).where(func.lower(PromotionCode.code) == data.code.lower()))
    if taken is not None:
        raise Conflict(f"The code {data.code} is already used (codes are unique, whatever their case).", field="code")


async def create_coupon(
    db: Database, gateway: StripeGateway, data: CouponInput, *, request_key: str, actor: str, ip: str | None = None
) -> Coupon:
    """Create a coupon (percent or amount, once / repeating / forever, for one app or all) and its promotion code,
    at Stripe first and then here, audited; the same form sent twice creates them once."""
    require(actor, Permission.MANAGE_PROMOTIONS)
    data = data.validated(utcnow())
    async with db.session() as session:
        await _check_new(session, data)
    coupon = await gateway.create_coupon(
        _coupon_params(data, request_key), idempotency_key=f"aquoris-coupon-{request_key}"
    )
    promo_params: dict[str, object] = {
        "promotion": {"type": "coupon", "coupon": str(coupon["id"])},
        "code": data.code,
        "metadata": {"app_id": str(data.app_id or "")},
    }
    if data.code_expires_at is not None:
        promo_params["expires_at"] = int(data.code_expires_at.timestamp())
    if data.code_max_redemptions is not None:
        promo_params["max_redemptions"] = data.code_max_redemptions
    promo = await gateway.create_promotion_code(promo_params, idempotency_key=f"aquoris-promo-{request_key}")
    try:
        async with db.transaction() as session:
            await _check_new(session, data)
            row = Coupon(
                name=data.name,
                app_id=data.app_id,
                percent_off=data.percent_off,
                amount_off_cents=data.amount_off_cents,
                currency=data.currency,
                duration=data.duration,
                duration_in_months=data.duration_in_months,
                redeem_by=data.redeem_by,
                max_redemptions=data.max_redemptions,
                stripe_coupon_id=str(coupon["id"]),
                created_by=str(actor),
            )
            session.add(row)
            await session.flush()
            session.add(
                PromotionCode(
                    coupon_id=row.id,
                    code=data.code,
                    stripe_promotion_code_id=str(promo["id"]),
                    expires_at=data.code_expires_at,
                    max_redemptions=data.code_max_redemptions,
                )
            )
            await session.flush()
            await audit.record(
                session,
                actor=actor,
                action="coupon.created",
                entity_type="coupon",
                entity_id=row.id,
                details={
                    "name": data.name,
                    "code": data.code,
                    "percent_off": str(data.percent_off) if data.percent_off is not None else None,
                    "amount_off_cents": data.amount_off_cents,
                    "currency": data.currency,
                    "duration": data.duration,
                    "duration_in_months": data.duration_in_months,
                    "app_id": data.app_id,
                    "stripe_coupon_id": row.stripe_coupon_id,
                },
                ip=ip,
            )
            return row
    except Exception:
        # stored nothing: the code must not work at Checkout either
        try:
            await gateway.update_promotion_code(str(promo["id"]), {"active": False})
        except PaymentError:
            log.warning("could not deactivate Stripe promotion code %s after a failed save", promo["id"])
        raise


async def deactivate_code(
    db: Database, gateway: StripeGateway, code_id: int, *, actor: str, ip: str | None = None
) -> PromotionCode:
    """Stop a promotion code working at Checkout (at Stripe first, then here, audited); discounts already given
    keep running their course."""
    require(actor, Permission.MANAGE_PROMOTIONS)
    async with db.session() as session:
        code = await session.get(PromotionCode, code_id)
        if code is None:
            raise NotFound("No such promotion code.")
        stripe_id = code.stripe_promotion_code_id
    if stripe_id:
        await gateway.update_promotion_code(stripe_id, {"active": False})
    async with db.transaction() as session:
        code = await session.get_one(PromotionCode, code_id, with_for_update=True)
        if code.active:
            code.active = False
            await audit.record(
                session,
                actor=actor,
                action="promotion_code.deactivated",
                entity_type="promotion_code",
                entity_id=code.id,
                details={"code": code.code, "coupon_id": code.coupon_id},
                ip=ip,
            )
        return code


async def active_codes_for(session: AsyncSession, app: App) -> int:
    """How many promotion codes an end user of this app could use now (Checkout offers a code field when any)."""
    now = utcnow()
    found = await session.scalar(
        select(func.count())
        .select_from(PromotionCode)
        .join(Coupon, Coupon.id == PromotionCode.coupon_id)
        .where(
            PromotionCode.active,
            Coupon.active,
            (Coupon.app_id.is_(None)) | (Coupon.app_id == app.id),
            (PromotionCode.expires_at.is_(None)) | (PromotionCode.expires_at > now),
            (Coupon.redeem_by.is_(None)) | (Coupon.redeem_by > now),
        )
    )
    return int(found or 0)


async def list_coupons(session: AsyncSession) -> list[tuple[Coupon, list[PromotionCode]]]:
    """Every coupon, newest first, with its codes."""
    coupons = (
        await session.scalars(select(Coupon).options(joinedload(Coupon.app)).order_by(Coupon.id.desc()).limit(500))
    ).all()
    codes = (
        await session.scalars(
            select(PromotionCode).where(PromotionCode.coupon_id.in_([c.id for c in coupons])).order_by(PromotionCode.id)
        )
    ).all()
    return [(c, [p for p in codes if p.coupon_id == c.id]) for c in coupons]

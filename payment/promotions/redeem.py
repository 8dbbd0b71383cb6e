"""A promotion code typed on our pricing page, checked before Stripe Checkout opens.

Checkout then carries the code as `discounts=[{"promotion_code": ...}]` (never `allow_promotion_codes`: Stripe
refuses both together), so a code that Checkout would refuse, or one of another app that Stripe would accept, is
stopped here with a reason the page can say in the user's language. Our rows say which app a code belongs to, its
currency and dates; how often it was redeemed lives at Stripe and is read after the database session has closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from payment.billing.catalog import plans_for_app
from payment.db import Database
from payment.errors import NotFound, ValidationError
from payment.models import App, Coupon, Invoice, PromotionCode, utcnow
from payment.promotions.service import CODE_RE
from payment.stripe.gateway import StripeGateway

# invoice statuses that mean the customer has paid us before (Stripe's "first-time transaction" test)
PAID_STATUSES = ("paid", "refunded", "partially_refunded")

REASONS = {
    "promo_unknown": "This promotion code does not exist.",
    "promo_other_app": "This promotion code is for another app.",
    "promo_inactive": "This promotion code is no longer active.",
    "promo_expired": "This promotion code has expired.",
    "promo_exhausted": "This promotion code has been used the maximum number of times.",
    "promo_currency": "This promotion code is for prices in another currency.",
    "promo_first_time": "This promotion code is for first-time customers only.",
    "promo_minimum": "This plan's price is below the minimum this promotion code needs.",
}


class PromotionCodeRefused(ValidationError):
    """A promotion code that cannot be used for this plan now; `code` is one of REASONS."""

    def __init__(self, reason: str) -> None:
        super().__init__(REASONS[reason], code=reason, field="promotion_code")


@dataclass(frozen=True)
class AcceptedCode:
    code: str
    stripe_promotion_code_id: str


@dataclass(frozen=True)
class _Local:
    """What our rows say: the code's Stripe id, the plan's price, and whether the customer has paid before."""

    stripe_id: str
    plan_amount: int
    plan_currency: str
    has_paid: bool


def _at(ts: Any) -> datetime | None:
    return datetime.fromtimestamp(int(ts), UTC) if ts is not None else None


async def _check_local(
    db: Database, *, app_id: int, customer_id: int, plan_slug: str, code: str, now: datetime
) -> _Local:
    async with db.session() as session:
        app = await session.get_one(App, app_id)
        plan = next((p for p in await plans_for_app(session, app) if p.slug == plan_slug), None)
        if plan is None or plan.is_free or not plan.stripe_price_id:
            raise NotFound("This plan is not available.", code="plan_not_found")
        row = (
            await session.execute(
                select(PromotionCode, Coupon)
                .join(Coupon, Coupon.id == PromotionCode.coupon_id)
                .where(func.lower(PromotionCode.code) == code.lower())
            )
        ).first()
        if row is None:
            raise PromotionCodeRefused("promo_unknown")
        promo, coupon = row
        stripe_id = promo.stripe_promotion_code_id
        if not stripe_id:
            raise PromotionCodeRefused("promo_unknown")
        if coupon.app_id is not None and coupon.app_id != app_id:
            raise PromotionCodeRefused("promo_other_app")
        if not promo.active or not coupon.active:
            raise PromotionCodeRefused("promo_inactive")
        for end in (promo.expires_at, coupon.redeem_by):
            if end is not None and end <= now:
                raise PromotionCodeRefused("promo_expired")
        if coupon.currency is not None and coupon.currency != plan.currency:
            raise PromotionCodeRefused("promo_currency")
        paid = await session.scalar(
            select(Invoice.id)
            .where(Invoice.customer_id == customer_id, Invoice.status.in_(PAID_STATUSES), Invoice.amount_cents > 0)
            .limit(1)
        )
        return _Local(
            stripe_id=stripe_id,
            plan_amount=plan.price_cents,
            plan_currency=plan.currency,
            has_paid=paid is not None,
        )


def _check_at_stripe(found: dict[str, Any], local: _Local, stripe_customer_id: str | None, now: datetime) -> None:
    """Stripe's own state of the code: deactivated there, expired, redemption limits, restrictions."""
    promotion = found.get("promotion") or {}
    coupon = promotion.get("coupon") if isinstance(promotion, dict) else None
    if not found.get("active") or not isinstance(coupon, dict):
        raise PromotionCodeRefused("promo_inactive")
    expires = _at(found.get("expires_at"))
    redeem_by = _at(coupon.get("redeem_by"))
    if (expires is not None and expires <= now) or (redeem_by is not None and redeem_by <= now):
        raise PromotionCodeRefused("promo_expired")
    limit = found.get("max_redemptions")
    if limit is not None and int(found.get("times_redeemed") or 0) >= int(limit):
        raise PromotionCodeRefused("promo_exhausted")
    coupon_limit = coupon.get("max_redemptions")
    if coupon_limit is not None and int(coupon.get("times_redeemed") or 0) >= int(coupon_limit):
        raise PromotionCodeRefused("promo_exhausted")
    if not coupon.get("valid", True):
        raise PromotionCodeRefused("promo_inactive")
    if found.get("customer") and found["customer"] != stripe_customer_id:
        raise PromotionCodeRefused("promo_unknown")  # a code made for one customer is not there for anyone else
    restrictions = found.get("restrictions") or {}
    if restrictions.get("first_time_transaction") and local.has_paid:
        raise PromotionCodeRefused("promo_first_time")
    minimum = restrictions.get("minimum_amount")
    minimum_currency = restrictions.get("minimum_amount_currency")
    if minimum is not None and minimum_currency == local.plan_currency and local.plan_amount < int(minimum):
        raise PromotionCodeRefused("promo_minimum")


async def check_code(
    db: Database,
    gateway: StripeGateway,
    *,
    app_id: int,
    customer_id: int,
    stripe_customer_id: str | None,
    plan_slug: str,
    code: str,
    now: datetime | None = None,
) -> AcceptedCode:
    """A promotion code may discount this plan's Checkout when it exists, is this app's or suite-wide, is active and
    unexpired, fits the plan's currency, has redemptions left at Stripe and its restrictions admit the customer."""
    now = now or utcnow()
    code = code.strip()
    if not CODE_RE.match(code):
        raise PromotionCodeRefused("promo_unknown")
    local = await _check_local(db, app_id=app_id, customer_id=customer_id, plan_slug=plan_slug, code=code, now=now)
    # the redemption count lives at Stripe: read it with no database session open
    found = await gateway.retrieve_promotion_code(local.stripe_id)
    _check_at_stripe(found, local, stripe_customer_id, now)
    return AcceptedCode(code=str(found.get("code") or code), stripe_promotion_code_id=local.stripe_id)

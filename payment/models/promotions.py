"""Trials granted, and the coupons and promotion codes admins sell with."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Identity, Index, Numeric, String, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from payment.models.accounts import App
from payment.models.base import CURRENCIES, Base, in_list

TRIAL_END_BEHAVIORS = ("cancel", "pause")
TRIAL_REFUSALS = ("customer_had_trial", "card_had_trial")
COUPON_DURATIONS = ("once", "repeating", "forever")


class TrialGrant(Base):
    """A trial a customer started on a plan of an app, with the fingerprint of the card it started with (known
    once Checkout completes). A trial the rules refuse after the fact is ended at Stripe (`refused_reason`, then
    `ended_early_at`); it still counts, so the refusal cannot be dodged by trying again."""

    __tablename__ = "trial_grants"
    __table_args__ = (
        CheckConstraint(
            "refused_reason IS NULL OR " + in_list("refused_reason", TRIAL_REFUSALS), name="refused_reason"
        ),
        Index("ix_trial_grants_customer_app", "customer_id", "app_id"),
        Index("ix_trial_grants_card_fingerprint", "card_fingerprint"),
        Index(
            "ix_trial_grants_to_end",
            "id",
            postgresql_where=text("refused_reason IS NOT NULL AND ended_early_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="RESTRICT"))
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"), unique=True)
    card_fingerprint: Mapped[str | None] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(server_default=func.now())
    refused_reason: Mapped[str | None] = mapped_column(String(32))
    ended_early_at: Mapped[datetime | None]
    end_error: Mapped[str | None] = mapped_column(String(1000))


class Coupon(Base):
    """A discount admins offer: a percentage or an amount in one currency, once / for some months / forever,
    for one app or all; mirrored at Stripe as a coupon."""

    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint("char_length(name) BETWEEN 1 AND 40", name="name_length"),
        CheckConstraint(
            "(percent_off IS NOT NULL AND percent_off > 0 AND percent_off <= 100 AND amount_off_cents IS NULL "
            "AND currency IS NULL) OR (percent_off IS NULL AND amount_off_cents > 0 AND currency IS NOT NULL)",
            name="percent_or_amount",
        ),
        CheckConstraint("currency IS NULL OR " + in_list("currency", CURRENCIES), name="currency"),
        CheckConstraint(in_list("duration", COUPON_DURATIONS), name="duration"),
        CheckConstraint(
            "(duration = 'repeating') = (duration_in_months IS NOT NULL)", name="months_only_when_repeating"
        ),
        CheckConstraint("duration_in_months IS NULL OR duration_in_months BETWEEN 1 AND 36", name="months_range"),
        CheckConstraint("max_redemptions IS NULL OR max_redemptions > 0", name="max_redemptions_positive"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    app_id: Mapped[int | None] = mapped_column(ForeignKey("apps.id", ondelete="RESTRICT"), index=True)
    percent_off: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    amount_off_cents: Mapped[int | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    duration: Mapped[str] = mapped_column(String(16))
    duration_in_months: Mapped[int | None]
    redeem_by: Mapped[datetime | None]
    max_redemptions: Mapped[int | None]
    stripe_coupon_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    active: Mapped[bool] = mapped_column(default=True, server_default="true")
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    app: Mapped[App | None] = relationship()

    def __str__(self) -> str:
        return self.name


class PromotionCode(Base):
    """A code customers type at Checkout for a coupon; mirrored at Stripe as a promotion code."""

    __tablename__ = "promotion_codes"
    __table_args__ = (
        CheckConstraint("code ~ '^[A-Za-z0-9_-]{1,64}$'", name="code_format"),
        CheckConstraint("max_redemptions IS NULL OR max_redemptions > 0", name="max_redemptions_positive"),
        UniqueConstraint("stripe_promotion_code_id", name="uq_promotion_codes_stripe_promotion_code_id"),
        Index("uq_promotion_codes_code_lower", text("lower(code)"), unique=True),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id", ondelete="RESTRICT"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    stripe_promotion_code_id: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True, server_default="true")
    expires_at: Mapped[datetime | None]
    max_redemptions: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    coupon: Mapped[Coupon] = relationship()

    def __str__(self) -> str:
        return self.code

"""What is sold: plans, suite-wide or scoped to one app."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Identity, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from payment.models.accounts import SLUG_PATTERN, App
from payment.models.base import CURRENCIES, INTERVALS, Base, Timestamps, in_list


class Plan(Timestamps, Base):
    __tablename__ = "plans"
    __table_args__ = (
        CheckConstraint(f"slug ~ '{SLUG_PATTERN}'", name="slug_format"),
        CheckConstraint("char_length(slug) <= 128", name="slug_length"),
        CheckConstraint("char_length(name) BETWEEN 1 AND 1024", name="name_length"),
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        CheckConstraint(in_list("currency", CURRENCIES), name="currency"),
        CheckConstraint(in_list("interval", INTERVALS), name="interval"),
        CheckConstraint(
            "(price_cents = 0 AND stripe_price_id IS NULL) OR (price_cents > 0 AND stripe_price_id IS NOT NULL)",
            name="stripe_price_for_paid_only",
        ),
        CheckConstraint(
            "stripe_price_id IS NULL OR stripe_price_id ~ '^price_[A-Za-z0-9_]+$'", name="stripe_price_id_format"
        ),
        CheckConstraint("jsonb_typeof(features) = 'array'", name="features_array"),
        Index("ix_plans_listing", "active", "sort_order", "id"),
        CheckConstraint("trial_days BETWEEN 0 AND 365", name="trial_days_range"),
        CheckConstraint("trial_end_behavior IN ('cancel', 'pause')", name="trial_end_behavior"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    slug: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(1024))
    description: Mapped[str] = mapped_column(String(4000), default="", server_default="")
    price_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(8), default="month", server_default="month")
    stripe_price_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    active: Mapped[bool] = mapped_column(default=True, server_default="true")
    sort_order: Mapped[int] = mapped_column(default=0, server_default="0")
    features: Mapped[list[str]] = mapped_column(default=list, server_default="[]")
    app_id: Mapped[int | None] = mapped_column(ForeignKey("apps.id", ondelete="RESTRICT"), index=True)
    # the last comparison of the plan with its Stripe price: why they differ (NULL: they match, or never checked)
    stripe_price_problem: Mapped[str | None] = mapped_column(String(2000))
    stripe_price_checked_at: Mapped[datetime | None]
    # a trial: how many days free (0: none), whether Checkout asks for a card, and what happens at its end
    # when no card was added (cancel or pause; with a card the trial converts to a paid subscription)
    trial_days: Mapped[int] = mapped_column(default=0, server_default="0")
    trial_requires_card: Mapped[bool] = mapped_column(default=True, server_default="true")
    trial_end_behavior: Mapped[str] = mapped_column(String(16), default="cancel", server_default="cancel")

    app: Mapped[App | None] = relationship()

    @property
    def is_free(self) -> bool:
        return self.price_cents == 0

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

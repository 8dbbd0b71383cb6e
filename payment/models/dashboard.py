"""Running totals for the dashboard, kept exact by triggers (migration 0002e) so its cards read a few rows.

The triggers add each row's contribution on insert and take it back on update and delete, in the writing
transaction; `SELECT dashboard_rebuild()` recomputes all four tables from the source tables.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from payment.models.base import Base


class DashboardSubscriptionTotal(Base):
    """Subscriptions now, per status, source and plan (manual ones also per paid currency and period length)."""

    __tablename__ = "dashboard_subscription_totals"

    status: Mapped[str] = mapped_column(String(24), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    plan_id: Mapped[int] = mapped_column(primary_key=True)
    paid_currency: Mapped[str] = mapped_column(String(3), primary_key=True, server_default="")
    period_us: Mapped[int] = mapped_column(primary_key=True, server_default="0")
    subscriptions: Mapped[int] = mapped_column(server_default="0")
    paid_cents: Mapped[int] = mapped_column(server_default="0")


class DashboardSubscriptionDay(Base):
    """Per UTC day: subscriptions that started counting (+) or ended (-) that day, for 'active at' counts."""

    __tablename__ = "dashboard_subscription_days"

    day: Mapped[date] = mapped_column(primary_key=True)
    delta: Mapped[int] = mapped_column(server_default="0")


class DashboardMrrDelta(Base):
    """Changes of MRR at month boundaries (UTC), per plan and source (manual: per paid currency and period)."""

    __tablename__ = "dashboard_mrr_deltas"

    boundary: Mapped[datetime] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    paid_currency: Mapped[str] = mapped_column(String(3), primary_key=True, server_default="")
    period_us: Mapped[int] = mapped_column(primary_key=True, server_default="0")
    subscriptions: Mapped[int] = mapped_column(server_default="0")
    paid_cents: Mapped[int] = mapped_column(server_default="0")


class DashboardRevenueDay(Base):
    """Per UTC day and currency: invoices paid (by payment date) and refunds succeeded (by refund date)."""

    __tablename__ = "dashboard_revenue_days"

    day: Mapped[date] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    paid_cents: Mapped[int] = mapped_column(server_default="0")
    refunded_cents: Mapped[int] = mapped_column(server_default="0")

"""Dunning: one case per failed invoice, from the first failure until it is paid or the subscription ends."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Identity, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from payment.models.base import Base, Timestamps, in_list

CLOSE_REASONS = ("paid", "recovered", "ended", "voided")


class DunningCase(Timestamps, Base):
    """A failed invoice being chased. Its grace end is fixed when it opens (Stripe's retries never move it; only an
    admin extends it); it is closed once, by payment or by the subscription ending."""

    __tablename__ = "dunning_cases"
    __table_args__ = (
        CheckConstraint("close_reason IS NULL OR " + in_list("close_reason", CLOSE_REASONS), name="close_reason"),
        CheckConstraint("(closed_at IS NULL) = (close_reason IS NULL)", name="closed_with_reason"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index("ix_dunning_cases_open", "grace_ends_at", postgresql_where=text("closed_at IS NULL")),
        Index("ix_dunning_cases_customer_id", "customer_id", text("id DESC")),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), unique=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    opened_at: Mapped[datetime]
    grace_ends_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=1, server_default="1")
    last_failed_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(String(1000))
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str | None] = mapped_column(String(16))

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

"""Reconciliation: one row per difference found between our books and Stripe's, until it is fixed or ignored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Identity, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from payment.models.base import Base, Timestamps, in_list

DRIFT_KINDS = (
    "subscription_differs",
    "subscription_missing",
    "invoice_differs",
    "refund_differs",
    "refund_missing",
    "customer_deleted",
)
DRIFT_STATES = ("open", "fixed", "ignored")


class Drift(Timestamps, Base):
    """What differs (kind, Stripe object), ours and Stripe's values of the compared fields, the event that should
    have brought them together, and what an admin (or the next check) decided."""

    __tablename__ = "reconciliation_drifts"
    __table_args__ = (
        UniqueConstraint("kind", "stripe_object_id", name="uq_reconciliation_drifts_kind_object"),
        CheckConstraint(in_list("kind", DRIFT_KINDS), name="kind"),
        CheckConstraint(in_list("state", DRIFT_STATES), name="state"),
        CheckConstraint("state <> 'ignored' OR char_length(btrim(reason)) BETWEEN 1 AND 2000", name="ignore_reason"),
        # the screen: open (or fixed, ignored) drifts newest first, optionally of one kind
        Index("ix_reconciliation_drifts_state_id", "state", text("id DESC")),
        Index("ix_reconciliation_drifts_kind_state_id", "kind", "state", text("id DESC")),
        # closing what one customer's check no longer finds
        Index("ix_reconciliation_drifts_customer_open", "customer_id", postgresql_where=text("state = 'open'")),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    stripe_object_id: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    ours: Mapped[dict[str, Any]]
    theirs: Mapped[dict[str, Any]]
    expected_event: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    resolved_at: Mapped[datetime | None]
    # when a drift open for more than a day was reported (to Sentry, through the error log): once
    reported_at: Mapped[datetime | None]

    def __str__(self) -> str:
        return f"Drift #{self.id} {self.kind} {self.stripe_object_id}"

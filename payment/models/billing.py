"""Who pays and what they have: customers, subscriptions, adjustments, invoices, refunds."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Identity, Index, Numeric, Sequence, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from payment.models.base import CURRENCIES, Base, Timestamps, in_list
from payment.models.catalog import Plan

# One ticket taken before each Stripe read the worker makes outside its transaction: a snapshot fetched under a
# smaller ticket than the one a row shows began before that row's snapshot was asked for, so it may be older.
STRIPE_FETCH_TICKETS = Sequence("stripe_fetch_tickets", metadata=Base.metadata)

SUBSCRIPTION_STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
    "expired",
)
LIVE_STATUSES = ("trialing", "active", "past_due")


def cancels_on(
    status: str, cancel_at: datetime | None, cancel_at_period_end: bool, current_period_end: datetime | None
) -> datetime | None:
    """When a live subscription set to end stops: Stripe's `cancel_at`, else its period end; None if it renews."""
    if status not in LIVE_STATUSES:
        return None
    if cancel_at is not None:
        return cancel_at
    return current_period_end if cancel_at_period_end else None


SUBSCRIPTION_SOURCES = ("stripe", "manual", "grant")
ADJUSTMENT_KINDS = ("extend", "grant", "cancel", "resume", "cancel_now", "manual_payment", "replace", "expire")
INVOICE_SOURCES = ("stripe", "manual")
INVOICE_STATUSES = (
    "draft",
    "open",
    "paid",
    "payment_failed",
    "partially_refunded",
    "refunded",
    "void",
    "uncollectible",
)
PAYMENT_METHODS = ("card", "bank_transfer", "wire", "cash", "other")
REFUND_STATUSES = ("pending", "succeeded", "failed", "canceled")
CANCEL_OUTCOMES = ("succeeded", "failed", "retried")


class Customer(Timestamps, Base):
    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint("char_length(external_user_id) BETWEEN 1 AND 255", name="external_user_id_length"),
        CheckConstraint("email IS NULL OR email ~ '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'", name="email_format"),
        CheckConstraint("name IS NULL OR char_length(name) <= 1024", name="name_length"),
        Index("ix_customers_email_lower", func.lower(text("email"))),
        CheckConstraint("(checkout_turn_nonce IS NULL) = (checkout_turn_until IS NULL)", name="checkout_turn_whole"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    external_user_id: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(1024))
    locale: Mapped[str | None] = mapped_column(String(16))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Subscribe's turn (payment/billing/checkout.py): held while it calls Stripe outside any transaction
    checkout_turn_nonce: Mapped[str | None] = mapped_column(String(64))
    checkout_turn_until: Mapped[datetime | None]

    def __str__(self) -> str:
        return self.email or self.external_user_id


class Subscription(Timestamps, Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint(in_list("status", SUBSCRIPTION_STATUSES), name="status"),
        CheckConstraint(in_list("source", SUBSCRIPTION_SOURCES), name="source"),
        CheckConstraint("(source = 'stripe') = (stripe_subscription_id IS NOT NULL)", name="stripe_id_for_stripe"),
        CheckConstraint(
            "current_period_end IS NULL OR current_period_start IS NULL OR current_period_end >= current_period_start",
            name="period_order",
        ),
        # keyset pagination of the admin list, newest first, with and without filters
        Index("ix_subscriptions_status_id", "status", text("id DESC")),
        Index("ix_subscriptions_plan_id_id", "plan_id", text("id DESC")),
        Index("ix_subscriptions_source_id", "source", text("id DESC")),
        Index("ix_subscriptions_customer_id", "customer_id", "status"),
        # periodic expiry of manual and granted subscriptions
        Index(
            "ix_subscriptions_expiry",
            "current_period_end",
            postgresql_where=text("source <> 'stripe' AND status IN ('active', 'trialing')"),
        ),
        Index("ix_subscriptions_ended_at", "ended_at", postgresql_where=text("ended_at IS NOT NULL")),
        CheckConstraint("(pending_plan_id IS NULL) = (pending_change_at IS NULL)", name="pending_change_complete"),
        CheckConstraint("(stripe_turn_nonce IS NULL) = (stripe_turn_until IS NULL)", name="stripe_turn_whole"),
        # dashboard churn: recent endings without visiting the table (migration 0002e)
        Index(
            "ix_subscriptions_dashboard_ended",
            "ended_at",
            postgresql_include=["created_at", "trial_end", "status"],
            postgresql_where=text("ended_at IS NOT NULL"),
        ),
        # dashboard MRR after discount: only the discounted subscriptions
        Index(
            "ix_subscriptions_discounted",
            "status",
            postgresql_where=text("discount_percent_off IS NOT NULL OR discount_amount_off_cents IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(24))
    source: Mapped[str] = mapped_column(String(16))
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    current_period_start: Mapped[datetime | None]
    current_period_end: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False, server_default="false")
    # when Stripe will end it (`cancel_at`, which since 2025-07-30.basil comes with cancel_at_period_end false)
    cancel_at: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    trial_end: Mapped[datetime | None]
    last_stripe_event_at: Mapped[datetime | None]
    # the fetch ticket (STRIPE_FETCH_TICKETS) of the Stripe snapshot this row shows: an older snapshot is not applied
    stripe_fetch_ticket: Mapped[int | None]
    # what a manual subscription was paid, per its whole duration (MRR counts it over that duration)
    paid_amount_cents: Mapped[int | None]
    paid_currency: Mapped[str | None] = mapped_column(String(3))
    # the recurring discount Stripe applies to its next invoices (a coupon's percentage or amount in the
    # subscription's currency), until `discount_ends_at` (NULL: forever); both NULL when there is none
    discount_percent_off: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    discount_amount_off_cents: Mapped[int | None]
    discount_ends_at: Mapped[datetime | None]
    # a change Stripe will make at a period end (a downgrade through the subscription's schedule)
    pending_plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"))
    pending_change_at: Mapped[datetime | None]
    stripe_schedule_id: Mapped[str | None] = mapped_column(String(255))
    # why the end user cancelled (optional, shown to admins)
    cancel_reason: Mapped[str | None] = mapped_column(String(2000))
    # the Stripe turn (payment/subscriptions/turns.py): an action calling Stripe outside any transaction holds this
    # lease on the row until `stripe_turn_until`; another action waits for it, or takes it over once it has expired
    stripe_turn_nonce: Mapped[str | None] = mapped_column(String(64))
    stripe_turn_by: Mapped[str | None] = mapped_column(String(255))
    stripe_turn_until: Mapped[datetime | None]

    customer: Mapped[Customer] = relationship()
    plan: Mapped[Plan] = relationship(foreign_keys=[plan_id])
    pending_plan: Mapped[Plan | None] = relationship(foreign_keys=[pending_plan_id])

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def cancels_on(self) -> datetime | None:
        return cancels_on(self.status, self.cancel_at, self.cancel_at_period_end, self.current_period_end)

    def __str__(self) -> str:
        return f"#{self.id} {self.status}"


class SubscriptionAdjustment(Base):
    __tablename__ = "subscription_adjustments"
    __table_args__ = (
        CheckConstraint(in_list("kind", ADJUSTMENT_KINDS), name="kind"),
        CheckConstraint("days IS NULL OR days BETWEEN 1 AND 3650", name="days_range"),
        CheckConstraint("char_length(btrim(reason)) BETWEEN 1 AND 2000", name="reason_required"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    days: Mapped[int | None]
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(255))
    previous_period_end: Mapped[datetime | None]
    new_period_end: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    subscription: Mapped[Subscription] = relationship()


class Invoice(Timestamps, Base):
    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint(in_list("source", INVOICE_SOURCES), name="source"),
        CheckConstraint(in_list("status", INVOICE_STATUSES), name="status"),
        CheckConstraint(in_list("currency", CURRENCIES), name="currency"),
        CheckConstraint(
            "payment_method IS NULL OR " + in_list("payment_method", PAYMENT_METHODS), name="payment_method"
        ),
        CheckConstraint("amount_cents >= 0", name="amount_not_negative"),
        CheckConstraint("amount_refunded_cents BETWEEN 0 AND amount_cents", name="refunded_within_amount"),
        CheckConstraint("(source = 'stripe') = (stripe_invoice_id IS NOT NULL)", name="stripe_id_for_stripe"),
        CheckConstraint(
            "source = 'stripe' OR (reference_number IS NOT NULL AND payment_method IS NOT NULL)",
            name="manual_reference",
        ),
        Index(
            "uq_invoices_manual_reference",
            func.lower(text("reference_number")),
            unique=True,
            postgresql_where=text("source = 'manual'"),
        ),
        Index("ix_invoices_customer_id", "customer_id", text("id DESC")),
        Index("ix_invoices_status_id", "status", text("id DESC")),
        Index("ix_invoices_paid_at", "paid_at", "currency", postgresql_where=text("paid_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id", ondelete="SET NULL"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255), index=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(24))
    paid_at: Mapped[datetime | None]
    payment_method: Mapped[str | None] = mapped_column(String(32))
    reference_number: Mapped[str | None] = mapped_column(String(255))
    amount_refunded_cents: Mapped[int] = mapped_column(default=0, server_default="0")
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    attempt_count: Mapped[int] = mapped_column(default=0, server_default="0")
    last_payment_error: Mapped[str | None] = mapped_column(String(1000))
    # when Stripe will charge a failed invoice again (Smart Retries / retry schedule); None when no retry is scheduled
    next_payment_attempt_at: Mapped[datetime | None]
    # the card the last failed attempt was declined on: a new default card is worth an immediate retry, this one not
    failed_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    recorded_by: Mapped[str | None] = mapped_column(String(255))
    last_stripe_event_at: Mapped[datetime | None]
    # fetch tickets of the Stripe snapshots shown: the invoice's, and its charge's (refunded amount, refunds)
    stripe_fetch_ticket: Mapped[int | None]
    stripe_charge_fetch_ticket: Mapped[int | None]
    # before a discount: amount_cents = subtotal_cents - discount_cents (NULL subtotal: no discount was read)
    subtotal_cents: Mapped[int | None]
    discount_cents: Mapped[int] = mapped_column(default=0, server_default="0")

    customer: Mapped[Customer] = relationship()
    subscription: Mapped[Subscription | None] = relationship()

    @property
    def refundable_cents(self) -> int:
        return self.amount_cents - self.amount_refunded_cents

    def __str__(self) -> str:
        return f"Invoice #{self.id}"


class Refund(Timestamps, Base):
    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint(in_list("currency", CURRENCIES), name="currency"),
        CheckConstraint(in_list("status", REFUND_STATUSES), name="status"),
        CheckConstraint(
            "cancel_outcome IS NULL OR " + in_list("cancel_outcome", CANCEL_OUTCOMES), name="cancel_outcome"
        ),
        Index("ix_refunds_invoice_id", "invoice_id", "status"),
        Index("ix_refunds_status_id", "status", text("id DESC")),
        # dashboard revenue: today's succeeded refunds (migration 0002e)
        Index(
            "ix_refunds_dashboard_succeeded",
            "succeeded_at",
            postgresql_include=["currency", "amount_cents"],
            postgresql_where=text("status = 'succeeded'"),
        ),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="RESTRICT"))
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    status: Mapped[str] = mapped_column(String(16))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_by: Mapped[str] = mapped_column(String(255))
    succeeded_at: Mapped[datetime | None]
    failure_reason: Mapped[str | None] = mapped_column(String(1000))
    also_cancel: Mapped[bool] = mapped_column(default=False, server_default="false")
    cancel_outcome: Mapped[str | None] = mapped_column(String(16))
    cancel_error: Mapped[str | None] = mapped_column(String(1000))

    invoice: Mapped[Invoice] = relationship()

    def __str__(self) -> str:
        return f"Refund #{self.id}"

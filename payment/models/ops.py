"""Machinery: billing sessions, checkouts, Stripe events, the audit log and login throttling."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from payment.models.accounts import App
from payment.models.base import Base, in_list
from payment.models.billing import Customer

CHECKOUT_STATUSES = ("open", "complete", "expired")
EVENT_STATUSES = ("pending", "handled", "ignored", "failed")


class BillingSession(Base):
    """A short-lived link to the hosted billing page; only the token's SHA-256 is kept."""

    __tablename__ = "billing_sessions"
    __table_args__ = (Index("ix_billing_sessions_expires_at", "expires_at"),)

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, server_default=text("gen_random_uuid()"), default=uuid.uuid4
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    locale: Mapped[str | None] = mapped_column(String(16))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    app: Mapped[App] = relationship()
    customer: Mapped[Customer] = relationship()


class CheckoutSession(Base):
    """A Stripe Checkout Session we opened, so a second Subscribe reuses it instead of opening another."""

    __tablename__ = "checkout_sessions"
    __table_args__ = (
        CheckConstraint(in_list("status", CHECKOUT_STATUSES), name="status"),
        Index("ix_checkout_sessions_open", "customer_id", postgresql_where=text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    stripe_checkout_session_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"))
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    url: Mapped[str] = mapped_column(String(2048))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class StripeEvent(Base):
    """Each Stripe event once (unique id), kept until applied, with what went wrong if it failed."""

    __tablename__ = "stripe_events"
    __table_args__ = (
        CheckConstraint(in_list("status", EVENT_STATUSES), name="status"),
        Index("ix_stripe_events_unhandled", "received_at", postgresql_where=text("status IN ('pending', 'failed')")),
        Index("ix_stripe_events_status_id", "status", text("id DESC")),
        Index("ix_stripe_events_created", "stripe_created_at"),
        Index("ix_stripe_events_object", "object_id"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(128))
    object_id: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]]
    stripe_created_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    received_via: Mapped[str] = mapped_column(String(16), default="webhook", server_default="webhook")
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    handled_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    # the version Stripe rendered the event in (the endpoint's); another than ours is applied all the same
    api_version: Mapped[str | None] = mapped_column(String(32))


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_entity", "entity_type", "entity_id", text("id DESC")),
        Index("ix_audit_log_actor", "actor", text("id DESC")),
        Index("ix_audit_log_action", "action", text("id DESC")),
        Index("ix_audit_log_at", "at"),
        UniqueConstraint("chain_lane", "chain_seq", name="uq_audit_log_chain_lane_seq"),
        CheckConstraint("(chain_lane IS NULL) = (chain_seq IS NULL)", name="chain_lane_with_seq"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str | None] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    ip: Mapped[str | None] = mapped_column(String(64))
    # The tamper-evident chain (payment/audit/chain.py): its lane, the position in that lane, the previous row's
    # hash in the lane, this row's keyed hash.
    chain_lane: Mapped[int | None] = mapped_column(SmallInteger)
    chain_seq: Mapped[int | None]
    prev_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    row_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))


class AuditChainHead(Base):
    """How many lanes the audit chain has, and the last verification's verdict (one row).

    Rows with an id up to `legacy_max_id` were written before the chain existed and are not part of it."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("lanes BETWEEN 1 AND 256", name="lanes_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lanes: Mapped[int] = mapped_column(default=16, server_default="16")
    legacy_max_id: Mapped[int] = mapped_column(default=0, server_default="0")
    verified_at: Mapped[datetime | None]
    verified_ok: Mapped[bool | None]
    verify_problem: Mapped[str | None] = mapped_column(Text)


class AuditChainLane(Base):
    """The end of one lane of the audit chain: a committing transaction locks a free lane and appends its audit
    rows after it (payment/audit/chain.py)."""

    __tablename__ = "audit_chain_lanes"
    __table_args__ = (CheckConstraint("id >= 0", name="id_not_negative"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(default=0, server_default="0")
    last_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))


class RateLimitHit(Base):
    """One attempt against a limited action (login), shared by every app process through the database."""

    __tablename__ = "rate_limit_hits"
    __table_args__ = (Index("ix_rate_limit_hits_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(server_default=func.now())


class FormSubmission(Base):
    """A one-time admin form nonce, claimed once; a repeat submission shows the first outcome instead of acting."""

    __tablename__ = "form_submissions"
    __table_args__ = (Index("ix_form_submissions_created_at", "created_at"),)

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    action: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

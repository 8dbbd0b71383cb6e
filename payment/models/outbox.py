"""What leaves the service because something changed: the outbox, its counters, and client apps' endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Identity, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from payment.models.base import Base, Timestamps, in_list

# `in_doubt`: the worker died after handing the message over (SMTP DATA) and before recording the answer; it may
# have arrived, so it is not resent by itself, only by an admin's "Send again"
OUTBOX_STATUSES = ("pending", "sending", "delivered", "failed", "in_doubt")


class OutboxMessage(Base):
    """One message to one target (a client app's endpoint, later an end user's mailbox), written in the transaction
    of the change and sent by a job. Messages of one (kind, target, ordering_key) go out in `position` order."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        CheckConstraint(in_list("status", OUTBOX_STATUSES), name="status"),
        UniqueConstraint("kind", "target", "dedupe_key", name="uq_outbox_messages_kind_target_dedupe_key"),
        # what the dispatcher looks for: due messages, and leases of workers that died
        Index("ix_outbox_messages_due", "next_attempt_at", postgresql_where=text("status IN ('pending', 'sending')")),
        # the head of each per-user queue
        Index("ix_outbox_messages_queue", "kind", "target", "ordering_key", "position"),
        # the delivery log of one endpoint, newest first, and replays by time range
        Index("ix_outbox_messages_target_id", "kind", "target", text("id DESC")),
        Index("ix_outbox_messages_target_created", "kind", "target", "created_at"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(255))
    dedupe_key: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    ordering_key: Mapped[str] = mapped_column(String(128))
    position: Mapped[int]
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    lease_until: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_duration_ms: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(600))
    delivered_at: Mapped[datetime | None]
    # set (in its own commit) just before the current attempt hands the message over for good (SMTP DATA)
    handed_off_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class OutboxCounter(Base):
    """A named counter (a user's queue position, a subscription's event sequence); its row lock also orders
    concurrent writers of one user by commit."""

    __tablename__ = "outbox_counters"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[int] = mapped_column(default=0, server_default="0")


class WebhookEndpoint(Timestamps, Base):
    """Where a client app wants to hear of changes, which event types, and the secrets that sign deliveries."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        CheckConstraint("url ~* '^https?://[^\\s]+$'", name="url_scheme"),
        CheckConstraint("char_length(description) <= 255", name="description_length"),
        Index("ix_webhook_endpoints_app_id", "app_id", "id"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(255), default="", server_default="")
    event_types: Mapped[list[str]] = mapped_column(default=list, server_default="[]")
    secret_encrypted: Mapped[str] = mapped_column(String(512))
    secret_hint: Mapped[str] = mapped_column(String(32))
    previous_secret_encrypted: Mapped[str | None] = mapped_column(String(512))
    previous_secret_expires_at: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(default=True, server_default="true")
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None]
    failing_since: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]

    def __str__(self) -> str:
        return self.url

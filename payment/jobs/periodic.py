"""Rules the periodic jobs apply: manual and granted subscriptions end with their period."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit import service as audit
from payment.models import Subscription, SubscriptionAdjustment

EXPIRE_BATCH = 500


async def expire_due_subscriptions(session: AsyncSession, *, now: datetime, actor: str = audit.SYSTEM) -> int:
    """A manual or granted subscription whose period has ended becomes expired (ended at its period end), with an
    `expire` adjustment and an audit row; Stripe subscriptions are left to Stripe."""
    due = (
        await session.scalars(
            select(Subscription)
            .where(
                Subscription.source != "stripe",
                Subscription.status.in_(("active", "trialing")),
                Subscription.current_period_end <= now,
            )
            .order_by(Subscription.current_period_end)
            .limit(EXPIRE_BATCH)
            .with_for_update(skip_locked=True)  # another worker (or an admin extending it) has it: next run
        )
    ).all()
    for sub in due:
        previous = sub.status
        sub.status = "expired"
        sub.ended_at = sub.current_period_end
        session.add(
            SubscriptionAdjustment(
                subscription_id=sub.id,
                kind="expire",
                reason="Period ended.",
                actor=actor,
                previous_period_end=sub.current_period_end,
                new_period_end=sub.current_period_end,
            )
        )
        await audit.record(
            session,
            actor=actor,
            action="subscription.expired",
            entity_type="subscription",
            entity_id=sub.id,
            details={
                "source": sub.source,
                "previous_status": previous,
                "ended_at": sub.ended_at.isoformat() if sub.ended_at else None,
            },
        )
    await session.flush()
    return len(due)

"""What a customer may use in an app right now: the rule client apps rely on to unlock paid features."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from payment.billing.catalog import free_plan
from payment.models import App, Customer, DunningCase, Plan, Subscription, utcnow
from payment.models.billing import LIVE_STATUSES

FREE_STATUS = "free"
FALLBACK_FREE_SLUG = "free"
FALLBACK_FREE_NAME = "Free"
FULL, GRACE, BLOCKED = "full", "grace", "blocked"


@dataclass(frozen=True)
class Entitlement:
    plan_slug: str
    plan_name: str
    status: str
    source: str
    current_period_end: datetime | None
    cancel_at_period_end: bool
    cancels_on: datetime | None
    subscription: Subscription | None
    plan: Plan | None
    access_state: str = FULL
    grace_ends_at: datetime | None = None
    pending_plan: Plan | None = None  # the plan a scheduled change moves to, at pending_change_at
    pending_change_at: datetime | None = None

    @property
    def is_paid(self) -> bool:
        return self.subscription is not None


async def live_subscription(
    session: AsyncSession, customer: Customer, app: App, *, now: datetime | None = None
) -> Subscription | None:
    """The customer's live subscription to a plan of this app (suite-wide or the app's own), the best one first."""
    now = now or utcnow()
    query = (
        select(Subscription)
        .join(Plan, Subscription.plan_id == Plan.id)
        .where(
            Subscription.customer_id == customer.id,
            Subscription.status.in_(LIVE_STATUSES),
            or_(Plan.app_id.is_(None), Plan.app_id == app.id),
            # manual and granted ones end by date even before the expiry job has run
            or_(
                Subscription.source == "stripe",
                Subscription.current_period_end.is_(None),
                Subscription.current_period_end > now,
            ),
        )
        .options(joinedload(Subscription.plan), joinedload(Subscription.pending_plan))
        # active beats past_due; then the dearer plan; then the newest
        .order_by((Subscription.status == "past_due"), Plan.price_cents.desc(), Subscription.id.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def open_case(session: AsyncSession, subscription_id: int) -> DunningCase | None:
    """The subscription's open dunning case (the oldest failed invoice still unpaid), if any."""
    return await session.scalar(
        select(DunningCase)
        .where(DunningCase.subscription_id == subscription_id, DunningCase.closed_at.is_(None))
        .order_by(DunningCase.opened_at, DunningCase.id)
        .limit(1)
    )


async def current(
    session: AsyncSession, customer: Customer | None, app: App, *, now: datetime | None = None
) -> Entitlement:
    """The customer's live paid subscription for this app, or the app's free plan when there is none. A past-due
    subscription gives full access until its dunning case's grace end (`grace`), then none (`blocked`), or the
    free plan when the app's policy says so."""
    now = now or utcnow()
    sub = await live_subscription(session, customer, app, now=now) if customer is not None else None
    if sub is not None:
        state, grace_ends_at = FULL, None
        if sub.status == "past_due":
            case = await open_case(session, sub.id)
            # past due with no case yet (its invoice not synced): grace, with no end known
            grace_ends_at = case.grace_ends_at if case is not None else None
            state = BLOCKED if grace_ends_at is not None and now >= grace_ends_at else GRACE
        if state != BLOCKED or app.after_grace == "blocked":
            return Entitlement(
                plan_slug=sub.plan.slug,
                plan_name=sub.plan.name,
                status=sub.status,
                source=sub.source,
                current_period_end=sub.current_period_end,
                cancel_at_period_end=sub.cancel_at_period_end,
                cancels_on=sub.cancels_on,
                subscription=sub,
                plan=sub.plan,
                access_state=state,
                grace_ends_at=grace_ends_at,
                pending_plan=sub.pending_plan if sub.pending_change_at is not None else None,
                pending_change_at=sub.pending_change_at if sub.pending_plan is not None else None,
            )
    free = await free_plan(session, app)
    return Entitlement(
        plan_slug=free.slug if free else FALLBACK_FREE_SLUG,
        plan_name=free.name if free else FALLBACK_FREE_NAME,
        status=FREE_STATUS,
        source=FREE_STATUS,
        current_period_end=None,
        cancel_at_period_end=False,
        cancels_on=None,
        subscription=None,
        plan=free,
    )


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, as the OpenAPI `date-time` format expects."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def document(ent: Entitlement, *, external_user_id: str, app_slug: str) -> dict[str, Any]:
    """The entitlement as client apps read it: the API's answer and the `entitlement.changed` webhook's data."""
    return {
        "externalUserId": external_user_id,
        "appSlug": app_slug,
        "plan": {"slug": ent.plan_slug, "name": ent.plan_name},
        "status": ent.status,
        "source": ent.source,
        "paid": ent.is_paid,
        "currentPeriodEnd": iso(ent.current_period_end),
        "cancelAtPeriodEnd": ent.cancel_at_period_end,
        "cancelsAt": iso(ent.cancels_on),
        "cancelAt": iso(ent.cancels_on),
        "pendingChange": None
        if ent.pending_plan is None
        else {
            "plan": {"slug": ent.pending_plan.slug, "name": ent.pending_plan.name},
            "effectiveAt": iso(ent.pending_change_at),
        },
        "accessState": ent.access_state,
        "graceEndsAt": iso(ent.grace_ends_at),
        "trialEndsAt": iso(ent.subscription.trial_end)
        if ent.subscription is not None and ent.status == "trialing"
        else None,
    }

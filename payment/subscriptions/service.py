"""Admin rules on subscriptions: cancel at period end, resume, extend, grant, cancel now.

Stripe subscriptions change through the Stripe API first and our row then copies Stripe's answer; manual and granted
subscriptions change locally. Each rule takes the database (not an open session) and runs as a Stripe turn
(payment/subscriptions/turns.py): Stripe is called with no transaction open and no row locked; the row, the
subscription_adjustments row and the audit row are written after Stripe answers. If Stripe refuses, the StripeError
propagates and nothing of the action is written.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager, selectinload

from payment.admins.permissions import Permission, require
from payment.audit import service as audit
from payment.db import Transactions
from payment.dunning.cases import DELINQUENT_STATUSES
from payment.errors import Conflict, NotFound, ValidationError
from payment.models import Customer, Plan, Subscription, SubscriptionAdjustment, utcnow
from payment.models.billing import LIVE_STATUSES
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.stripe.reader import JSON
from payment.subscriptions import turns
from payment.subscriptions.paid_extension import is_paid_extension, marker
from payment.subscriptions.periods import period_after
from payment.subscriptions.stripe_sync import upsert_from_stripe
from payment.subscriptions.turns import lock_subscription

__all__ = ["lock_subscription"]

MAX_DAYS = 3650
ENDED_STATUSES = ("canceled", "expired", "incomplete_expired")


def check_reason(reason: str | None, *, default: str | None = None) -> str:
    """A non-blank reason of at most 2000 characters (the default stands in when the form leaves it optional)."""
    text = (reason or "").strip() or (default or "")
    if not text:
        raise ValidationError("A reason is required.", field="reason")
    if len(text) > 2000:
        raise ValidationError("The reason must be at most 2000 characters.", field="reason")
    return text


def check_days(days: int, *, field: str = "days") -> int:
    """Days added to a subscription are between 1 and 3650."""
    if days < 1 or days > MAX_DAYS:
        raise ValidationError(f"Days must be between 1 and {MAX_DAYS}.", field=field)
    return days


async def get(session: AsyncSession, subscription_id: int) -> Subscription:
    """The subscription with its plan and customer, or NotFound (read only: `lock_subscription` is for changes)."""
    sub = await session.get(
        Subscription, subscription_id, options=[selectinload(Subscription.plan), selectinload(Subscription.customer)]
    )
    if sub is None:
        raise NotFound("This subscription does not exist.")
    return sub


async def lock_customer(session: AsyncSession, customer_id: int) -> Customer:
    """The customer row, locked so grants and manual payments for one customer run one after the other."""
    customer = (
        await session.execute(
            select(Customer)
            .where(Customer.id == customer_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if customer is None:
        raise NotFound("This customer does not exist.")
    return customer


async def live_in_scope(session: AsyncSession, customer_id: int, plan: Plan) -> list[Subscription]:
    """The customer's live subscriptions that overlap the plan's scope.

    A suite-wide plan (no app) overlaps everything; an app-scoped plan overlaps that app's plans and suite-wide ones.
    """
    query = (
        select(Subscription)
        .join(Plan, Plan.id == Subscription.plan_id)
        .where(Subscription.customer_id == customer_id, Subscription.status.in_(LIVE_STATUSES))
        .options(contains_eager(Subscription.plan))
        .order_by(Subscription.id)
    )
    if plan.app_id is not None:
        query = query.where(or_(Plan.app_id.is_(None), Plan.app_id == plan.app_id))
    return list((await session.execute(query)).scalars())


async def _adjust(
    session: AsyncSession,
    sub: Subscription,
    kind: str,
    reason: str,
    actor: str,
    *,
    days: int | None = None,
    previous_end: datetime | None = None,
) -> SubscriptionAdjustment:
    row = SubscriptionAdjustment(
        subscription_id=sub.id,
        kind=kind,
        days=days,
        reason=reason,
        actor=actor,
        previous_period_end=previous_end,
        new_period_end=sub.current_period_end,
    )
    session.add(row)
    await session.flush()
    return row


def _snapshot(sub: Subscription) -> dict[str, object]:
    return {
        "status": sub.status,
        "source": sub.source,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "cancel_at": sub.cancel_at.isoformat() if sub.cancel_at else None,
        "current_period_end": sub.current_period_end.isoformat() if sub.current_period_end else None,
        "stripe_subscription_id": sub.stripe_subscription_id,
    }


async def release_schedule(gateway: StripeGateway, schedule_id: str | None) -> None:
    """Let go of the subscription's schedule (its pending change is dropped; the subscription runs on as it is).
    A schedule is released once, so its id keys the request: a retry replays Stripe's first answer."""
    if schedule_id is None:
        return
    sched = reader.schedule(await gateway.retrieve_subscription_schedule(schedule_id))
    if sched.status in ("active", "not_started"):
        await gateway.release_subscription_schedule(schedule_id, idempotency_key=f"aquoris-release-{schedule_id}")


def _require_live(sub: Subscription, verb: str) -> None:
    if not sub.is_live:
        raise Conflict(f"Only a live subscription can be {verb}; this one is {sub.status}.")


async def cancel_at_period_end(
    db: Transactions,
    subscription_id: int,
    *,
    gateway: StripeGateway,
    reason: str | None = None,
    customer_reason: str | None = None,
    actor: str,
    ip: str | None = None,
) -> Subscription:
    """A live subscription stops renewing and ends at its current period end (Stripe's through the Stripe API)."""
    require(actor, Permission.MANAGE_SUBSCRIPTIONS)
    text = check_reason(reason, default="Canceled at period end by an admin.")

    async def check(session: AsyncSession, sub: Subscription) -> None:
        _require_live(sub, "canceled")
        if sub.cancels_on is not None:
            raise Conflict(f"This subscription is already set to cancel on {sub.cancels_on.date().isoformat()}.")

    async def call(turn: turns.Turn, _: None) -> JSON:
        # Stripe refuses a scheduled subscription's cancellation: a pending downgrade gives way to it
        await release_schedule(gateway, turn.stripe_schedule_id)
        return await gateway.update_subscription(
            turn.stripe_subscription_id, {"cancel_at_period_end": True}, idempotency_key=turn.key("cancel")
        )

    async def apply(
        session: AsyncSession, stripe: StripeGateway, sub: Subscription, _: None, answer: JSON | None
    ) -> Subscription:
        if customer_reason is not None:
            sub.cancel_reason = customer_reason.strip()[:2000] or None
        if answer is not None:
            await upsert_from_stripe(session, stripe, answer, actor=actor)
        else:
            sub.cancel_at_period_end = True
            sub.canceled_at = utcnow()
        await session.flush()
        await _adjust(session, sub, "cancel", text, actor, previous_end=sub.current_period_end)
        await audit.record(
            session,
            actor=actor,
            action="subscription.cancel_at_period_end",
            entity_type="subscription",
            entity_id=sub.id,
            details={"reason": text, "customer_reason": sub.cancel_reason, **_snapshot(sub)},
            ip=ip,
        )
        return sub

    return await turns.act(db, subscription_id, actor=actor, check=check, gateway=gateway, call=call, apply=apply)


async def resume(
    db: Transactions,
    subscription_id: int,
    *,
    gateway: StripeGateway,
    reason: str | None = None,
    actor: str,
    ip: str | None = None,
) -> Subscription:
    """A pending cancellation at period end is withdrawn; the subscription renews again."""
    require(actor, Permission.MANAGE_SUBSCRIPTIONS)
    text = check_reason(reason, default="Cancellation withdrawn by an admin.")

    async def check(session: AsyncSession, sub: Subscription) -> None:
        _require_live(sub, "resumed")
        if sub.cancels_on is None:
            raise Conflict("This subscription has no pending cancellation to undo.")

    async def call(turn: turns.Turn, _: None) -> JSON:
        # an empty cancel_at withdraws both ways Stripe ends a subscription (cancel_at and cancel_at_period_end)
        return await gateway.update_subscription(
            turn.stripe_subscription_id, {"cancel_at": ""}, idempotency_key=turn.key("resume")
        )

    async def apply(
        session: AsyncSession, stripe: StripeGateway, sub: Subscription, _: None, answer: JSON | None
    ) -> Subscription:
        sub.cancel_reason = None
        if answer is not None:
            await upsert_from_stripe(session, stripe, answer, actor=actor)
        else:
            sub.cancel_at_period_end = False
            sub.canceled_at = None
        await session.flush()
        await _adjust(session, sub, "resume", text, actor, previous_end=sub.current_period_end)
        await audit.record(
            session,
            actor=actor,
            action="subscription.resumed",
            entity_type="subscription",
            entity_id=sub.id,
            details={"reason": text, **_snapshot(sub)},
            ip=ip,
        )
        return sub

    return await turns.act(db, subscription_id, actor=actor, check=check, gateway=gateway, call=call, apply=apply)


async def extend(
    db: Transactions,
    subscription_id: int,
    *,
    days: int,
    reason: str,
    gateway: StripeGateway,
    actor: str,
    ip: str | None = None,
) -> Subscription:
    """A live subscription's period end moves `days` later; a Stripe one through a trial to that date, unbilled,
    and a paying one stays active (renewing on the new date), not trialing."""
    require(actor, Permission.MANAGE_SUBSCRIPTIONS)
    days = check_days(days)
    text = check_reason(reason)

    async def check(session: AsyncSession, sub: Subscription) -> datetime | None:
        _require_live(sub, "extended")
        return sub.current_period_end

    async def call(turn: turns.Turn, previous_end: datetime | None) -> tuple[JSON, datetime]:
        current = await gateway.retrieve_subscription(turn.stripe_subscription_id)
        stripe_end = reader.subscription(current).period_end or previous_end or utcnow()
        trial_end = int((stripe_end + timedelta(days=days)).timestamp())
        # A trial up to the new end is how Stripe moves the next charge without billing the added days; on a paying
        # subscription the metadata marks it as an extension, so we keep calling it active (paid_extension).
        params: dict[str, object] = {"trial_end": trial_end, "proration_behavior": "none"}
        if current.get("status") == "active" or is_paid_extension(current):
            params["metadata"] = marker(trial_end)
        data = await gateway.update_subscription(
            turn.stripe_subscription_id, params, idempotency_key=turn.key("extend")
        )
        return data, stripe_end

    async def apply(
        session: AsyncSession,
        stripe: StripeGateway,
        sub: Subscription,
        previous_end: datetime | None,
        answer: tuple[JSON, datetime] | None,
    ) -> Subscription:
        if answer is not None:
            data, previous_end = answer
            await upsert_from_stripe(session, stripe, data, actor=actor)
        else:
            sub.current_period_end = (previous_end or utcnow()) + timedelta(days=days)
        await session.flush()
        await _adjust(session, sub, "extend", text, actor, days=days, previous_end=previous_end)
        await audit.record(
            session,
            actor=actor,
            action="subscription.extended",
            entity_type="subscription",
            entity_id=sub.id,
            details={
                "days": days,
                "reason": text,
                "previous_period_end": previous_end.isoformat() if previous_end else None,
                **_snapshot(sub),
            },
            ip=ip,
        )
        return sub

    return await turns.act(db, subscription_id, actor=actor, check=check, gateway=gateway, call=call, apply=apply)


def _ended_here(sub: Subscription) -> None:
    """A subscription that is not Stripe's ends now, on our row alone."""
    now = utcnow()
    sub.status = "canceled"
    sub.canceled_at = sub.canceled_at or now
    sub.ended_at = now
    sub.cancel_at_period_end = False
    sub.cancel_at = None


async def end_now(
    db: Transactions,
    subscription_id: int,
    *,
    gateway: StripeGateway,
    kind: str,
    action: str,
    reason: str,
    actor: str,
    ip: str | None = None,
    customer_reason: str | None = None,
    owed_only: bool = False,
) -> Subscription:
    """A subscription that has not ended ends now (Stripe's is deleted through the Stripe API), recorded as an
    adjustment of `kind` and an audit row `action`, with the end user's own reason when they asked.

    `owed_only`: only a delinquent subscription (a renewal payment failed) ends, and its open invoices are voided
    after the cancellation. Stripe's cancellation already stops their automatic collection, but an open invoice
    stays payable and collection can be resumed; a void one is never charged, and its dunning case closes."""

    async def check(session: AsyncSession, sub: Subscription) -> datetime | None:
        if sub.status in ENDED_STATUSES:
            raise Conflict(f"This subscription has already ended ({sub.status}).")
        if owed_only and sub.status not in DELINQUENT_STATUSES:
            raise Conflict(f"Only a subscription with an unpaid renewal ends this way; this one is {sub.status}.")
        return sub.current_period_end

    async def call(turn: turns.Turn, _: datetime | None) -> tuple[JSON, list[str]]:
        data = await gateway.cancel_subscription(turn.stripe_subscription_id, idempotency_key=turn.key("end"))
        return data, (await void_open_invoices(gateway, turn.stripe_subscription_id) if owed_only else [])

    async def apply(
        session: AsyncSession,
        stripe: StripeGateway,
        sub: Subscription,
        previous_end: datetime | None,
        answer: tuple[JSON, list[str]] | None,
    ) -> Subscription:
        if customer_reason is not None:
            sub.cancel_reason = customer_reason.strip()[:2000] or None
        voided: list[str] = []
        if answer is not None:
            data, voided = answer
            await upsert_from_stripe(session, stripe, data, actor=actor)
        else:
            _ended_here(sub)
        await session.flush()
        await _adjust(session, sub, kind, reason, actor, previous_end=previous_end)
        details: dict[str, object] = {"reason": reason, **_snapshot(sub)}
        if customer_reason is not None:
            details["customer_reason"] = sub.cancel_reason
        if owed_only:
            details["voided_invoices"] = voided
        await audit.record(
            session,
            actor=actor,
            action=action,
            entity_type="subscription",
            entity_id=sub.id,
            details=details,
            ip=ip,
        )
        return sub

    return await turns.act(db, subscription_id, actor=actor, check=check, gateway=gateway, call=call, apply=apply)


async def cancel_now(
    db: Transactions,
    subscription_id: int,
    *,
    gateway: StripeGateway,
    reason: str | None = None,
    actor: str,
    ip: str | None = None,
    customer_reason: str | None = None,
    owed_only: bool = False,
) -> Subscription:
    """A subscription that has not ended ends now (Stripe's is deleted through the Stripe API). With `owed_only`
    (the end user's cancel of a past-due plan) only a delinquent one ends, and what it owes is voided: access ends at
    once and the failed invoice is not charged again (cancelling at the period end would leave Stripe retrying it)."""
    text = check_reason(reason, default="Canceled immediately by an admin.")
    return await end_now(
        db,
        subscription_id,
        gateway=gateway,
        kind="cancel_now",
        action="subscription.canceled_now",
        reason=text,
        actor=actor,
        ip=ip,
        customer_reason=customer_reason,
        owed_only=owed_only,
    )


async def void_open_invoices(gateway: StripeGateway, stripe_subscription_id: str) -> list[str]:
    """Void the subscription's open invoices (what it still owes); returns their ids. Each void is keyed by the
    invoice, so a repeated request replays Stripe's first answer."""
    listed = await gateway.list_invoices({"subscription": stripe_subscription_id, "status": "open", "limit": 100})
    voided: list[str] = []
    for inv in listed.get("data") or []:
        invoice_id = reader.id_of(inv.get("id"))
        if invoice_id is None:
            continue
        await gateway.void_invoice(invoice_id, idempotency_key=f"aquoris-void-{invoice_id}")
        voided.append(invoice_id)
    return voided


def check_duration(months: int, days: int) -> None:
    """A granted or paid duration is at least a day and at most 3650 days."""
    if months < 0 or days < 0 or (months == 0 and days == 0):
        raise ValidationError("Enter a duration of at least one day or one month.", field="duration")
    if months > 120 or months * 31 + days > MAX_DAYS:
        raise ValidationError(f"The duration must be at most {MAX_DAYS} days (about 10 years).", field="duration")


def describe_conflicts(conflicts: list[Subscription]) -> str:
    """Which live subscriptions stand in the way, in words for the admin."""
    listed = ", ".join(f"#{s.id} {s.plan.name} ({s.source}, {s.status})" for s in conflicts)
    return f"The customer already has a live subscription in this plan's scope: {listed}."


async def _grant_conflicts(
    session: AsyncSession, customer_id: int, plan_id: int, *, replace: bool
) -> tuple[Plan, list[Subscription]]:
    plan = await session.get(Plan, plan_id)
    if plan is None:
        raise NotFound("This plan does not exist.", field="plan_id")
    conflicts = await live_in_scope(session, customer_id, plan)
    if conflicts and not replace:
        raise Conflict(describe_conflicts(conflicts) + " Confirm replacing it to continue.", code="replace_needed")
    return plan, conflicts


async def check_grant(session: AsyncSession, customer_id: int, *, plan_id: int, replace: bool = False) -> None:
    """What `grant` would refuse (a live subscription in the plan's scope, unless replacing), checked without
    locking, so the admin is asked before the confirmation page."""
    await _grant_conflicts(session, customer_id, plan_id, replace=replace)


async def grant(
    db: Transactions,
    customer_id: int,
    *,
    plan_id: int,
    reason: str,
    gateway: StripeGateway,
    actor: str,
    months: int = 0,
    days: int = 0,
    replace: bool = False,
    ip: str | None = None,
) -> Subscription:
    """Give the customer a free manual subscription to a plan for a duration, refused while a live subscription
    in the same scope exists unless `replace` ends it.

    The subscriptions replaced end first, each in its own Stripe turn (Stripe is never called inside the grant's
    transaction); the grant itself then checks the scope again under the customer's lock."""
    require(actor, Permission.MANAGE_SUBSCRIPTIONS)
    text = check_reason(reason)
    check_duration(months, days)
    async with db.session() as session:
        plan, conflicts = await _grant_conflicts(session, customer_id, plan_id, replace=replace)
        plan_name = plan.name
        replaced = [s.id for s in conflicts]
    for old_id in replaced:
        try:
            await end_now(
                db,
                old_id,
                gateway=gateway,
                kind="replace",
                action="subscription.replaced",
                reason=f"Replaced by a granted {plan_name}: {text}",
                actor=actor,
                ip=ip,
            )
        except Conflict as exc:
            if exc.code == turns.TurnBusy.code:
                raise
            # it ended meanwhile (a webhook, another admin): nothing left to replace
    async with db.transaction() as session:
        customer = await lock_customer(session, customer_id)
        plan, conflicts = await _grant_conflicts(session, customer.id, plan_id, replace=False)
        start = utcnow()
        end = period_after(start, months=months, days=days)
        sub = Subscription(
            customer_id=customer.id,
            plan_id=plan.id,
            status="active",
            source="grant",
            current_period_start=start,
            current_period_end=end,
        )
        session.add(sub)
        await session.flush()
        total_days = max(1, min(MAX_DAYS, (end - start).days))
        await _adjust(session, sub, "grant", text, actor, days=total_days)
        await audit.record(
            session,
            actor=actor,
            action="subscription.granted",
            entity_type="subscription",
            entity_id=sub.id,
            details={
                "customer_id": customer.id,
                "plan": plan.slug,
                "months": months,
                "days": days,
                "reason": text,
                "replaced": replaced,
                **_snapshot(sub),
            },
            ip=ip,
        )
        return sub

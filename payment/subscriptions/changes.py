"""Plan changes of a Stripe subscription: which are offered, what they cost (Stripe's invoice preview), and making
them through Stripe.

An upgrade (a higher price per month, a yearly price counted as a twelfth) takes effect at once: Stripe invoices the
prorated difference immediately (`always_invoice`) and, with `pending_if_incomplete`, changes nothing when that
payment fails. A downgrade takes effect at the period end through a subscription schedule; until then it is the
subscription's pending change, which can be cancelled (the schedule is released). Each app decides whether its users
are offered downgrades, downgrades from a yearly plan before the year ends, and changes of billing interval.
Our row follows Stripe's answer through `upsert_from_stripe`, as the webhooks do; each change is a Stripe turn
(payment/subscriptions/turns.py): no transaction is open while Stripe answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import Permission, require
from payment.audit import service as audit
from payment.db import Transactions
from payment.errors import Conflict, NotFound, ValidationError
from payment.models import App, Plan, Subscription
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.subscriptions import turns
from payment.subscriptions.service import release_schedule
from payment.subscriptions.stripe_sync import upsert_from_stripe

UPGRADE, DOWNGRADE = "upgrade", "downgrade"


DECLINED = "The payment for the upgrade was declined, so the plan was not changed. Update the card and try again."


@dataclass(frozen=True)
class ChangeOutcome:
    subscription: Subscription
    kind: str
    declined: bool  # the upgrade's payment failed: Stripe left the subscription as it was


def monthly_price(plan: Plan) -> Fraction:
    """The plan's price per month (a yearly price counts as a twelfth), for comparing plans."""
    return Fraction(plan.price_cents, 12 if plan.interval == "year" else 1)


def kind_of_change(current: Plan, target: Plan) -> str:
    """An upgrade costs more per month; anything else (cheaper, or the same per month) is a downgrade."""
    return UPGRADE if monthly_price(target) > monthly_price(current) else DOWNGRADE


def refusal(app: App | None, current: Plan, target: Plan) -> str | None:
    """Why this change is not offered in this app (None: it is), by the plans and the app's rules; without an app
    (an admin's change) only what Stripe cannot do is refused."""
    if target.id == current.id:
        return "This is already the current plan."
    if not target.active or (app is not None and target.app_id not in (None, app.id)):
        return "This plan is not offered in this app."
    if target.is_free or target.stripe_price_id is None:
        return "Changing to a free plan is done by cancelling at the period end."
    if target.currency != current.currency:
        return "Plans in another currency cannot replace this one; cancel and subscribe again."
    if app is None:
        return None
    interval_change = target.interval != current.interval
    if interval_change and not app.allow_interval_change:
        return "This app does not offer changing between monthly and yearly billing."
    if kind_of_change(current, target) == DOWNGRADE:
        if not app.allow_downgrade:
            return "This app does not offer changing to a cheaper plan."
        if current.interval == "year" and not app.allow_downgrade_from_yearly:
            return "This app does not offer a cheaper plan before the yearly term ends."
    return None


@dataclass(frozen=True)
class ChangePreview:
    """What a change costs, from Stripe's invoice preview: due now, the next charge and when the change applies."""

    kind: str
    plan: Plan
    currency: str
    amount_due_now: int
    next_charge_amount: int
    next_charge_at: datetime | None
    effective_at: datetime | None
    proration_date: int | None  # the second the upgrade is prorated from; the confirmation repeats it


async def _changeable(
    session: AsyncSession, sub: Subscription | None, app: App | None, plan_slug: str
) -> tuple[Plan, str]:
    if sub is None:
        raise NotFound("This subscription does not exist.")
    if sub.stripe_subscription_id is None or not sub.is_live:
        raise Conflict("Only a live subscription paid through Stripe can change plan.")
    if sub.status != "active":
        raise Conflict(f"A subscription that is {sub.status} cannot change plan; settle its payment first.")
    target = await session.scalar(select(Plan).where(Plan.slug == plan_slug))
    if target is None:
        raise NotFound("This plan does not exist.", field="plan")
    current = await session.get(Plan, sub.plan_id)
    assert current is not None
    why = refusal(app, current, target)
    if why is not None:
        raise Conflict(why, code="change_not_offered")
    return target, kind_of_change(current, target)


def _item_params(current: reader.JSON, target: Plan) -> list[dict[str, Any]]:
    item_id = reader.subscription_item_id(current)
    if item_id is None:
        raise Conflict("Stripe's subscription has no item to change.")
    return [{"id": item_id, "price": target.stripe_price_id}]


async def preview_change(
    db: Transactions,
    gateway: StripeGateway,
    subscription_id: int,
    *,
    app: App | None,
    plan_slug: str,
    actor: str,
) -> ChangePreview:
    """The exact amount due now and the next charge (amount and date) if the subscription changed to this plan
    (Stripe is only read: no transaction is open while it answers)."""
    require(actor, Permission.MANAGE_SUBSCRIPTIONS)
    async with db.session() as session:
        sub = await session.get(Subscription, subscription_id)
        target, kind = await _changeable(session, sub, app, plan_slug)
        assert sub is not None and sub.stripe_subscription_id is not None
        stripe_subscription_id = sub.stripe_subscription_id
    current = await gateway.retrieve_subscription(stripe_subscription_id)
    details = {
        "items": _item_params(current, target),
        "proration_behavior": "always_invoice" if kind == UPGRADE else "none",
    }
    raw = await gateway.create_invoice_preview(
        {
            "customer": reader.customer_id(current),
            "subscription": stripe_subscription_id,
            "subscription_details": details,
        }
    )
    preview = reader.preview(raw)
    if kind == UPGRADE:
        prorations = [line for line in preview.lines if line.proration]
        at = min((line.period_start for line in prorations if line.period_start), default=None)
        new_period_end = max((line.period_end for line in preview.lines if line.period_end), default=None)
        return ChangePreview(
            kind=kind,
            plan=target,
            currency=preview.currency,
            amount_due_now=preview.amount_due,
            next_charge_amount=target.price_cents,
            next_charge_at=new_period_end,
            effective_at=at,
            proration_date=int(at.timestamp()) if at else None,
        )
    renewal = [line for line in preview.lines if not line.proration]
    starts = min((line.period_start for line in renewal if line.period_start), default=None)
    return ChangePreview(
        kind=kind,
        plan=target,
        currency=preview.currency,
        amount_due_now=0,
        next_charge_amount=preview.amount_due,
        next_charge_at=starts,
        effective_at=starts,
        proration_date=None,
    )


@dataclass(frozen=True)
class _Change:
    target: Plan
    kind: str
    from_plan: int


async def change_plan(
    db: Transactions,
    gateway: StripeGateway,
    subscription_id: int,
    *,
    app: App | None,
    plan_slug: str,
    proration_date: int | None,
    actor: str,
    ip: str | None = None,
) -> ChangeOutcome:
    """Upgrade now (prorated, invoiced at once, nothing changes if the payment fails) or downgrade at the period end
    (a schedule), as the preview showed."""
    require(actor, Permission.MANAGE_SUBSCRIPTIONS)

    async def check(session: AsyncSession, sub: Subscription) -> _Change:
        target, kind = await _changeable(session, sub, app, plan_slug)
        if sub.cancels_on is not None:
            raise Conflict("This subscription is set to cancel; resume it before changing plan.")
        return _Change(target, kind, sub.plan_id)

    async def call(turn: turns.Turn, change: _Change) -> tuple[reader.JSON, bool]:
        # a pending downgrade is replaced by the new choice
        await release_schedule(gateway, turn.stripe_schedule_id)
        current = await gateway.retrieve_subscription(turn.stripe_subscription_id)
        if change.kind != UPGRADE:
            return await _schedule_downgrade(gateway, turn, current, change.target), False
        params: dict[str, Any] = {
            "items": _item_params(current, change.target),
            "proration_behavior": "always_invoice",
            "payment_behavior": "pending_if_incomplete",
        }
        if proration_date is not None:
            params["proration_date"] = proration_date
        data = await gateway.update_subscription(
            turn.stripe_subscription_id, params, idempotency_key=turn.key("upgrade")
        )
        if not reader.subscription(data).pending_update:
            return data, False
        # The change did not happen: its open invoice is voided so no later retry charges for it (voiding also
        # drops Stripe's pending update).
        invoice_id = reader.id_of(data.get("latest_invoice"))
        if invoice_id is not None:
            await gateway.void_invoice(invoice_id, idempotency_key=f"aquoris-void-{invoice_id}")
        return await gateway.retrieve_subscription(turn.stripe_subscription_id), True

    async def apply(
        session: AsyncSession,
        stripe: StripeGateway,
        sub: Subscription,
        change: _Change,
        answer: tuple[reader.JSON, bool] | None,
    ) -> ChangeOutcome:
        assert answer is not None  # only a Stripe subscription changes plan (`_changeable`)
        data, declined = answer
        await upsert_from_stripe(session, stripe, data, actor=actor)
        await session.flush()
        upgraded = "subscription.upgraded" if change.kind == UPGRADE else "subscription.downgrade_scheduled"
        await audit.record(
            session,
            actor=actor,
            action="subscription.upgrade_declined" if declined else upgraded,
            entity_type="subscription",
            entity_id=sub.id,
            details={
                "from_plan_id": change.from_plan,
                "to_plan": change.target.slug,
                "kind": change.kind,
                "proration_date": proration_date,
                "effective_at": sub.pending_change_at.isoformat() if sub.pending_change_at else None,
            },
            ip=ip,
        )
        return ChangeOutcome(sub, change.kind, declined)

    return await turns.act(db, subscription_id, actor=actor, check=check, gateway=gateway, call=call, apply=apply)


async def _schedule_downgrade(
    gateway: StripeGateway, turn: turns.Turn, current: reader.JSON, target: Plan
) -> reader.JSON:
    """The subscription keeps its plan to the period end, then takes the target's price (and the schedule lets go of
    it after one period at that price)."""
    created = await gateway.create_subscription_schedule(
        {"from_subscription": turn.stripe_subscription_id}, idempotency_key=turn.key("schedule")
    )
    sched = reader.schedule(created)
    first = sched.phases[0]
    state = reader.subscription(current)
    phases = [
        {
            "items": [{"price": state.price_id, "quantity": 1}],
            "start_date": int(first.start.timestamp()),
            "end_date": int((first.end or state.period_end or first.start).timestamp()),
        },
        {"items": [{"price": target.stripe_price_id, "quantity": 1}], "iterations": 1},
    ]
    await gateway.update_subscription_schedule(
        sched.id, {"phases": phases, "end_behavior": "release"}, idempotency_key=turn.key("phases")
    )
    return await gateway.retrieve_subscription(turn.stripe_subscription_id)


async def cancel_pending_change(
    db: Transactions,
    gateway: StripeGateway,
    subscription_id: int,
    *,
    actor: str,
    ip: str | None = None,
) -> Subscription:
    """The scheduled downgrade is withdrawn: the subscription renews on its current plan."""
    require(actor, Permission.MANAGE_SUBSCRIPTIONS)

    async def check(session: AsyncSession, sub: Subscription) -> int:
        if sub.pending_plan_id is None or sub.stripe_subscription_id is None:
            raise Conflict("This subscription has no pending plan change to cancel.")
        return sub.pending_plan_id

    async def call(turn: turns.Turn, _: int) -> reader.JSON:
        await release_schedule(gateway, turn.stripe_schedule_id)
        return await gateway.retrieve_subscription(turn.stripe_subscription_id)

    async def apply(
        session: AsyncSession, stripe: StripeGateway, sub: Subscription, withdrawn: int, answer: reader.JSON | None
    ) -> Subscription:
        assert answer is not None  # a pending change exists only on a Stripe subscription (`check`)
        await upsert_from_stripe(session, stripe, answer, actor=actor)
        await session.flush()
        await audit.record(
            session,
            actor=actor,
            action="subscription.pending_change_canceled",
            entity_type="subscription",
            entity_id=sub.id,
            details={"withdrawn_plan_id": withdrawn},
            ip=ip,
        )
        return sub

    return await turns.act(db, subscription_id, actor=actor, check=check, gateway=gateway, call=call, apply=apply)


async def set_change_rules(
    session: AsyncSession,
    app: App,
    *,
    allow_downgrade: bool,
    allow_downgrade_from_yearly: bool,
    allow_interval_change: bool,
    actor: str,
    ip: str | None = None,
) -> App:
    """Which plan changes the app's users are offered (upgrades always are); audited when it changes."""
    require(actor, Permission.MANAGE_APPS)
    if allow_downgrade_from_yearly and not allow_downgrade:
        raise ValidationError(
            "Downgrades from a yearly plan need downgrades allowed.", field="allow_downgrade_from_yearly"
        )
    before = {
        "allow_downgrade": app.allow_downgrade,
        "allow_downgrade_from_yearly": app.allow_downgrade_from_yearly,
        "allow_interval_change": app.allow_interval_change,
    }
    after = {
        "allow_downgrade": allow_downgrade,
        "allow_downgrade_from_yearly": allow_downgrade_from_yearly,
        "allow_interval_change": allow_interval_change,
    }
    if before == after:
        return app
    app.allow_downgrade = allow_downgrade
    app.allow_downgrade_from_yearly = allow_downgrade_from_yearly
    app.allow_interval_change = allow_interval_change
    await audit.record(
        session,
        actor=actor,
        action="app.change_rules_changed",
        entity_type="app",
        entity_id=app.id,
        details={"from": before, "to": after},
        ip=ip,
    )
    return app

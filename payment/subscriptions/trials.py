"""Trials: one per customer per app, and one per card per app.

The customer rule is checked before Checkout (no trial is offered to a customer who had one in this app). The
card rule can only be checked once the card is known, after Checkout: a trial started with a card whose
fingerprint already had a trial in this app (a second account, same card) is recorded as refused, and
`end_refused` ends it at Stripe at once (`trial_end=now`, outside any transaction), so the plan is charged
now; the billing page tells the user why. A card-less trial has no fingerprint until a card is added; it is
checked again then (every subscription update re-reads the default payment method while it is trialing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit import service as audit
from payment.db import Database
from payment.errors import PaymentError
from payment.models import App, Customer, Plan, Subscription, TrialGrant, utcnow
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.stripe.reader import JSON

log = logging.getLogger(__name__)

CUSTOMER_HAD_TRIAL = "customer_had_trial"
CARD_HAD_TRIAL = "card_had_trial"


@dataclass(frozen=True)
class TrialOffer:
    """What the pricing page says of a plan's trial: its days, or why it is not offered (`refused`)."""

    days: int
    requires_card: bool
    end_behavior: str
    refused: str | None = None

    @property
    def offered(self) -> bool:
        return self.days > 0 and self.refused is None


async def offer(session: AsyncSession, customer: Customer | None, app: App, plan: Plan) -> TrialOffer | None:
    """The trial a plan offers this customer in this app; None when the plan has none."""
    if plan.trial_days <= 0 or plan.is_free:
        return None
    had = (
        customer is not None
        and await session.scalar(
            select(TrialGrant.id).where(TrialGrant.customer_id == customer.id, TrialGrant.app_id == app.id).limit(1)
        )
        is not None
    )
    return TrialOffer(
        days=plan.trial_days,
        requires_card=plan.trial_requires_card,
        end_behavior=plan.trial_end_behavior,
        refused=CUSTOMER_HAD_TRIAL if had else None,
    )


@dataclass(frozen=True)
class TrialParams:
    subscription_data: dict[str, object]
    session: dict[str, object]


def checkout_params(trial: TrialOffer | None) -> TrialParams | None:
    """What a Checkout Session needs for the trial (None when none is offered): the days and what happens at the
    end without a card in `subscription_data`, and no card asked for when the plan does not require one."""
    if trial is None or not trial.offered:
        return None
    return TrialParams(
        subscription_data={
            "trial_period_days": trial.days,
            "trial_settings": {"end_behavior": {"missing_payment_method": trial.end_behavior}},
        },
        session={} if trial.requires_card else {"payment_method_collection": "if_required"},
    )


async def _app_id(session: AsyncSession, row: Subscription, sub: JSON) -> int | None:
    plan = await session.get(Plan, row.plan_id)
    if plan is not None and plan.app_id is not None:
        return plan.app_id
    return reader.metadata_int(sub, "app_id")


async def note_trial(
    session: AsyncSession, gateway: StripeGateway, row: Subscription, sub: JSON, *, actor: str
) -> None:
    """Record the trial a Stripe subscription is in (once), with its card's fingerprint when it has a card, and
    refuse it when the customer or the card already had a trial in the app."""
    grant: TrialGrant | None = await session.scalar(
        select(TrialGrant).where(TrialGrant.subscription_id == row.id).with_for_update()
    )
    if grant is not None and (grant.card_fingerprint is not None or grant.refused_reason is not None):
        return
    app_id = await _app_id(session, row, sub)
    if app_id is None:
        return
    pm_id = reader.subscription_payment_method_id(sub)
    fingerprint = reader.card_fingerprint(await gateway.retrieve_payment_method(pm_id)) if pm_id else None
    created = grant is None
    if grant is None:
        grant = TrialGrant(customer_id=row.customer_id, app_id=app_id, subscription_id=row.id)
        session.add(grant)
    grant.card_fingerprint = fingerprint
    await session.flush()
    # only trials granted before this one count against it (a later one never takes this one's trial away)
    earlier = select(TrialGrant.id).where(TrialGrant.app_id == app_id, TrialGrant.id < grant.id).limit(1)
    if await session.scalar(earlier.where(TrialGrant.customer_id == row.customer_id)) is not None:
        grant.refused_reason = CUSTOMER_HAD_TRIAL
    elif fingerprint is not None and await session.scalar(earlier.where(TrialGrant.card_fingerprint == fingerprint)):
        grant.refused_reason = CARD_HAD_TRIAL
    await session.flush()
    if not created and grant.refused_reason is None:
        return  # a card-less trial seen again, still without a card or with one that had no trial: nothing new
    await audit.record(
        session,
        actor=actor,
        action="trial.refused" if grant.refused_reason else "trial.granted",
        entity_type="subscription",
        entity_id=row.id,
        details={"app_id": app_id, "reason": grant.refused_reason, "card_known": fingerprint is not None},
    )


async def refusal(session: AsyncSession, subscription_id: int) -> str | None:
    """Why the trial of this subscription was refused after Checkout, if it was."""
    reason: str | None = await session.scalar(
        select(TrialGrant.refused_reason).where(TrialGrant.subscription_id == subscription_id)
    )
    return reason


async def end_refused(db: Database, gateway: StripeGateway, *, limit: int = 100) -> int:
    """End at Stripe every refused trial not ended yet (each call outside any transaction, idempotent by grant);
    the subscription's own webhooks then bring the new state. Returns how many were ended."""
    async with db.session() as session:
        rows = (
            await session.execute(
                select(TrialGrant.id, Subscription.stripe_subscription_id, Subscription.status)
                .join(Subscription, Subscription.id == TrialGrant.subscription_id)
                .where(TrialGrant.refused_reason.is_not(None), TrialGrant.ended_early_at.is_(None))
                .order_by(TrialGrant.id)
                .limit(limit)
            )
        ).all()
    ended = 0
    for grant_id, stripe_id, status in rows:
        error: str | None = None
        if status == "trialing" and stripe_id:
            try:
                await gateway.update_subscription(
                    stripe_id, {"trial_end": "now"}, idempotency_key=f"aquoris-trial-refused-{grant_id}"
                )
            except PaymentError as exc:
                error = exc.message[:1000]
                log.warning("could not end refused trial %s: %s", grant_id, error)
        async with db.transaction() as session:
            grant = await session.get_one(TrialGrant, grant_id, with_for_update=True)
            if error is not None:
                grant.end_error = error
                continue
            grant.ended_early_at = utcnow()
            grant.end_error = None
            await audit.record(
                session,
                actor=audit.SYSTEM,
                action="trial.ended_early",
                entity_type="subscription",
                entity_id=grant.subscription_id,
                details={"reason": grant.refused_reason, "stripe_subscription_id": stripe_id},
            )
        ended += 1
    return ended

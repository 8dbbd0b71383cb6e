"""Dunning cases: opened by a renewal's first failure, counted on each retry, closed by payment or by the end.

Only a failure that left the subscription delinquent (`past_due` or `unpaid`) is dunned: a declined upgrade charged
with `pending_if_incomplete` fails its invoice while Stripe keeps the subscription active and unchanged, and the
customer lost nothing. Either event may come first, so the case opens when the second of the two is applied.

The grace end is fixed when a case opens, from the grace policy of the plan's app, so Stripe's retries (each a new
`invoice.payment_failed`) neither restart the grace period nor send the first notice again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import Permission, require
from payment.app_webhooks import capture as webhooks
from payment.audit import service as audit
from payment.dunning import notices
from payment.errors import Conflict, NotFound, ValidationError
from payment.models import App, Customer, DunningCase, Invoice, Plan, Subscription, TrialGrant, utcnow
from payment.models.accounts import AFTER_GRACE, DEFAULT_GRACE_DAYS

GRACE_ENDING_NOTICE = timedelta(days=2)
TRIAL_ENDING_NOTICE = timedelta(days=3)
# how long the periodic check leaves a seemingly card-less trial to Stripe's `trial_will_end` before telling it
CARDLESS_FALLBACK_LAG = timedelta(days=1)
MAX_EXTENSION_DAYS = 60


MAX_GRACE_DAYS = 60
# Stripe's statuses of a subscription whose invoice payment failed and is still owed
DELINQUENT_STATUSES = ("past_due", "unpaid")


async def set_grace_policy(
    session: AsyncSession, app: App, *, grace_days: int, after_grace: str, actor: str, ip: str | None = None
) -> App:
    """An app's dunning policy: 0 to 60 days of full access after a failed renewal, then `blocked` or the free
    plan. It applies to cases opened from now on (an open case keeps its grace end); audited when it changes."""
    require(actor, Permission.MANAGE_APPS)
    if not 0 <= grace_days <= MAX_GRACE_DAYS:
        raise ValidationError(f"Grace days must be between 0 and {MAX_GRACE_DAYS}.", field="grace_days")
    if after_grace not in AFTER_GRACE:
        raise ValidationError("After the grace period, choose blocked or free.", field="after_grace")
    before = {"grace_days": app.grace_days, "after_grace": app.after_grace}
    if before == {"grace_days": grace_days, "after_grace": after_grace}:
        return app
    app.grace_days, app.after_grace = grace_days, after_grace
    await audit.record(
        session,
        actor=actor,
        action="app.grace_policy_changed",
        entity_type="app",
        entity_id=app.id,
        details={"from": before, "to": {"grace_days": grace_days, "after_grace": after_grace}},
        ip=ip,
    )
    return app


async def grace_days(session: AsyncSession, subscription: Subscription) -> int:
    """Days of full access after a failed renewal: the plan's app's policy (suite-wide plans get the default)."""
    days = await session.scalar(
        select(App.grace_days).join(Plan, Plan.app_id == App.id).where(Plan.id == subscription.plan_id)
    )
    return int(days) if days is not None else DEFAULT_GRACE_DAYS


def _money(invoice: Invoice) -> dict[str, Any]:
    return {"invoiceId": invoice.id, "amountCents": invoice.amount_cents, "currency": invoice.currency}


async def record_failure(session: AsyncSession, invoice: Invoice, *, now: datetime | None = None) -> DunningCase | None:
    """A subscription's invoice failed (first time or a retry) and the subscription is past due or unpaid: open its
    case once, count the attempt, and queue the payment-failed notice once per invoice. None (nothing recorded)
    while the subscription is in good standing, as after a declined upgrade."""
    if invoice.subscription_id is None:
        raise ValueError("only a subscription's invoice is dunned")
    now = now or utcnow()
    sub = await session.get_one(Subscription, invoice.subscription_id)
    if sub.status not in DELINQUENT_STATUSES:
        return None
    grace_ends_at = now + timedelta(days=await grace_days(session, sub))
    attempts = max(invoice.attempt_count, 1)
    created = (
        await session.execute(
            insert(DunningCase)
            .values(
                invoice_id=invoice.id,
                subscription_id=sub.id,
                customer_id=invoice.customer_id,
                opened_at=now,
                grace_ends_at=grace_ends_at,
                attempts=attempts,
                last_failed_at=now,
                last_error=invoice.last_payment_error,
            )
            .on_conflict_do_nothing(index_elements=[DunningCase.invoice_id])
            .returning(DunningCase.id)
        )
    ).scalar()
    case = (
        await session.scalars(
            select(DunningCase)
            .where(DunningCase.invoice_id == invoice.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    if created is None and attempts > case.attempts:  # a retry of a known case: count it, keep the grace end
        case.attempts, case.last_failed_at, case.last_error = attempts, now, invoice.last_payment_error
    if case.is_open:
        # a retry already past (an event applied late) is not announced
        retry_at = invoice.next_payment_attempt_at if (invoice.next_payment_attempt_at or now) > now else None
        customer = await session.get_one(Customer, invoice.customer_id)
        plan = await session.get_one(Plan, sub.plan_id)
        await notices.queue(
            session,
            customer,
            notices.PAYMENT_FAILED,
            key=f"invoice:{invoice.id}",
            data={
                **_money(invoice),
                "plan": plan.name,
                "graceEndsAt": case.grace_ends_at.isoformat(),
                "nextAttemptAt": retry_at.isoformat() if retry_at else None,
            },
            app_id=await notices.link_app_id(session, customer, sub),
        )
    return case


async def subscription_delinquent(session: AsyncSession, sub: Subscription, *, now: datetime | None = None) -> int:
    """The subscription became past due or unpaid: dun its failed invoices that are still owed and have no case yet
    (their `invoice.payment_failed` was applied first, while it was in good standing); how many cases opened."""
    if sub.status not in DELINQUENT_STATUSES:
        return 0
    owed = (
        await session.scalars(
            select(Invoice)
            .where(
                Invoice.subscription_id == sub.id,
                Invoice.status == "payment_failed",
                ~select(DunningCase.id).where(DunningCase.invoice_id == Invoice.id).exists(),
            )
            .order_by(Invoice.id)
        )
    ).all()
    for invoice in owed:
        await record_failure(session, invoice, now=now)
    return len(owed)


async def close(
    session: AsyncSession,
    *,
    reason: str,
    invoice_id: int | None = None,
    subscription_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Close the open case of an invoice (paid, voided) or all of a subscription's (recovered, ended)."""
    statement = (
        update(DunningCase)
        .where(DunningCase.closed_at.is_(None))
        .values(closed_at=now or utcnow(), close_reason=reason)
    )
    if invoice_id is not None:
        statement = statement.where(DunningCase.invoice_id == invoice_id)
    elif subscription_id is not None:
        statement = statement.where(DunningCase.subscription_id == subscription_id)
    else:
        raise ValueError("close needs an invoice or a subscription")
    result = await session.execute(statement.returning(DunningCase.id))
    return len(result.all())


async def next_retry(session: AsyncSession, subscription_id: int, *, now: datetime | None = None) -> datetime | None:
    """When Stripe will next charge the failed invoice of the subscription's open case (None when no retry is
    scheduled or none is open)."""
    retry_at = await session.scalar(
        select(Invoice.next_payment_attempt_at)
        .join(DunningCase, DunningCase.invoice_id == Invoice.id)
        .where(DunningCase.subscription_id == subscription_id, DunningCase.closed_at.is_(None))
        .order_by(DunningCase.id.desc())
        .limit(1)
    )
    return retry_at if retry_at is not None and retry_at > (now or utcnow()) else None


async def extend_grace(
    session: AsyncSession, case_id: int, *, days: int, actor: str, customer_id: int | None = None
) -> DunningCase:
    """An admin gives more days of full access on an open case (1 to 60 days at a time, counted from the grace end
    or from now if it has passed); audited. With `customer_id`, the case must be that customer's."""
    require(actor, Permission.MANAGE_SUBSCRIPTIONS)
    if not 1 <= days <= MAX_EXTENSION_DAYS:
        raise ValidationError(f"Extend the grace period by 1 to {MAX_EXTENSION_DAYS} days.", field="days")
    case = await session.get(DunningCase, case_id, with_for_update=True)
    if case is None or (customer_id is not None and case.customer_id != customer_id):
        raise NotFound("This customer has no such dunning case.")
    if not case.is_open:
        raise Conflict("This dunning case is closed: the invoice was paid or the subscription ended.")
    before = case.grace_ends_at
    case.grace_ends_at = max(before, utcnow()) + timedelta(days=days)
    webhooks.note_entitlement_change(session, case.customer_id)  # blocked -> grace again
    await audit.record(
        session,
        actor=actor,
        action="dunning.grace_extended",
        entity_type="customer",
        entity_id=case.customer_id,
        details={
            "case_id": case.id,
            "invoice_id": case.invoice_id,
            "days": days,
            "from": before.isoformat(),
            "to": case.grace_ends_at.isoformat(),
        },
    )
    return case


async def send_due_notices(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Queue `grace_ending` (two days before) and `access_blocked` (at the grace end) for open cases whose
    subscription is still past due, keyed by case and grace end (an extension can warn again, nothing twice), and
    `trial_ending` before a trial ends."""
    now = now or utcnow()
    rows = (
        await session.execute(
            select(DunningCase, Subscription, Customer)
            .join(Subscription, Subscription.id == DunningCase.subscription_id)
            .join(Customer, Customer.id == DunningCase.customer_id)
            .where(
                DunningCase.closed_at.is_(None),
                Subscription.status == "past_due",
                DunningCase.grace_ends_at <= now + GRACE_ENDING_NOTICE,
            )
            .order_by(DunningCase.id)
        )
    ).all()
    queued = 0
    for case, sub, customer in rows:
        notice = notices.ACCESS_BLOCKED if now >= case.grace_ends_at else notices.GRACE_ENDING
        if notice == notices.ACCESS_BLOCKED:
            webhooks.note_entitlement_change(session, customer.id)  # grace -> blocked: client apps are told too
        invoice = await session.get_one(Invoice, case.invoice_id)
        plan = await session.get_one(Plan, sub.plan_id)
        queued += await notices.queue(
            session,
            customer,
            notice,
            key=f"case:{case.id}:{case.grace_ends_at.isoformat()}",
            data={**_money(invoice), "plan": plan.name, "graceEndsAt": case.grace_ends_at.isoformat()},
            app_id=await notices.link_app_id(session, customer, sub),
        )
    return queued + await _trials_ending(session, now)


async def _trials_ending(session: AsyncSession, now: datetime) -> int:
    """`trial_ending` three days before a trial ends (unless it is set to cancel); keyed by its end date. Whether it
    has a card is what the trial's grant last saw (a plan requiring one always has it). The grant knows only the
    subscription's own card, not one added to the customer in the portal, so a trial that seems card-less waits a
    day for Stripe's `trial_will_end`, which reads both."""
    rows = (
        await session.execute(
            select(Subscription, Customer, Plan, TrialGrant.card_fingerprint)
            .join(Customer, Customer.id == Subscription.customer_id)
            .join(Plan, Plan.id == Subscription.plan_id)
            .outerjoin(TrialGrant, TrialGrant.subscription_id == Subscription.id)
            .where(
                Subscription.status == "trialing",
                ~Subscription.cancel_at_period_end,
                Subscription.trial_end > now,
                Subscription.trial_end <= now + TRIAL_ENDING_NOTICE,
            )
            .order_by(Subscription.id)
        )
    ).all()
    queued = 0
    for sub, customer, plan, fingerprint in rows:
        card = plan.trial_requires_card or fingerprint is not None
        if not card and sub.trial_end is not None and sub.trial_end > now + TRIAL_ENDING_NOTICE - CARDLESS_FALLBACK_LAG:
            continue  # Stripe's own event, due now, reads whether a card was added since: it goes first
        queued += await queue_trial_ending(
            session, sub, customer, plan, card=card, end_behavior=plan.trial_end_behavior
        )
    return queued


async def queue_trial_ending(
    session: AsyncSession, sub: Subscription, customer: Customer, plan: Plan, *, card: bool, end_behavior: str
) -> int:
    """Queue the `trial_ending` notice of a trial (Stripe's `trial_will_end`, or the periodic check as a fallback);
    keyed by the trial's end date, so it goes once per trial end whichever comes first. With a card it is charged
    the plan's price; without one, `end_behavior` (Stripe's `missing_payment_method`: cancel, pause or
    create_invoice) is what happens, and the mail says so."""
    if sub.status != "trialing" or sub.cancel_at_period_end or sub.trial_end is None:
        return 0
    end = sub.trial_end.isoformat()
    return await notices.queue(
        session,
        customer,
        notices.TRIAL_ENDING,
        key=f"subscription:{sub.id}:{end}",
        data={
            "plan": plan.name,
            "trialEnd": end,
            "amountCents": plan.price_cents,
            "currency": plan.currency,
            "card": card,
            "endBehavior": end_behavior,
        },
        app_id=await notices.link_app_id(session, customer, sub),
    )

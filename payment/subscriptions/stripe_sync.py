"""A Stripe subscription -> our subscription row: the one mapping, used by webhooks, admin actions and fixtures.

It maps the *current* state of a Stripe object (fetched by the caller), so applying it again, or after a newer
object, gives the same result: that is what makes webhook processing order-independent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import false, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit import service as audit
from payment.models import CheckoutSession, Customer, Plan, Subscription
from payment.models.billing import SUBSCRIPTION_STATUSES
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.stripe.reader import JSON
from payment.stripe.sync import Changes, SyncError, later, older_than_stored
from payment.subscriptions import trials
from payment.subscriptions.paid_extension import as_seen_by_us


async def customer_by_stripe_id(session: AsyncSession, stripe_customer_id: str | None) -> Customer | None:
    """Our customer linked to this Stripe customer."""
    if not stripe_customer_id:
        return None
    found: Customer | None = await session.scalar(
        select(Customer).where(Customer.stripe_customer_id == stripe_customer_id)
    )
    return found


async def link_customer(
    session: AsyncSession, customer: Customer, stripe_customer_id: str | None, *, actor: str
) -> None:
    """Remember the customer's Stripe customer id the first time Stripe tells us; never re-point it."""
    if not stripe_customer_id or customer.stripe_customer_id == stripe_customer_id:
        return
    if customer.stripe_customer_id is not None:
        return  # a second Stripe customer for the same user: keep the first link, the subscription still maps
    other = await customer_by_stripe_id(session, stripe_customer_id)
    if other is not None and other.id != customer.id:
        raise SyncError(f"Stripe customer {stripe_customer_id} is already linked to customer #{other.id}.")
    customer.stripe_customer_id = stripe_customer_id
    await audit.record(
        session,
        actor=actor,
        action="customer.stripe_linked",
        entity_type="customer",
        entity_id=customer.id,
        details={"stripe_customer_id": stripe_customer_id},
    )


async def unlink_deleted_customer(session: AsyncSession, customer: Customer, *, actor: str) -> str | None:
    """The Stripe customer was deleted (its subscriptions end with it): forget the link, so the next checkout
    creates a new Stripe customer instead of failing on the deleted one. Returns the id that was unlinked."""
    stripe_customer_id = customer.stripe_customer_id
    if stripe_customer_id is None:
        return None
    customer.stripe_customer_id = None
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="customer.stripe_unlinked",
        entity_type="customer",
        entity_id=customer.id,
        details={"stripe_customer_id": stripe_customer_id, "why": "deleted in Stripe"},
    )
    return stripe_customer_id


async def _customer_from_checkout(
    session: AsyncSession, gateway: StripeGateway, subscription_id: str
) -> Customer | None:
    """The subscription came from one of our Checkout Sessions: it names our customer."""
    listing = await gateway.list_checkout_sessions({"subscription": subscription_id, "limit": 3})
    for obj in listing.get("data") or []:
        ref = reader.checkout(obj).our_customer_id
        if ref is not None:
            customer: Customer | None = await session.get(Customer, ref)
            if customer is not None:
                return customer
    return None


async def _resolve_customer(
    session: AsyncSession, gateway: StripeGateway, state: reader.SubscriptionState, *, actor: str
) -> Customer | None:
    """By the linked Stripe customer, else our id in metadata or in the Checkout Session that created the
    subscription (so events arriving before checkout.session.completed still map)."""
    customer = await customer_by_stripe_id(session, state.stripe_customer_id)
    if customer is not None:
        return customer
    if state.our_customer_id is not None:
        customer = await session.get(Customer, state.our_customer_id)
    if customer is None:
        customer = await _customer_from_checkout(session, gateway, state.id)
    if customer is not None:
        await link_customer(session, customer, state.stripe_customer_id, actor=actor)
    return customer


async def _plan_for(session: AsyncSession, state: reader.SubscriptionState) -> Plan | None:
    """The plan sold at the subscription's price, else the plan named in its metadata."""
    if state.price_id:
        plan: Plan | None = await session.scalar(select(Plan).where(Plan.stripe_price_id == state.price_id))
        if plan is not None:
            return plan
    return await session.get(Plan, state.our_plan_id) if state.our_plan_id is not None else None


async def _pending_change(
    session: AsyncSession, gateway: StripeGateway, state: reader.SubscriptionState
) -> tuple[Plan | None, datetime | None]:
    """The plan the subscription's schedule moves it to at a later period end, and when (None: no change ahead)."""
    if state.schedule_id is None or state.status in ("canceled", "incomplete_expired"):
        return None, None
    sched = reader.schedule(await gateway.retrieve_subscription_schedule(state.schedule_id))
    if sched.status != "active" or state.period_end is None:
        return None, None
    for phase in sched.phases:
        if phase.start >= state.period_end and phase.price_id and phase.price_id != state.price_id:
            plan: Plan | None = await session.scalar(select(Plan).where(Plan.stripe_price_id == phase.price_id))
            if plan is None:
                raise SyncError(f"No plan has the Stripe price {phase.price_id} of schedule {sched.id}.")
            return plan, phase.start
    return None, None


async def upsert_from_stripe(
    session: AsyncSession,
    gateway: StripeGateway,
    sub: JSON,
    *,
    actor: str,
    event_at: datetime | None = None,
    customer: Customer | None = None,
    plan_hint: Plan | None = None,
) -> tuple[Subscription, Changes]:
    """Make our subscription row equal to Stripe's subscription (status, plan by price, period, when it cancels,
    cancellation, the plan change its schedule makes at a later period end), creating it the first time; an unknown
    status is refused rather than guessed. An admin's extension of a paying subscription (a marked trial) is read as
    active. A snapshot older than the one the row shows (`gateway.fetch_ticket`, when the worker applies one) changes
    nothing."""
    state = reader.subscription(as_seen_by_us(sub))
    # our row, locked, and the plan sold at its price in one statement (the plan is not locked, as before)
    by_price = Plan.stripe_price_id == state.price_id if state.price_id else false()
    found = (
        await session.execute(
            select(Subscription, Plan)
            .select_from(Subscription)
            .outerjoin(Plan, by_price)
            .where(Subscription.stripe_subscription_id == state.id)
            .with_for_update(of=Subscription)
        )
    ).one_or_none()
    row, plan = (found[0], found[1]) if found is not None else (None, None)
    if row is not None and older_than_stored(gateway, row.stripe_fetch_ticket):
        row.last_stripe_event_at = later(row.last_stripe_event_at, event_at)
        return row, Changes()  # a snapshot asked for later is applied already
    if plan is None:  # no row yet, or no plan at its price: the price again, then the plan named in metadata
        plan = await _plan_for(session, state)
    plan = plan or plan_hint
    if state.status not in SUBSCRIPTION_STATUSES or state.status == "expired":  # expired is ours, not Stripe's
        raise SyncError(f"Stripe subscription {state.id} has a status we do not know ({state.status!r}).")
    changes = Changes()
    if row is None:
        customer = customer or await _resolve_customer(session, gateway, state, actor=actor)
        if customer is None:
            raise SyncError(
                f"No customer of ours matches Stripe subscription {state.id} "
                f"(Stripe customer {state.stripe_customer_id})."
            )
        if plan is None:
            raise SyncError(f"No plan has the Stripe price {state.price_id} of subscription {state.id}.")
        row = Subscription(
            customer_id=customer.id,
            plan_id=plan.id,
            status=state.status,
            source="stripe",
            stripe_subscription_id=state.id,
        )
        session.add(row)
        changes.values["created"] = True
    elif plan is not None:
        changes.set(row, "plan_id", plan.id)
    changes.set(row, "status", state.status)
    changes.set(row, "current_period_start", state.period_start)
    changes.set(row, "current_period_end", state.period_end)
    # `cancel_at` at the period end is what cancel_at_period_end means; both say "stops renewing"
    changes.set(
        row,
        "cancel_at_period_end",
        state.cancel_at_period_end
        or (state.cancel_at is not None and state.period_end is not None and state.cancel_at >= state.period_end),
    )
    changes.set(row, "cancel_at", state.cancel_at)
    changes.set(row, "canceled_at", state.canceled_at)
    changes.set(row, "ended_at", state.ended_at)
    changes.set(row, "trial_end", state.trial_end)
    terms = reader.subscription_discount(sub)
    changes.set(row, "discount_percent_off", terms.percent_off if terms else None)
    changes.set(row, "discount_amount_off_cents", terms.amount_off if terms else None)
    changes.set(row, "discount_ends_at", terms.ends_at if terms else None)
    pending_plan, pending_at = await _pending_change(session, gateway, state)
    changes.set(row, "stripe_schedule_id", state.schedule_id)
    changes.set(row, "pending_plan_id", pending_plan.id if pending_plan else None)
    changes.set(row, "pending_change_at", pending_at)
    row.last_stripe_event_at = later(row.last_stripe_event_at, event_at)
    row.stripe_fetch_ticket = gateway.fetch_ticket or row.stripe_fetch_ticket
    await session.flush()
    if state.status == "trialing":
        await trials.note_trial(session, gateway, row, sub, actor=actor)
    return row, changes


async def upsert_from_checkout(
    session: AsyncSession, gateway: StripeGateway, obj: JSON, *, actor: str, event_at: datetime | None = None
) -> tuple[Customer, Subscription | None]:
    """A completed Checkout Session: link the Stripe customer to ours, close our checkout record, and map the
    subscription it created as Stripe has it now."""
    done = reader.checkout(obj)
    customer = await session.get(Customer, done.our_customer_id) if done.our_customer_id is not None else None
    customer = customer or await customer_by_stripe_id(session, done.stripe_customer_id)
    if customer is None:
        raise SyncError(f"Checkout Session {done.id} names no customer of ours.")
    await link_customer(session, customer, done.stripe_customer_id, actor=actor)
    checkout: CheckoutSession | None = await session.scalar(
        select(CheckoutSession).where(CheckoutSession.stripe_checkout_session_id == done.id).with_for_update()
    )
    if checkout is not None and checkout.status != "complete":
        checkout.status = "complete"
    if done.subscription_id is None:
        return customer, None
    plan_hint = await session.get(Plan, done.our_plan_id) if done.our_plan_id is not None else None
    current = await gateway.retrieve_subscription(done.subscription_id)
    sub, _ = await upsert_from_stripe(
        session, gateway, current, actor=actor, event_at=event_at, customer=customer, plan_hint=plan_hint
    )
    return customer, sub

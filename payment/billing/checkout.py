"""Subscribe through Stripe Checkout (the card-only Stripe billing portal is in payment/billing/portal.py).

Stripe is called with no transaction open, in the turn pattern of payment/subscriptions/turns.py on the customer
row: (1) a short transaction locks the customer row, checks the rule (no live subscription; an open checkout for
the same plan is reused) and marks the row's checkout turn (a nonce, an expiry), then commits; (2) Stripe is
called, each write under an idempotency key (the Stripe customer once per customer, the checkout per billing
session, plan and attempt): older open checkouts are expired, the new one created; (3) a second short transaction
records what Stripe did and clears the turn. A second Subscribe for the customer meanwhile (another tab, another
plan) waits for the turn and then replaces the first's checkout, or answers BUSY after WAIT_SECONDS: never two
payable checkouts. A turn whose holder died expires after LEASE; the Subscribe that takes it over also expires
any open checkout of the customer at Stripe that we never recorded, then retries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit import service as audit
from payment.billing.catalog import plans_for_app
from payment.billing.entitlements import live_subscription
from payment.db import Transactions
from payment.errors import Conflict, NotFound, StripeError, ValidationError
from payment.models import App, BillingSession, CheckoutSession, Customer, Plan, Subscription, utcnow
from payment.stripe.gateway import StripeGateway
from payment.subscriptions import trials
from payment.subscriptions.turns import LEASE, WAIT_SECONDS, Waiting

log = logging.getLogger(__name__)

# An open checkout this close to its expiry is replaced rather than reused: the user would not finish in time.
REUSE_MARGIN = timedelta(minutes=10)
STRIPE_LOCALES = {"th": "th", "en": "en"}


@dataclass(frozen=True)
class CheckoutStart:
    url: str
    reused: bool
    checkout: CheckoutSession


def return_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/billing/{token}/return?session_id={{CHECKOUT_SESSION_ID}}"


def cancel_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/billing/{token}?checkout=canceled"


class CheckoutBusy(Conflict):
    code = "checkout_busy"


BUSY = "Your checkout is being prepared in another tab or window. Wait a moment, then try again."


async def _lock_customer(session: AsyncSession, customer_id: int) -> Customer:
    query = select(Customer).where(Customer.id == customer_id).with_for_update()
    return (await session.execute(query.execution_options(populate_existing=True))).scalar_one()


@dataclass
class _Plan:
    """What the first transaction decided: the Stripe calls to make, with the keys that make a retry safe."""

    nonce: str
    customer_id: int
    stripe_customer: str | None
    customer_params: dict[str, object]
    to_expire: list[str]
    known: set[str]
    taken_over: bool
    params: dict[str, object]
    key: str
    plan_id: int
    plan_slug: str
    app_id: int
    promotion_code: str | None


@dataclass
class _Done:
    """What Stripe did, kept even when a later call fails (the second transaction records it)."""

    stripe_customer: str | None = None
    linked: bool = False
    expired: list[str] = field(default_factory=list)
    created: dict[str, object] | None = None


async def _open_checkouts(session: AsyncSession, customer_id: int) -> Sequence[CheckoutSession]:
    query = (
        select(CheckoutSession)
        .where(CheckoutSession.customer_id == customer_id, CheckoutSession.status == "open")
        .order_by(CheckoutSession.id.desc())
    )
    return (await session.execute(query)).scalars().all()


async def _expire_at_stripe(gateway: StripeGateway, checkout_id: str) -> None:
    """Expire one open checkout at Stripe so it can never be paid; one already paid stops the Subscribe."""
    try:
        await gateway.expire_checkout_session(checkout_id)
    except StripeError:
        current = await gateway.retrieve_checkout_session(checkout_id)
        if current.get("status") == "complete":
            raise Conflict(
                "Your payment is being processed; your plan will show here in a moment.", code="checkout_processing"
            ) from None
        if current.get("status") == "open":
            raise


async def _call_stripe(gateway: StripeGateway, plan: _Plan, done: _Done) -> None:
    """The Stripe side of a Subscribe, with no transaction open; `done` grows with each call that succeeded."""
    done.stripe_customer = plan.stripe_customer
    if done.stripe_customer is None:
        created = await gateway.create_customer(
            plan.customer_params, idempotency_key=f"aquoris-customer-{plan.customer_id}"
        )
        done.stripe_customer, done.linked = str(created["id"]), True
    for checkout_id in plan.to_expire:
        await _expire_at_stripe(gateway, checkout_id)
        done.expired.append(checkout_id)
    unrecorded: list[str] = []
    if plan.taken_over:
        # a Subscribe that died mid-call may have left a checkout we never recorded: it must not stay payable
        found = await gateway.list_checkout_sessions({"customer": done.stripe_customer, "status": "open", "limit": 100})
        unrecorded = [str(c["id"]) for c in found.get("data", []) if str(c["id"]) not in plan.known]
    done.created = await gateway.create_checkout_session(
        {**plan.params, "customer": done.stripe_customer}, idempotency_key=plan.key
    )
    for checkout_id in unrecorded:
        if checkout_id != str(done.created["id"]):  # the same key may have given us the dead holder's checkout
            await _expire_at_stripe(gateway, checkout_id)


async def _record(
    session: AsyncSession, plan: _Plan, done: _Done, *, actor: str, now: datetime
) -> CheckoutSession | None:
    """The second transaction: what Stripe did goes on our rows, and the turn is given back."""
    customer = await _lock_customer(session, plan.customer_id)
    if done.linked and customer.stripe_customer_id is None and done.stripe_customer:
        customer.stripe_customer_id = done.stripe_customer
        await audit.record(
            session,
            actor=actor,
            action="customer.stripe_linked",
            entity_type="customer",
            entity_id=customer.id,
            details={"stripe_customer_id": customer.stripe_customer_id},
        )
    for row in await _open_checkouts(session, customer.id):
        if row.stripe_checkout_session_id in done.expired:
            row.status = "expired"
            await audit.record(
                session,
                actor=actor,
                action="checkout.replaced",
                entity_type="customer",
                entity_id=customer.id,
                details={"checkout_session": row.stripe_checkout_session_id, "for_plan": plan.plan_slug},
            )
    if customer.checkout_turn_nonce == plan.nonce:  # a holder whose lease was taken over clears nothing
        customer.checkout_turn_nonce = None
        customer.checkout_turn_until = None
    if done.created is None:
        await session.flush()
        return None
    created = done.created
    stripe_expiry = created.get("expires_at")
    expires = datetime.fromtimestamp(int(str(stripe_expiry)), UTC) if stripe_expiry else now + timedelta(hours=24)
    row = CheckoutSession(
        stripe_checkout_session_id=str(created["id"]),
        customer_id=customer.id,
        plan_id=plan.plan_id,
        app_id=plan.app_id,
        status="open",
        url=str(created["url"]),
        expires_at=expires,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="checkout.started",
        entity_type="customer",
        entity_id=customer.id,
        details={
            "plan": plan.plan_slug,
            "app_id": plan.app_id,
            "checkout_session": row.stripe_checkout_session_id,
            "promotion_code": plan.promotion_code,
        },
    )
    return row


async def _take_turn(
    session: AsyncSession,
    *,
    billing_session_id: UUID,
    plan_slug: str,
    base_url: str,
    token: str,
    locale: str | None,
    promotion_code: str | None,
    nonce: str,
    now: datetime,
) -> _Plan | CheckoutStart | None:
    """The first transaction: check the rule under the customer's row lock, settle what needs no Stripe call, and
    either answer (an open checkout to reuse) or take the turn and say which Stripe calls to make; None while
    another Subscribe holds the turn."""
    billing = await session.get(BillingSession, billing_session_id)
    if billing is None:
        raise NotFound("This billing session does not exist.")
    app = await session.get(App, billing.app_id)
    assert app is not None
    plan = next((p for p in await plans_for_app(session, app) if p.slug == plan_slug), None)
    if plan is None:
        raise NotFound("This plan is not available.", code="plan_not_found")
    if plan.is_free or not plan.stripe_price_id:
        raise ValidationError("The free plan needs no payment.", code="plan_is_free")
    customer = await _lock_customer(session, billing.customer_id)
    if customer.checkout_turn_until is not None and customer.checkout_turn_until > utcnow():
        return None
    taken_over = customer.checkout_turn_nonce is not None
    if taken_over:
        log.warning("taking over the expired checkout turn of customer %s", customer.id)
    live = await live_subscription(session, customer, app, now=now)
    if live is not None:
        raise Conflict(
            "You already have an active subscription. Change or cancel it on the billing page.",
            code="already_subscribed",
        )
    rows = await _open_checkouts(session, customer.id)
    for row in rows:
        if row.expires_at <= now:
            row.status = "expired"
    live_rows = [row for row in rows if row.status == "open"]
    if len(live_rows) == 1 and not promotion_code and not taken_over:  # a promotion code asks for a new checkout
        (row,) = live_rows
        if (
            row.plan_id == plan.id
            and row.app_id == billing.app_id
            and row.created_at >= billing.created_at
            and row.expires_at > now + REUSE_MARGIN
        ):
            return CheckoutStart(url=row.url, reused=True, checkout=row)
    # every other open checkout is expired at Stripe so it can never be paid
    to_expire = [row.stripe_checkout_session_id for row in live_rows]
    metadata = {
        "customer_id": str(customer.id),
        "plan_id": str(plan.id),
        "app_id": str(billing.app_id),
        "billing_session_id": str(billing.id),
    }
    params: dict[str, object] = {
        "mode": "subscription",
        "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
        "client_reference_id": str(customer.id),
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
        "success_url": return_url(base_url, token),
        "cancel_url": cancel_url(base_url, token),
        "locale": STRIPE_LOCALES.get((locale or "").split("-")[0], "auto"),
    }
    if promotion_code:
        # the code was checked on our page; never with allow_promotion_codes (Stripe refuses both together)
        params["discounts"] = [{"promotion_code": promotion_code}]
    trial = trials.checkout_params(await trials.offer(session, customer, app, plan))
    if trial is not None:
        params["subscription_data"] = {"metadata": metadata, **trial.subscription_data}
        params.update(trial.session)
    customer_params: dict[str, object] = {
        "metadata": {"customer_id": str(customer.id), "external_user_id": customer.external_user_id}
    }
    if customer.email:
        customer_params["email"] = customer.email
    if customer.name:
        customer_params["name"] = customer.name
    # Counting this customer's checkouts (under the turn) makes a retried Subscribe reuse Stripe's answer.
    attempt = await session.scalar(
        select(func.count()).select_from(CheckoutSession).where(CheckoutSession.customer_id == customer.id)
    )
    # Stripe answers a retried key with its first answer only for the same parameters (other ones get a 400
    # idempotency_error), so the key names them: a retry in another page language, or once a trial is no longer
    # offered, makes a checkout of its own (an earlier one never recorded is expired by the takeover).
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
    key = f"aquoris-checkout-{billing.id}-{plan.id}-{attempt}-{digest}"
    customer.checkout_turn_nonce = nonce
    customer.checkout_turn_until = utcnow() + LEASE
    return _Plan(
        nonce=nonce,
        customer_id=customer.id,
        stripe_customer=customer.stripe_customer_id,
        customer_params=customer_params,
        to_expire=to_expire,
        known={row.stripe_checkout_session_id for row in rows},
        taken_over=taken_over,
        params=params,
        key=key,
        plan_id=plan.id,
        plan_slug=plan.slug,
        app_id=billing.app_id,
        promotion_code=promotion_code,
    )


async def subscribe(
    db: Transactions,
    gateway: StripeGateway,
    *,
    billing_session_id: UUID,
    plan_slug: str,
    base_url: str,
    token: str,
    locale: str | None,
    actor: str,
    promotion_code: str | None = None,
    now: datetime | None = None,
    wait: float | None = None,
) -> CheckoutStart:
    """Send the customer to a Stripe Checkout for a paid plan of this app, unless a live subscription exists;
    `promotion_code` (a Stripe id checked by `promotions.redeem.check_code`) discounts it. Stripe is called with no
    transaction open; a Subscribe meeting another one's turn waits for it (up to `wait`, WAIT_SECONDS by default)
    and then answers BUSY. What Stripe did before a failure (a linked customer, expired checkouts) is kept."""
    nonce = secrets.token_urlsafe(24)
    waiting = Waiting(WAIT_SECONDS if wait is None else wait)  # this module's WAIT_SECONDS (tests shorten it)
    while True:
        at = now or utcnow()
        async with db.transaction() as session:
            taken = await _take_turn(
                session,
                billing_session_id=billing_session_id,
                plan_slug=plan_slug,
                base_url=base_url,
                token=token,
                locale=locale,
                promotion_code=promotion_code,
                nonce=nonce,
                now=at,
            )
        if isinstance(taken, CheckoutStart):
            return taken
        if taken is not None:
            break
        await waiting.again(CheckoutBusy(BUSY))
    done = _Done()
    try:
        await _call_stripe(gateway, taken, done)
    finally:
        # also when Stripe failed: what it did is recorded and the turn given back (if this fails, the lease
        # expires and the next Subscribe takes over, expiring any checkout we did not record)
        async with db.transaction() as session:
            row = await _record(session, taken, done, actor=actor, now=at)
    assert row is not None
    return CheckoutStart(url=row.url, reused=False, checkout=row)


@dataclass(frozen=True)
class CheckoutState:
    state: str  # processing | active | expired
    plan_slug: str


async def checkout_state(
    session: AsyncSession, billing: BillingSession, stripe_checkout_session_id: str, *, now: datetime | None = None
) -> CheckoutState | None:
    """Where a checkout of this customer stands for the return page: still processing, live, or lapsed."""
    row = (
        await session.execute(
            select(CheckoutSession).where(
                CheckoutSession.stripe_checkout_session_id == stripe_checkout_session_id,
                CheckoutSession.customer_id == billing.customer_id,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    plan = await session.get(Plan, row.plan_id)
    assert plan is not None
    live = await live_subscription(session, billing.customer, billing.app, now=now)
    if live is not None and live.plan_id == row.plan_id:
        return CheckoutState("active", plan.slug)
    if row.status == "expired" or (row.status == "open" and row.expires_at <= (now or utcnow())):
        return CheckoutState("expired", plan.slug)
    return CheckoutState("processing", plan.slug)


async def has_stripe_billing(session: AsyncSession, customer: Customer) -> bool:
    """Whether the customer has anything to manage in the Stripe portal (a Stripe subscription, past or present)."""
    if not customer.stripe_customer_id:
        return False
    found = await session.scalar(
        select(Subscription.id).where(Subscription.customer_id == customer.id, Subscription.source == "stripe").limit(1)
    )
    return found is not None

"""Subscribe through Stripe Checkout (the card-only Stripe billing portal is in payment/billing/portal.py).

The customer row is locked (SELECT ... FOR UPDATE) for the whole rule, so two Subscribes at once for one customer
run one after the other: the second sees the first's open checkout and reuses it, or sees the live subscription and
is refused. Either way there is never a second subscription.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit import service as audit
from payment.billing.catalog import plans_for_app
from payment.billing.entitlements import live_subscription
from payment.errors import Conflict, NotFound, StripeError, ValidationError
from payment.models import BillingSession, CheckoutSession, Customer, Plan, Subscription, utcnow
from payment.stripe.gateway import StripeGateway
from payment.subscriptions import trials

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


async def _lock_customer(session: AsyncSession, customer_id: int) -> Customer:
    query = select(Customer).where(Customer.id == customer_id).with_for_update()
    return (await session.execute(query.execution_options(populate_existing=True))).scalar_one()


async def ensure_stripe_customer(
    session: AsyncSession, gateway: StripeGateway, customer: Customer, *, actor: str
) -> str:
    """The customer's Stripe customer id, creating the Stripe customer once (idempotently) when there is none."""
    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    params: dict[str, object] = {
        "metadata": {"customer_id": str(customer.id), "external_user_id": customer.external_user_id}
    }
    if customer.email:
        params["email"] = customer.email
    if customer.name:
        params["name"] = customer.name
    created = await gateway.create_customer(params, idempotency_key=f"aquoris-customer-{customer.id}")
    customer.stripe_customer_id = str(created["id"])
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="customer.stripe_linked",
        entity_type="customer",
        entity_id=customer.id,
        details={"stripe_customer_id": customer.stripe_customer_id},
    )
    return customer.stripe_customer_id


async def _settle_open_checkouts(
    session: AsyncSession,
    gateway: StripeGateway,
    billing: BillingSession,
    plan: Plan,
    now: datetime,
    actor: str,
    *,
    reusable: bool = True,
) -> CheckoutSession | None:
    """The open checkout to reuse, if any (none when a promotion code asks for a new one); every other open one is
    expired at Stripe so it can never be paid."""
    rows = (
        (
            await session.execute(
                select(CheckoutSession)
                .where(CheckoutSession.customer_id == billing.customer_id, CheckoutSession.status == "open")
                .order_by(CheckoutSession.id.desc())
            )
        )
        .scalars()
        .all()
    )
    reuse: CheckoutSession | None = None
    for row in rows:
        if row.expires_at <= now:
            row.status = "expired"
            continue
        if (
            reusable
            and reuse is None
            and row.plan_id == plan.id
            and row.app_id == billing.app_id
            and row.created_at >= billing.created_at
            and row.expires_at > now + REUSE_MARGIN
        ):
            reuse = row
            continue
        try:
            await gateway.expire_checkout_session(row.stripe_checkout_session_id)
        except StripeError:
            current = await gateway.retrieve_checkout_session(row.stripe_checkout_session_id)
            if current.get("status") == "complete":
                raise Conflict(
                    "Your payment is being processed; your plan will show here in a moment.", code="checkout_processing"
                ) from None
            if current.get("status") == "open":
                raise
        row.status = "expired"
        await audit.record(
            session,
            actor=actor,
            action="checkout.replaced",
            entity_type="customer",
            entity_id=billing.customer_id,
            details={"checkout_session": row.stripe_checkout_session_id, "for_plan": plan.slug},
        )
    await session.flush()
    return reuse


async def subscribe(
    session: AsyncSession,
    gateway: StripeGateway,
    *,
    billing: BillingSession,
    plan_slug: str,
    base_url: str,
    token: str,
    locale: str | None,
    actor: str,
    promotion_code: str | None = None,
    now: datetime | None = None,
) -> CheckoutStart:
    """Send the customer to a Stripe Checkout for a paid plan of this app, unless a live subscription exists;
    `promotion_code` (a Stripe id checked by `promotions.redeem.check_code`) discounts it."""
    now = now or utcnow()
    plan = next((p for p in await plans_for_app(session, billing.app) if p.slug == plan_slug), None)
    if plan is None:
        raise NotFound("This plan is not available.", code="plan_not_found")
    if plan.is_free or not plan.stripe_price_id:
        raise ValidationError("The free plan needs no payment.", code="plan_is_free")
    customer = await _lock_customer(session, billing.customer_id)
    live = await live_subscription(session, customer, billing.app, now=now)
    if live is not None:
        raise Conflict(
            "You already have an active subscription. Change or cancel it on the billing page.",
            code="already_subscribed",
        )
    reuse = await _settle_open_checkouts(session, gateway, billing, plan, now, actor, reusable=not promotion_code)
    if reuse is not None:
        return CheckoutStart(url=reuse.url, reused=True, checkout=reuse)
    stripe_customer = await ensure_stripe_customer(session, gateway, customer, actor=actor)
    metadata = {
        "customer_id": str(customer.id),
        "plan_id": str(plan.id),
        "app_id": str(billing.app_id),
        "billing_session_id": str(billing.id),
    }
    params: dict[str, object] = {
        "mode": "subscription",
        "customer": stripe_customer,
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
    trial = trials.checkout_params(await trials.offer(session, customer, billing.app, plan))
    if trial is not None:
        params["subscription_data"] = {"metadata": metadata, **trial.subscription_data}
        params.update(trial.session)
    # Counting this customer's checkouts (under the row lock) makes a retried request reuse Stripe's answer.
    attempt = await session.scalar(
        select(func.count()).select_from(CheckoutSession).where(CheckoutSession.customer_id == customer.id)
    )
    key = f"aquoris-checkout-{billing.id}-{plan.id}-{attempt}" + (f"-{promotion_code}" if promotion_code else "")
    created = await gateway.create_checkout_session(params, idempotency_key=key)
    stripe_expiry = created.get("expires_at")
    expires = datetime.fromtimestamp(int(stripe_expiry), UTC) if stripe_expiry else now + timedelta(hours=24)
    row = CheckoutSession(
        stripe_checkout_session_id=str(created["id"]),
        customer_id=customer.id,
        plan_id=plan.id,
        app_id=billing.app_id,
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
            "plan": plan.slug,
            "app_id": billing.app_id,
            "checkout_session": row.stripe_checkout_session_id,
            "promotion_code": promotion_code,
        },
    )
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
